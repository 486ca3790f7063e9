package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dccbridge/dccbridge/internal/bridgetest"
	"github.com/dccbridge/dccbridge/rpc"
	"github.com/dccbridge/dccbridge/web"
)

// post sends body to POST /rpc as application/json.
func post(t *testing.T, b *bridgetest.Bridge, body string) (*http.Response, []byte) {
	t.Helper()
	return do(t, b, httpReq{method: "POST", path: "/rpc", ctype: "application/json", body: body})
}

// decodeObject decodes a JSON-RPC reply object, failing the test otherwise.
func decodeObject(t *testing.T, body []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("want a JSON object, got %q (%v)", body, err)
	}
	return m
}

// byID indexes the replies of a batch reply by their id's JSON text.
func byID(t *testing.T, body []byte) map[string]map[string]any {
	t.Helper()
	var arr []map[string]any
	if err := json.Unmarshal(body, &arr); err != nil {
		t.Fatalf("want a JSON array, got %q (%v)", body, err)
	}
	out := map[string]map[string]any{}
	for _, m := range arr {
		id, _ := json.Marshal(m["id"])
		if _, dup := out[string(id)]; dup {
			t.Fatalf("two replies with id %s in %s", id, body)
		}
		out[string(id)] = m
	}
	return out
}

// startHost connects a host peer for app "aftereffects", instance ae-1,
// offering methods.
func startHost(t *testing.T, b *bridgetest.Bridge, methods ...string) (*bridgetest.Peer, map[string]any) {
	t.Helper()
	p := bridgetest.Dial(t, b.WSURL, nil)
	res := p.Hello(map[string]any{"app": "aftereffects", "kind": "host", "instance": "ae-1", "methods": methods})
	return p, res
}

// httpResult is the outcome of a POST made in the background.
type httpResult struct {
	status int
	header http.Header
	body   []byte
	err    error
}

// postAsync posts body to /rpc with ctx in its own goroutine. It must not
// touch t: it reports on the channel.
func postAsync(ctx context.Context, b *bridgetest.Bridge, body string) <-chan httpResult {
	ch := make(chan httpResult, 1)
	go func() {
		req, err := http.NewRequestWithContext(ctx, "POST", b.URL+"/rpc", strings.NewReader(body))
		if err != nil {
			ch <- httpResult{err: err}
			return
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := b.Server.Client().Do(req)
		if err != nil {
			ch <- httpResult{err: err}
			return
		}
		defer resp.Body.Close()
		data, err := io.ReadAll(resp.Body)
		ch <- httpResult{status: resp.StatusCode, header: resp.Header, body: data, err: err}
	}()
	return ch
}

func waitResult(t *testing.T, ch <-chan httpResult) httpResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("POST /rpc did not return within 10s")
		return httpResult{}
	}
}

func TestRPCMethodNotAllowed(t *testing.T) {
	b := startBridge(t, web.Options{})
	for _, method := range []string{"GET", "PUT", "DELETE", "PATCH", "HEAD"} {
		resp, body := do(t, b, httpReq{method: method, path: "/rpc", ctype: "application/json"})
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("%s /rpc: status %d, want 405; body %q", method, resp.StatusCode, body)
		}
		if allow := resp.Header.Get("Allow"); allow != "POST" {
			t.Errorf("%s /rpc: Allow %q, want POST", method, allow)
		}
	}
}

func TestRPCContentType(t *testing.T) {
	b := startBridge(t, web.Options{})
	const ping = `{"jsonrpc":"2.0","id":1,"method":"bridge.ping"}`
	for _, tc := range []struct {
		ctype string
		want  int
	}{
		{"", http.StatusUnsupportedMediaType},
		{"text/plain", http.StatusUnsupportedMediaType}, // what a cross-origin "simple" request may send
		{"text/plain; charset=utf-8", http.StatusUnsupportedMediaType},
		{"application/x-www-form-urlencoded", http.StatusUnsupportedMediaType},
		{"multipart/form-data; boundary=x", http.StatusUnsupportedMediaType},
		{"application/json-rpc", http.StatusUnsupportedMediaType},
		{"application/jsonx", http.StatusUnsupportedMediaType},
		{"garbage", http.StatusUnsupportedMediaType},
		{"application/json", http.StatusOK},
		{"application/json; charset=utf-8", http.StatusOK},
		{"application/json;charset=UTF-8", http.StatusOK},
		{"Application/JSON", http.StatusOK}, // media types are case-insensitive
	} {
		resp, body := do(t, b, httpReq{method: "POST", path: "/rpc", ctype: tc.ctype, body: ping})
		if resp.StatusCode != tc.want {
			t.Errorf("Content-Type %q: status %d, want %d; body %q", tc.ctype, resp.StatusCode, tc.want, body)
			continue
		}
		if tc.want == http.StatusOK {
			if m := decodeObject(t, body); m["result"] == nil || m["id"] != 1.0 {
				t.Errorf("Content-Type %q: reply %s, want a ping result for id 1", tc.ctype, body)
			}
		}
	}
}

func TestRPCReplies(t *testing.T) {
	b := startBridge(t, web.Options{})

	t.Run("single call", func(t *testing.T) {
		resp, body := post(t, b, `{"jsonrpc":"2.0","id":"p-1","method":"bridge.ping"}`)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d, want 200; body %q", resp.StatusCode, body)
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("Content-Type %q, want application/json", ct)
		}
		m := decodeObject(t, body)
		if m["jsonrpc"] != "2.0" || m["id"] != "p-1" || m["result"] == nil || m["error"] != nil {
			t.Fatalf("reply %s, want a ping result for id p-1", body)
		}
	})

	t.Run("ids echoed exactly", func(t *testing.T) {
		for _, id := range []string{`12345678901234567890`, `-9007199254740993`, `1.5e3`, `null`, `"ü-\u00e9"`} {
			_, body := post(t, b, `{"jsonrpc":"2.0","id":`+id+`,"method":"bridge.ping"}`)
			if !bytes.Contains(body, []byte(`"id":`+id)) {
				t.Errorf("id %s: reply %s does not carry it byte for byte", id, body)
			}
		}
	})

	t.Run("unknown method", func(t *testing.T) {
		for _, method := range []string{"nodot", "bridge.nosuch", "aftereffects."} {
			resp, body := post(t, b, `{"jsonrpc":"2.0","id":2,"method":"`+method+`"}`)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%s: status %d, want 200 (errors are JSON-RPC replies); body %q", method, resp.StatusCode, body)
			}
			if c := errCode(t, decodeObject(t, body)); c != rpc.CodeMethodNotFound {
				t.Errorf("%s: reply %s, want %d", method, body, rpc.CodeMethodNotFound)
			}
		}
	})

	t.Run("invalid params of a built-in", func(t *testing.T) {
		resp, body := post(t, b, `{"jsonrpc":"2.0","id":3,"method":"bridge.sessions","params":[1,2]}`)
		if resp.StatusCode != http.StatusOK || errCode(t, decodeObject(t, body)) != rpc.CodeInvalidParams {
			t.Fatalf("status %d, reply %s; want 200 with %d", resp.StatusCode, body, rpc.CodeInvalidParams)
		}
	})

	t.Run("no session offers the method", func(t *testing.T) {
		resp, body := post(t, b, `{"jsonrpc":"2.0","id":4,"method":"photoshop.open","meta":{"wait_ms":20}}`)
		m := decodeObject(t, body)
		if resp.StatusCode != http.StatusOK || errCode(t, m) != rpc.CodeNoSession {
			t.Fatalf("status %d, reply %s; want 200 with %d", resp.StatusCode, body, rpc.CodeNoSession)
		}
		data, _ := m["error"].(map[string]any)["data"].(map[string]any)
		if data["app"] != "photoshop" || data["method"] != "photoshop.open" {
			t.Errorf("error data %v, want app and method named", data)
		}
	})

	t.Run("batch", func(t *testing.T) {
		resp, body := post(t, b, `[
			{"jsonrpc":"2.0","id":1,"method":"bridge.ping"},
			{"jsonrpc":"2.0","method":"bridge.ping"},
			{"jsonrpc":"2.0","id":"x","method":"nodot"},
			{"foo":"bar"},
			{"jsonrpc":"2.0","id":[1],"method":"bridge.ping"}
		]`)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d, want 200; body %q", resp.StatusCode, body)
		}
		var arr []map[string]any
		if err := json.Unmarshal(body, &arr); err != nil {
			t.Fatalf("want a JSON array, got %q", body)
		}
		// The notification gets no reply; the two invalid members get -32600 with id null.
		if len(arr) != 4 {
			t.Fatalf("want 4 replies, got %s", body)
		}
		nulls := 0
		for _, m := range arr {
			switch m["id"] {
			case 1.0:
				if m["result"] == nil {
					t.Errorf("id 1: %v, want a ping result", m)
				}
			case "x":
				if errCode(t, m) != rpc.CodeMethodNotFound {
					t.Errorf(`id "x": %v, want %d`, m, rpc.CodeMethodNotFound)
				}
			case nil:
				nulls++
				if errCode(t, m) != rpc.CodeInvalidRequest {
					t.Errorf("id null: %v, want %d", m, rpc.CodeInvalidRequest)
				}
			default:
				t.Errorf("unexpected reply %v", m)
			}
		}
		if nulls != 2 {
			t.Errorf("want 2 replies with id null, got %d in %s", nulls, body)
		}
	})

	t.Run("batch with two invalid members", func(t *testing.T) {
		_, body := post(t, b, `[1,2]`)
		var arr []map[string]any
		if err := json.Unmarshal(body, &arr); err != nil || len(arr) != 2 {
			t.Fatalf("reply %s, want two -32600 replies", body)
		}
		for _, m := range arr {
			if errCode(t, m) != rpc.CodeInvalidRequest || m["id"] != nil {
				t.Errorf("member reply %v, want %d with id null", m, rpc.CodeInvalidRequest)
			}
		}
	})

	for _, tc := range []struct{ name, body string }{
		{"notification", `{"jsonrpc":"2.0","method":"bridge.ping"}`},
		{"routed notification", `{"jsonrpc":"2.0","method":"aftereffects.refresh","params":{}}`},
		{"batch of notifications", `[{"jsonrpc":"2.0","method":"bridge.ping"},{"jsonrpc":"2.0","method":"bridge.publish","params":{"topic":"t","data":1}}]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := post(t, b, tc.body)
			if resp.StatusCode != http.StatusNoContent || len(body) != 0 {
				t.Fatalf("status %d, body %q; want 204 and no body", resp.StatusCode, body)
			}
		})
	}

	for _, tc := range []struct {
		name, body string
		code       int64
	}{
		{"invalid JSON", `{"jsonrpc":"2.0","id":1,"method":"bridge.ping"`, rpc.CodeParseError},
		{"invalid JSON in a batch", `[{"jsonrpc":"2.0","id":1,"method":"bridge.ping"},{"jsonrpc":"2.0","method"]`, rpc.CodeParseError},
		{"empty body", ``, rpc.CodeParseError},
		{"empty batch", `[]`, rpc.CodeInvalidRequest},
		{"scalar", `42`, rpc.CodeInvalidRequest},
		{"no jsonrpc member", `{"id":1,"method":"bridge.ping"}`, rpc.CodeInvalidRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := post(t, b, tc.body)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d, want 200; body %q", resp.StatusCode, body)
			}
			m := decodeObject(t, body)
			if errCode(t, m) != tc.code {
				t.Fatalf("reply %s, want %d", body, tc.code)
			}
			if tc.code == rpc.CodeParseError && (m["id"] != nil || !bytes.Contains(body, []byte(`"id":null`))) {
				t.Errorf("parse error reply %s, want id null", body)
			}
		})
	}
}

func TestRPCTooBig(t *testing.T) {
	const limit = 1024
	b := startBridge(t, web.Options{MaxMessage: limit})
	msg := func(size int) string {
		head, tail := `{"jsonrpc":"2.0","id":1,"method":"bridge.ping","params":{"pad":"`, `"}}`
		return head + strings.Repeat("x", size-len(head)-len(tail)) + tail
	}
	resp, body := post(t, b, msg(limit))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("a body of exactly the limit: status %d, want 200; body %q", resp.StatusCode, body)
	}
	for _, size := range []int{limit + 1, 4 * limit} {
		resp, body := post(t, b, msg(size))
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("a body of %d bytes (limit %d): status %d, want 413; body %q", size, limit, resp.StatusCode, body)
		}
	}
	// The bridge still answers afterwards.
	if resp, body := post(t, b, msg(100)); resp.StatusCode != http.StatusOK {
		t.Fatalf("after 413: status %d; body %q", resp.StatusCode, body)
	}
}

func TestRPCNeedsWebsocket(t *testing.T) {
	b := startBridge(t, web.Options{})
	for _, tc := range []struct{ method, params string }{
		{"bridge.hello", `{"app":"aftereffects","methods":["get_items"]}`},
		{"bridge.register", `{"methods":["get_items"]}`},
		{"bridge.unregister", `{"methods":["get_items"]}`},
		{"bridge.subscribe", `{"topics":["session.*"]}`},
		{"bridge.unsubscribe", `{"topics":["session.*"]}`},
	} {
		resp, body := post(t, b, `{"jsonrpc":"2.0","id":1,"method":"`+tc.method+`","params":`+tc.params+`}`)
		m := decodeObject(t, body)
		if resp.StatusCode != http.StatusOK || errCode(t, m) != rpc.CodeMethodNotFound {
			t.Errorf("%s: status %d, reply %s; want 200 with %d", tc.method, resp.StatusCode, body, rpc.CodeMethodNotFound)
			continue
		}
		if msg, _ := m["error"].(map[string]any)["message"].(string); !strings.Contains(msg, "needs a websocket session") {
			t.Errorf("%s: message %q does not say it needs a websocket session", tc.method, msg)
		}
	}
	// The other built-ins work over /rpc: publish reaches websocket subscribers.
	sub := bridgetest.Dial(t, b.WSURL, nil)
	if r := sub.Call(1, "bridge.subscribe", map[string]any{"topics": []string{"render.*"}}); r["error"] != nil {
		t.Fatalf("subscribe: %v", r)
	}
	_, body := post(t, b, `{"jsonrpc":"2.0","id":1,"method":"bridge.publish","params":{"topic":"render.done","data":{"shot":"sh010"}}}`)
	if res, _ := decodeObject(t, body)["result"].(map[string]any); res["delivered"] != 1.0 {
		t.Fatalf("publish over /rpc answered %s, want delivered 1", body)
	}
	ev := sub.Expect(5*time.Second, func(m map[string]any) bool { return m["method"] == "bridge.event" })
	if p, _ := ev["params"].(map[string]any); p["topic"] != "render.done" {
		t.Fatalf("subscriber got %v", ev)
	}
	if _, body := post(t, b, `{"jsonrpc":"2.0","id":1,"method":"bridge.sessions"}`); decodeObject(t, body)["result"] == nil {
		t.Fatalf("sessions over /rpc answered %s", body)
	}
	// hello over /rpc registers nothing.
	if _, body := post(t, b, `{"jsonrpc":"2.0","id":1,"method":"aftereffects.get_items","meta":{"wait_ms":0}}`); errCode(t, decodeObject(t, body)) != rpc.CodeNoSession {
		t.Errorf("after hello over /rpc, a call to its method answered %s, want %d", body, rpc.CodeNoSession)
	}
}

// forwardedIDPattern is the shape of a forwarded id: a string.
var forwardedIDPattern = regexp.MustCompile(`^\{"jsonrpc":"2\.0","id":("[^"]+"),"method":"get_items","params":\{"comps" : true\},"meta":\{"caller":\{"app":"http","instance":"127\.0\.0\.1:\d+","user_agent":"Go-http-client/1\.1"\},"timeout_ms":\d+,"attempt":1\}\}$`)

func TestRPCRoutedCall(t *testing.T) {
	b := startBridge(t, web.Options{})
	host, hello := startHost(t, b, "get_items")
	session := hello["session"].(string)

	t.Run("result", func(t *testing.T) {
		ch := postAsync(context.Background(), b, `{"jsonrpc":"2.0","id":12345678901234567890,"method":"AfterEffects.get_items","params":{"comps" : true}}`)
		raw := host.ReadRaw(5 * time.Second)
		mm := forwardedIDPattern.FindSubmatch(raw)
		if mm == nil {
			t.Fatalf("host received %s, not the frame docs/protocol.md (Routing) shows", raw)
		}
		host.Send(`{"jsonrpc":"2.0","id":` + string(mm[1]) + `,"result":{"items":[1,2]}}`)
		r := waitResult(t, ch)
		if r.err != nil || r.status != http.StatusOK {
			t.Fatalf("POST: %v, status %d, body %q", r.err, r.status, r.body)
		}
		if !bytes.Contains(r.body, []byte(`"id":12345678901234567890`)) || !bytes.Contains(r.body, []byte(`"result":{"items":[1,2]}`)) {
			t.Fatalf("reply %s: want the caller's exact id and the host's result as sent", r.body)
		}
		checkMeta(t, decodeObject(t, r.body), session)
	})

	t.Run("host error", func(t *testing.T) {
		ch := postAsync(context.Background(), b, `{"jsonrpc":"2.0","id":"e","method":"aftereffects.get_items","params":{"comps" : true}}`)
		req := host.Expect(5*time.Second, func(m map[string]any) bool { return m["method"] == "get_items" })
		host.Send(map[string]any{"jsonrpc": "2.0", "id": req["id"], "error": map[string]any{"code": 7, "message": "no project open"}})
		r := waitResult(t, ch)
		if r.err != nil || r.status != http.StatusOK {
			t.Fatalf("POST: %v, status %d, body %q", r.err, r.status, r.body)
		}
		m := decodeObject(t, r.body)
		if errCode(t, m) != 7 || m["id"] != "e" {
			t.Fatalf("reply %s, want the host's error for id e", r.body)
		}
		checkMeta(t, m, session)
	})

	t.Run("batch", func(t *testing.T) {
		ch := postAsync(context.Background(), b, `[
			{"jsonrpc":"2.0","id":1,"method":"aftereffects.get_items","params":{"comps" : true}},
			{"jsonrpc":"2.0","id":2,"method":"aftereffects.get_items","params":{"comps" : true}},
			{"jsonrpc":"2.0","id":3,"method":"bridge.ping"},
			{"jsonrpc":"2.0","method":"aftereffects.get_items","params":{"comps" : true}}
		]`)
		// Two calls and the notification reach the host; answer the calls in reverse order.
		var ids []any
		for range 3 {
			m := host.Expect(5*time.Second, func(m map[string]any) bool { return m["method"] == "get_items" })
			if id, ok := m["id"]; ok {
				ids = append(ids, id)
			}
		}
		if len(ids) != 2 {
			t.Fatalf("host received %d calls, want 2 (and a notification)", len(ids))
		}
		for i := len(ids) - 1; i >= 0; i-- {
			host.Send(map[string]any{"jsonrpc": "2.0", "id": ids[i], "result": ids[i]})
		}
		r := waitResult(t, ch)
		if r.err != nil || r.status != http.StatusOK {
			t.Fatalf("POST: %v, status %d, body %q", r.err, r.status, r.body)
		}
		got := byID(t, r.body)
		if len(got) != 3 || got["3"]["result"] == nil {
			t.Fatalf("reply %s: want replies for ids 1, 2 and 3", r.body)
		}
		seen := map[any]bool{}
		for _, id := range []string{"1", "2"} {
			checkMeta(t, got[id], session)
			seen[got[id]["result"]] = true
		}
		if len(seen) != 2 {
			t.Fatalf("reply %s: the two calls got the same forwarded id's answer", r.body)
		}
	})

	t.Run("concurrent requests reuse an id", func(t *testing.T) {
		// Every request is its own caller: the same id in flight from two
		// HTTP clients is no conflict, and no reply crosses over.
		const n = 8
		chs := make([]<-chan httpResult, n)
		for i := range n {
			chs[i] = postAsync(context.Background(), b, fmt.Sprintf(`{"jsonrpc":"2.0","id":1,"method":"aftereffects.get_items","params":{"n":%d}}`, i))
		}
		for range n {
			m := host.Expect(5*time.Second, func(m map[string]any) bool { return m["method"] == "get_items" })
			host.Send(map[string]any{"jsonrpc": "2.0", "id": m["id"], "result": m["params"]})
		}
		for i, ch := range chs {
			r := waitResult(t, ch)
			if r.err != nil || r.status != http.StatusOK {
				t.Fatalf("POST %d: %v, status %d, body %q", i, r.err, r.status, r.body)
			}
			res, _ := decodeObject(t, r.body)["result"].(map[string]any)
			if res["n"] != float64(i) {
				t.Fatalf("POST %d got reply %s", i, r.body)
			}
		}
	})

	t.Run("routed notification", func(t *testing.T) {
		resp, body := post(t, b, `{"jsonrpc":"2.0","method":"aftereffects.get_items","params":{"comps" : true}}`)
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("status %d, want 204; body %q", resp.StatusCode, body)
		}
		m := host.Expect(5*time.Second, func(m map[string]any) bool { return m["method"] == "get_items" })
		if _, hasID := m["id"]; hasID {
			t.Fatalf("host received %v, want a notification", m)
		}
	})
}

func checkMeta(t *testing.T, reply map[string]any, session string) {
	t.Helper()
	meta, _ := reply["meta"].(map[string]any)
	if meta["app"] != "aftereffects" || meta["instance"] != "ae-1" || meta["session"] != session {
		t.Fatalf("reply meta %v, want app aftereffects, instance ae-1, session %s", reply["meta"], session)
	}
}

// TestRPCClientGoneCancelsAtHost: an HTTP client that goes away cancels its
// call at the host with the forwarded id.
func TestRPCClientGoneCancelsAtHost(t *testing.T) {
	b := startBridge(t, web.Options{})
	host, _ := startHost(t, b, "render")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := postAsync(ctx, b, `{"jsonrpc":"2.0","id":1,"method":"aftereffects.render"}`)
	req := host.Expect(5*time.Second, func(m map[string]any) bool { return m["method"] == "render" })
	fid, ok := req["id"].(string)
	if !ok {
		t.Fatalf("forwarded call %v has no string id", req)
	}
	cancel()
	if r := waitResult(t, ch); r.err == nil {
		t.Fatalf("POST returned %d %q after its context was cancelled", r.status, r.body)
	}
	m := host.Expect(5*time.Second, func(m map[string]any) bool { return m["method"] == "$/cancelRequest" })
	if _, hasID := m["id"]; hasID {
		t.Fatalf("$/cancelRequest %v is not a notification", m)
	}
	if p, _ := m["params"].(map[string]any); p["id"] != fid {
		t.Fatalf("$/cancelRequest %v, want params.id %q", m, fid)
	}

	// The host's late reply is dropped, and the bridge goes on serving.
	host.Send(map[string]any{"jsonrpc": "2.0", "id": fid, "result": "late"})
	next := postAsync(context.Background(), b, `{"jsonrpc":"2.0","id":1,"method":"aftereffects.render"}`)
	req2 := host.Expect(5*time.Second, func(m map[string]any) bool { return m["method"] == "render" })
	if req2["id"] == fid {
		t.Fatalf("forwarded id %q reused", fid)
	}
	host.Send(map[string]any{"jsonrpc": "2.0", "id": req2["id"], "result": "done"})
	r := waitResult(t, next)
	if r.status != http.StatusOK || decodeObject(t, r.body)["result"] != "done" {
		t.Fatalf("next call: status %d, body %q", r.status, r.body)
	}
}

// TestRPCPreflight: the JSON content type forces a CORS preflight, which
// the bridge never grants, whatever the origin.
func TestRPCPreflight(t *testing.T) {
	b := startBridge(t, web.Options{Token: testToken, AllowOrigins: []string{"*.example.com", "null"}})
	for _, origin := range []string{"https://evil.example", "https://app.example.com", "null", b.URL} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		req, _ := http.NewRequestWithContext(ctx, "OPTIONS", b.URL+"/rpc", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "content-type")
		resp, err := b.Server.Client().Do(req)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Errorf("preflight from %s: status %d, want a refusal", origin, resp.StatusCode)
		}
		for _, h := range []string{"Access-Control-Allow-Origin", "Access-Control-Allow-Methods", "Access-Control-Allow-Headers"} {
			if v := resp.Header.Get(h); v != "" {
				t.Errorf("preflight from %s: %s: %q, want none", origin, h, v)
			}
		}
	}
	// A cross-origin POST the browser would send anyway is refused too.
	resp, _ := do(t, b, httpReq{method: "POST", path: "/rpc", origin: "https://evil.example", ctype: "text/plain",
		body: `{"jsonrpc":"2.0","id":1,"method":"bridge.ping"}`})
	if resp.StatusCode != http.StatusForbidden || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("simple cross-origin POST: status %d, ACAO %q; want 403 and none", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
	}
}
