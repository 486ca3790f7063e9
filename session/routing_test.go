package session_test

// End-to-end tests of routing (DESIGN §3.3, §3.4, §3.5, §3.7): real
// websocket peers on 127.0.0.1 through internal/bridgetest, asserting the
// exact frames a callee and a caller see.

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/dccbridge/dccbridge/internal/bridgetest"
	"github.com/dccbridge/dccbridge/session"
)

// rtWait bounds every wait for a message that must come.
const rtWait = 5 * time.Second

// rtStart serves a bridge whose logs are discarded.
func rtStart(t *testing.T, so *session.Options) *bridgetest.Bridge {
	t.Helper()
	if so == nil {
		so = &session.Options{}
	}
	if so.Logger == nil {
		so.Logger = slog.New(slog.DiscardHandler)
	}
	return bridgetest.Start(t, so, nil)
}

// rtJoin dials b and says hello; it returns the peer and its session id.
func rtJoin(t *testing.T, b *bridgetest.Bridge, hello map[string]any) (*bridgetest.Peer, string) {
	t.Helper()
	p := bridgetest.Dial(t, b.WSURL, nil)
	res := p.Hello(hello)
	sid, _ := res["session"].(string)
	if sid == "" {
		t.Fatalf("hello result has no session: %v", res)
	}
	return p, sid
}

// rtNext returns the next message p receives, whatever it is.
func rtNext(t *testing.T, p *bridgetest.Peer) string {
	t.Helper()
	return string(p.ReadRaw(rtWait))
}

var rtSeq atomic.Int64

// rtQuiet proves nothing is on its way to p: it pings the bridge and
// requires the very next message to be the pong. Everything the bridge
// queued for p before it read the ping would arrive first.
func rtQuiet(t *testing.T, p *bridgetest.Peer) {
	t.Helper()
	id := "quiet-" + strconv.FormatInt(rtSeq.Add(1), 10)
	p.Send(`{"jsonrpc":"2.0","id":"` + id + `","method":"bridge.ping"}`)
	got := rtNext(t, p)
	var m struct {
		ID     string          `json:"id"`
		Result json.RawMessage `json:"result"`
	}
	if json.Unmarshal([]byte(got), &m) != nil || m.ID != id || m.Result == nil {
		t.Fatalf("expected nothing but the reply to ping %q, got %s", id, got)
	}
}

// rtMatch requires got to be exactly want, in which <FID> stands for a
// forwarded id (a non-empty JSON string body without escapes), <MS> for a
// non-negative integer and <AT> for an RFC 3339 UTC time with milliseconds.
// It returns what the placeholders matched, in order.
func rtMatch(t *testing.T, got, want string) []string {
	t.Helper()
	pat := regexp.QuoteMeta(want)
	pat = strings.ReplaceAll(pat, "<FID>", `([^"\\]+)`)
	pat = strings.ReplaceAll(pat, "<MS>", `(0|[1-9][0-9]*)`)
	pat = strings.ReplaceAll(pat, "<AT>", `([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z)`)
	m := regexp.MustCompile("^" + pat + "$").FindStringSubmatch(got)
	if m == nil {
		t.Fatalf("unexpected frame\n got: %s\nwant: %s", got, want)
	}
	return m[1:]
}

// rtQ returns s as a JSON string.
func rtQ(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// rtForwarded reads the call p receives and requires it to be exactly the
// frame DESIGN §3.3 shows: the method by the name p offered, params as the
// caller's raw bytes ("" for none), meta naming the caller, timeout_ms in
// [minMS, maxMS] and attempt 1. It returns the forwarded id.
func rtForwarded(t *testing.T, p *bridgetest.Peer, method, params, callerApp, callerInstance string, minMS, maxMS int) string {
	t.Helper()
	want := `{"jsonrpc":"2.0","id":"<FID>","method":` + rtQ(method)
	if params != "" {
		want += `,"params":` + params
	}
	want += `,"meta":{"caller":{"app":` + rtQ(callerApp) + `,"instance":` + rtQ(callerInstance) + `},"timeout_ms":<MS>,"attempt":1}}`
	m := rtMatch(t, rtNext(t, p), want)
	if ms, _ := strconv.Atoi(m[1]); ms < minMS || ms > maxMS {
		t.Fatalf("forwarded meta.timeout_ms = %d, want within [%d, %d]", ms, minMS, maxMS)
	}
	return m[0]
}

// rtAnswerMeta is the meta a reply carries from the session sid.
func rtAnswerMeta(app, instance, sid string) string {
	return `{"app":` + rtQ(app) + `,"instance":` + rtQ(instance) + `,"session":` + rtQ(sid) + `}`
}

// rtError is a decoded error reply.
type rtError struct {
	ID    json.RawMessage `json:"id"`
	Error *struct {
		Code    int64          `json:"code"`
		Message string         `json:"message"`
		Data    map[string]any `json:"data"`
	} `json:"error"`
}

// rtExpectError reads the next message of p and requires it to be an error
// reply with exactly id (raw bytes) and code; it returns error.data.
func rtExpectError(t *testing.T, p *bridgetest.Peer, id string, code int64) map[string]any {
	t.Helper()
	got := rtNext(t, p)
	var e rtError
	if err := json.Unmarshal([]byte(got), &e); err != nil || e.Error == nil || string(e.ID) != id || e.Error.Code != code {
		t.Fatalf("want error %d for id %s, got %s", code, id, got)
	}
	if e.Error.Message == "" {
		t.Fatalf("error without a message: %s", got)
	}
	return e.Error.Data
}

// rtWantData requires error.data to hold each of want's members.
func rtWantData(t *testing.T, data map[string]any, want map[string]any) {
	t.Helper()
	for k, v := range want {
		if data[k] != v {
			t.Fatalf("error.data[%q] = %v, want %v (data: %v)", k, data[k], v, data)
		}
	}
}

func TestRoutingAllDirectionsExactFrames(t *testing.T) {
	b := rtStart(t, nil)
	ae, aeSID := rtJoin(t, b, map[string]any{"app": "AfterEffects", "kind": "host", "instance": "ae-1", "methods": []string{"get_items", "log"}})
	tool, toolSID := rtJoin(t, b, map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-1", "methods": []string{"AfterEffects.publish_route"}})
	tracker, trackerSID := rtJoin(t, b, map[string]any{"app": "tracker", "kind": "tool", "instance": "trk-1", "methods": []string{"get_task"}})

	// The panel → tool method is registered after hello, as the SDK does.
	reg := tool.Call("reg", "bridge.register", map[string]any{"methods": []string{"publish"}})
	if got := fmt.Sprint(reg["result"]); got != "map[methods:[aftereffects.publish_route pipeline.publish]]" {
		t.Fatalf("register result = %s", got)
	}

	const defaultMS = 600000 // the bridge's default timeout, 10 min
	fids := map[string]bool{}
	cases := []struct {
		name         string
		caller       *bridgetest.Peer
		callerApp    string
		callerInst   string
		callee       *bridgetest.Peer
		calleeApp    string
		calleeInst   string
		calleeSID    string
		id           string // raw
		method       string // as called
		offered      string // as the callee offered it
		params       string // raw, odd on purpose
		meta         string // raw, "" for none
		minMS, maxMS int
		reply        string // what the callee answers after "id": "result":… or "error":…
		wantReply    string // what the caller gets after "id":<id>,
	}{
		{
			name: "tool to host, string id", caller: tool, callerApp: "pipeline", callerInst: "pub-1",
			callee: ae, calleeApp: "aftereffects", calleeInst: "ae-1", calleeSID: aeSID,
			id: `"t-9"`, method: "aftereffects.get_items", offered: "get_items",
			params: `{ "comps" :true,"z":1,  "a":[1, 2 ,{"é":"\u00e9"}] }`,
			meta:   `{"timeout_ms":600000}`, minMS: defaultMS / 2, maxMS: defaultMS,
			reply: `"result" : {"b" : 2,"a":[1, 2]} `, wantReply: `"result":{"b" : 2,"a":[1, 2]}`,
		},
		{
			name: "tool to host, app case-folded, big number id", caller: tool, callerApp: "pipeline", callerInst: "pub-1",
			callee: ae, calleeApp: "aftereffects", calleeInst: "ae-1", calleeSID: aeSID,
			id: `12345678901234567890123`, method: "AfterEffects.get_items", offered: "get_items",
			params: `[ 1,"two" , {"three":3}]`, meta: `{"timeout_ms":1500,"wait_ms":10}`, minMS: 1, maxMS: 1500,
			reply: `"result":[]`, wantReply: `"result":[]`,
		},
		{
			name: "tool to host, callee error forwarded as is", caller: tool, callerApp: "pipeline", callerInst: "pub-1",
			callee: ae, calleeApp: "aftereffects", calleeInst: "ae-1", calleeSID: aeSID,
			id: `"e-1"`, method: "aftereffects.get_items", offered: "get_items",
			params: `{}`, minMS: defaultMS / 2, maxMS: defaultMS,
			reply:     `"error":{"code":-32000, "message":"no project open","data":{"x":[1]}}`,
			wantReply: `"error":{"code":-32000, "message":"no project open","data":{"x":[1]}}`,
		},
		{
			name: "panel to tool (registered later), negative id", caller: ae, callerApp: "aftereffects", callerInst: "ae-1",
			callee: tool, calleeApp: "pipeline", calleeInst: "pub-1", calleeSID: toolSID,
			id: `-7`, method: "pipeline.publish", offered: "publish",
			params: `{"path":"C:\\shots\\sh010.aep","note":"line\nbreak"}`, minMS: defaultMS / 2, maxMS: defaultMS,
			reply: `"result":"published"`, wantReply: `"result":"published"`,
		},
		{
			name: "panel to tool, dotted offer in another namespace, null id", caller: ae, callerApp: "aftereffects", callerInst: "ae-1",
			callee: tool, calleeApp: "pipeline", calleeInst: "pub-1", calleeSID: toolSID,
			id: `null`, method: "aftereffects.publish_route", offered: "AfterEffects.publish_route",
			params: `{"route" : "/publish"}`, minMS: defaultMS / 2, maxMS: defaultMS,
			reply: `"result":{"ok":true}`, wantReply: `"result":{"ok":true}`,
		},
		{
			name: "tool to tool, no params", caller: tool, callerApp: "pipeline", callerInst: "pub-1",
			callee: tracker, calleeApp: "tracker", calleeInst: "trk-1", calleeSID: trackerSID,
			id: `0`, method: "tracker.get_task", offered: "get_task",
			minMS: defaultMS / 2, maxMS: defaultMS,
			reply: `"result":null`, wantReply: `"result":null`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := `{"jsonrpc":"2.0","id":` + tc.id + `,"method":"` + tc.method + `"`
			if tc.params != "" {
				req += `,"params":` + tc.params
			}
			if tc.meta != "" {
				req += ` ,"meta":` + tc.meta
			}
			tc.caller.Send(req + "}")
			fid := rtForwarded(t, tc.callee, tc.offered, tc.params, tc.callerApp, tc.callerInst, tc.minMS, tc.maxMS)
			if fids[fid] || fid == strings.Trim(tc.id, `"`) {
				t.Fatalf("forwarded id %q reused or not rewritten", fid)
			}
			fids[fid] = true
			tc.callee.Send(`{"id":"` + fid + `", "jsonrpc":"2.0",` + tc.reply + `}`)
			want := `{"jsonrpc":"2.0","id":` + tc.id + `,` + tc.wantReply + `,"meta":` + rtAnswerMeta(tc.calleeApp, tc.calleeInst, tc.calleeSID) + `}`
			if got := rtNext(t, tc.caller); got != want {
				t.Fatalf("caller got\n %s\nwant\n %s", got, want)
			}
		})
	}

	t.Run("notification forwarded as a notification", func(t *testing.T) {
		tool.Send(`{"jsonrpc":"2.0","method":"aftereffects.log","params":{"msg" : "hi"}}`)
		want := `{"jsonrpc":"2.0","method":"log","params":{"msg" : "hi"},"meta":{"caller":{"app":"pipeline","instance":"pub-1"}}}`
		if got := rtNext(t, ae); got != want {
			t.Fatalf("callee got\n %s\nwant\n %s", got, want)
		}
		rtQuiet(t, tool) // no reply to a notification
	})

	for _, p := range []*bridgetest.Peer{ae, tool, tracker} {
		rtQuiet(t, p)
	}
}

// rtAnswer reads a forwarded call on p and answers it with result.
func rtAnswer(t *testing.T, p *bridgetest.Peer, result string) (fid string) {
	t.Helper()
	var m struct {
		ID     string `json:"id"`
		Method string `json:"method"`
	}
	got := rtNext(t, p)
	if json.Unmarshal([]byte(got), &m) != nil || m.ID == "" || m.Method == "" {
		t.Fatalf("want a forwarded call, got %s", got)
	}
	p.Send(`{"jsonrpc":"2.0","id":"` + m.ID + `","result":` + result + `}`)
	return m.ID
}

func TestRoutingTwoInstances(t *testing.T) {
	b := rtStart(t, nil)
	ae1, sid1 := rtJoin(t, b, map[string]any{"app": "aftereffects", "instance": "ae-1", "methods": []string{"get_items"}})
	ae2, sid2 := rtJoin(t, b, map[string]any{"app": "aftereffects", "instance": "ae-2", "methods": []string{"get_items"}})
	tool, _ := rtJoin(t, b, map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-1"})
	hosts := map[string]*bridgetest.Peer{"ae-1": ae1, "ae-2": ae2}
	sids := map[string]string{"ae-1": sid1, "ae-2": sid2}

	// With meta.target each call reaches the named instance, though the
	// other one spoke last.
	other := map[string]string{"ae-1": "ae-2", "ae-2": "ae-1"}
	n := 0
	for _, target := range []string{"ae-2", "ae-1", "ae-2", "ae-2", "ae-1"} {
		n++
		rtQuiet(t, hosts[other[target]])
		tool.Send(`{"jsonrpc":"2.0","id":` + strconv.Itoa(n) + `,"method":"aftereffects.get_items","meta":{"target":"` + target + `"}}`)
		rtAnswer(t, hosts[target], `"`+target+`"`)
		want := `{"jsonrpc":"2.0","id":` + strconv.Itoa(n) + `,"result":"` + target + `","meta":` + rtAnswerMeta("aftereffects", target, sids[target]) + `}`
		if got := rtNext(t, tool); got != want {
			t.Fatalf("target %s: caller got %s, want %s", target, got, want)
		}
	}
	// Without it, the instance with the most recent inbound message answers.
	for _, last := range []string{"ae-1", "ae-2", "ae-1", "ae-1", "ae-2"} {
		n++
		rtQuiet(t, hosts[last]) // an inbound message from last
		tool.Send(`{"jsonrpc":"2.0","id":` + strconv.Itoa(n) + `,"method":"aftereffects.get_items"}`)
		rtAnswer(t, hosts[last], `"`+last+`"`)
		want := `{"jsonrpc":"2.0","id":` + strconv.Itoa(n) + `,"result":"` + last + `","meta":` + rtAnswerMeta("aftereffects", last, sids[last]) + `}`
		if got := rtNext(t, tool); got != want {
			t.Fatalf("most recent %s: caller got %s, want %s", last, got, want)
		}
	}
	// A target that is not connected waits, then -32001 naming it.
	tool.Send(`{"jsonrpc":"2.0","id":"gone","method":"aftereffects.get_items","meta":{"target":"ae-9","wait_ms":50}}`)
	data := rtExpectError(t, tool, `"gone"`, -32001)
	rtWantData(t, data, map[string]any{"app": "aftereffects", "instance": "ae-9", "method": "aftereffects.get_items"})
	for _, p := range []*bridgetest.Peer{ae1, ae2, tool} {
		rtQuiet(t, p)
	}
}

func TestRoutingManyToolsManyCalls(t *testing.T) {
	const tools = 32
	perTool := 1000
	if testing.Short() {
		perTool = 100
	}
	b := rtStart(t, nil)
	host, hostSID := rtJoin(t, b, map[string]any{"app": "aftereffects", "instance": "ae-1", "methods": []string{"echo"}})
	peers := make([]*bridgetest.Peer, tools)
	for k := range peers {
		peers[k], _ = rtJoin(t, b, map[string]any{"app": "pipeline", "kind": "tool", "instance": "tool-" + strconv.Itoa(k)})
	}
	deadline := time.Now().Add(3 * time.Minute)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	// readWithin bounds one read: silence this long means something is stuck.
	readWithin := func() time.Duration { return min(20*time.Second, time.Until(deadline)) }
	wantMeta := rtAnswerMeta("aftereffects", "ae-1", hostSID)

	// The host echoes params as the result, exactly tools × perTool times.
	// A read that times out fails the test and ends the goroutine.
	var hostErr error
	hostExited := make(chan struct{})
	go func() {
		defer close(hostExited)
		hostErr = func() error {
			var m struct {
				ID     json.RawMessage `json:"id"`
				Params json.RawMessage `json:"params"`
			}
			for range tools * perTool {
				raw := host.ReadRaw(readWithin())
				m.ID, m.Params = nil, nil
				if err := json.Unmarshal(raw, &m); err != nil || m.ID == nil || m.Params == nil {
					return fmt.Errorf("host got %s", raw)
				}
				out := `{"jsonrpc":"2.0","id":` + string(m.ID) + `,"result":` + string(m.Params) + `}`
				if err := host.Conn.Write(ctx, websocket.MessageText, []byte(out)); err != nil {
					return fmt.Errorf("host write: %w", err)
				}
			}
			return nil
		}()
	}()

	// Each tool keeps 8 to 16 calls outstanding and checks every reply
	// against the request it answers.
	var wg sync.WaitGroup
	errs := make([]error, tools)
	answered := make([]int, tools)
	for k, p := range peers {
		wg.Go(func() {
			window := 8 + k%9
			outstanding := map[string]string{} // id → params
			sent := 0
			for answered[k] < perTool {
				for sent < perTool && len(outstanding) < window {
					id := fmt.Sprintf("%d/%d", k, sent)
					params := fmt.Sprintf(`{"tool":%d,"n":%d}`, k, sent)
					req := `{"jsonrpc":"2.0","id":"` + id + `","method":"aftereffects.echo","params":` + params + `}`
					if err := p.Conn.Write(ctx, websocket.MessageText, []byte(req)); err != nil {
						errs[k] = fmt.Errorf("tool %d write: %w", k, err)
						return
					}
					outstanding[id] = params
					sent++
				}
				raw := p.ReadRaw(readWithin())
				var r struct {
					ID     string          `json:"id"`
					Result json.RawMessage `json:"result"`
					Meta   json.RawMessage `json:"meta"`
				}
				if err := json.Unmarshal(raw, &r); err != nil {
					errs[k] = fmt.Errorf("tool %d: bad reply %s", k, raw)
					return
				}
				params, ok := outstanding[r.ID]
				switch {
				case !ok:
					errs[k] = fmt.Errorf("tool %d: reply to an id it has not outstanding (crossed or duplicated): %s", k, raw)
					return
				case string(r.Result) != params || string(r.Meta) != wantMeta:
					errs[k] = fmt.Errorf("tool %d: reply %s does not answer %s", k, raw, params)
					return
				}
				delete(outstanding, r.ID)
				answered[k]++
			}
		})
	}
	wg.Wait()
	total := 0
	for k := range peers {
		if errs[k] != nil {
			t.Error(errs[k])
		}
		total += answered[k]
	}
	<-hostExited
	if hostErr != nil {
		t.Fatal(hostErr)
	}
	if total != tools*perTool {
		t.Fatalf("%d replies, want %d", total, tools*perTool)
	}
	// Nothing more for anyone: no extra calls, no extra replies.
	rtQuiet(t, host)
	for _, p := range peers {
		rtQuiet(t, p)
	}
}

func TestRoutingBatch(t *testing.T) {
	b := rtStart(t, nil)
	ae, aeSID := rtJoin(t, b, map[string]any{"app": "aftereffects", "instance": "ae-1", "methods": []string{"get_items", "log"}})
	tool, _ := rtJoin(t, b, map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-1"})

	tool.Send(`[
		{"jsonrpc":"2.0","id":"b1","method":"aftereffects.get_items","params":{"n":1}},
		{"jsonrpc":"2.0","id":"b2","method":"aftereffects.get_items","params":{"n":2},"meta":{"timeout_ms":60000}},
		{"jsonrpc":"2.0","id":"b3","method":"bridge.ping"},
		{"jsonrpc":"2.0","method":"aftereffects.log","params":{"n":4}},
		42
	]`)
	// The host receives both calls and the notification, each on its own.
	fids := map[string]string{}
	for range 3 {
		got := rtNext(t, ae)
		var m struct {
			ID     string          `json:"id"`
			Method string          `json:"method"`
			Params json.RawMessage `json:"params"`
		}
		if err := json.Unmarshal([]byte(got), &m); err != nil || strings.HasPrefix(got, "[") {
			t.Fatalf("host got %s", got)
		}
		fids[string(m.Params)] = m.ID
		if m.Method == "log" && m.ID != "" {
			t.Fatalf("the batch's notification reached the host as a call: %s", got)
		}
	}
	fid1, fid2 := fids[`{"n":1}`], fids[`{"n":2}`]
	if fid1 == "" || fid2 == "" || fids[`{"n":4}`] != "" {
		t.Fatalf("host got calls %v", fids)
	}
	ae.Send(`{"jsonrpc":"2.0","id":"` + fid1 + `","result":"one"}`)
	ae.Send(`{"jsonrpc":"2.0","method":"$/progress","params":{"id":"` + fid2 + `","value":{"pct":50}}}`)
	// Progress of a member arrives at once; the batch reply waits for b2.
	if got, want := rtNext(t, tool), `{"jsonrpc":"2.0","method":"$/progress","params":{"id":"b2","value":{"pct":50}}}`; got != want {
		t.Fatalf("caller got %s, want %s", got, want)
	}
	rtQuiet(t, tool)
	ae.Send(`{"jsonrpc":"2.0","id":"` + fid2 + `","result":"two"}`)
	got := rtNext(t, tool)
	var members []json.RawMessage
	if err := json.Unmarshal([]byte(got), &members); err != nil {
		t.Fatalf("want one array reply, got %s", got)
	}
	meta := rtAnswerMeta("aftereffects", "ae-1", aeSID)
	want := map[string]string{
		`"b1"`: `{"jsonrpc":"2.0","id":"b1","result":"one","meta":` + meta + `}`,
		`"b2"`: `{"jsonrpc":"2.0","id":"b2","result":"two","meta":` + meta + `}`,
	}
	seen := map[string]bool{}
	for _, mem := range members {
		var m struct {
			ID     json.RawMessage `json:"id"`
			Result json.RawMessage `json:"result"`
			Error  *struct {
				Code int64 `json:"code"`
			} `json:"error"`
		}
		if err := json.Unmarshal(mem, &m); err != nil {
			t.Fatalf("bad member %s", mem)
		}
		id := string(m.ID)
		seen[id] = true
		switch id {
		case `"b1"`, `"b2"`:
			if string(mem) != want[id] {
				t.Fatalf("member %s\n got %s\nwant %s", id, mem, want[id])
			}
		case `"b3"`:
			var r struct {
				Pong bool `json:"pong"`
			}
			if json.Unmarshal(m.Result, &r) != nil || !r.Pong {
				t.Fatalf("ping member: %s", mem)
			}
		case `null`:
			if m.Error == nil || m.Error.Code != -32600 {
				t.Fatalf("invalid member: %s", mem)
			}
		default:
			t.Fatalf("unexpected member %s", mem)
		}
	}
	if len(members) != 4 || len(seen) != 4 {
		t.Fatalf("want 4 members (notification omitted), got %s", got)
	}
	rtQuiet(t, tool)
	rtQuiet(t, ae)
}

func TestRoutingWaitAndNotFound(t *testing.T) {
	b := rtStart(t, &session.Options{DefaultWait: 20 * time.Second})
	tool, _ := rtJoin(t, b, map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-1"})

	t.Run("no session: wait then -32001", func(t *testing.T) {
		start := time.Now()
		tool.Send(`{"jsonrpc":"2.0","id":"w1","method":"photoshop.open","params":{"path":"a.psd"},"meta":{"wait_ms":50}}`)
		data := rtExpectError(t, tool, `"w1"`, -32001)
		if waited := time.Since(start); waited < 50*time.Millisecond {
			t.Fatalf("-32001 after %v, before wait_ms 50 ran out", waited)
		}
		rtWantData(t, data, map[string]any{"app": "photoshop", "method": "photoshop.open"})
	})

	t.Run("waits and goes through when the panel says hello", func(t *testing.T) {
		tool.Send(`{"jsonrpc":"2.0","id":"w2","method":"Photoshop.open","params":{"path":"b.psd"},"meta":{"wait_ms":30000}}`)
		rtQuiet(t, tool) // the call is waiting now
		ps, psSID := rtJoin(t, b, map[string]any{"app": "photoshop", "instance": "ps-1", "methods": []string{"open"}})
		fid := rtForwarded(t, ps, "open", `{"path":"b.psd"}`, "pipeline", "pub-1", 1, 600000)
		ps.Send(`{"jsonrpc":"2.0","id":"` + fid + `","result":"opened"}`)
		want := `{"jsonrpc":"2.0","id":"w2","result":"opened","meta":` + rtAnswerMeta("photoshop", "ps-1", psSID) + `}`
		if got := rtNext(t, tool); got != want {
			t.Fatalf("caller got %s, want %s", got, want)
		}

		// The app is present now but does not offer save: -32601 at once,
		// not after the 60 s wait.
		tool.Send(`{"jsonrpc":"2.0","id":"w3","method":"photoshop.save","meta":{"wait_ms":60000}}`)
		data := rtExpectError(t, tool, `"w3"`, -32601)
		rtWantData(t, data, map[string]any{"app": "photoshop", "method": "photoshop.save"})
		rtQuiet(t, ps)
	})

	t.Run("method without a dot", func(t *testing.T) {
		tool.Send(`{"jsonrpc":"2.0","id":"w4","method":"open","meta":{"wait_ms":60000}}`)
		data := rtExpectError(t, tool, `"w4"`, -32601)
		rtWantData(t, data, map[string]any{"method": "open"})
	})

	t.Run("registering the method later ends the wait", func(t *testing.T) {
		ae, aeSID := rtJoin(t, b, map[string]any{"app": "aftereffects", "instance": "ae-1", "methods": []string{"get_items"}})
		tool.Send(`{"jsonrpc":"2.0","id":"w5","method":"aftereffects.render","meta":{"wait_ms":30000}}`)
		if data := rtExpectError(t, tool, `"w5"`, -32601); data["app"] != "aftereffects" {
			t.Fatalf("data %v", data)
		}
		ae.Call("r", "bridge.register", map[string]any{"methods": []string{"render"}})
		tool.Send(`{"jsonrpc":"2.0","id":"w6","method":"aftereffects.render","meta":{"wait_ms":30000}}`)
		rtAnswer(t, ae, `1`)
		want := `{"jsonrpc":"2.0","id":"w6","result":1,"meta":` + rtAnswerMeta("aftereffects", "ae-1", aeSID) + `}`
		if got := rtNext(t, tool); got != want {
			t.Fatalf("caller got %s, want %s", got, want)
		}

		// Unregistered: the app is present without it again.
		ae.Call("u", "bridge.unregister", map[string]any{"methods": []string{"render"}})
		tool.Send(`{"jsonrpc":"2.0","id":"w7","method":"aftereffects.render","meta":{"wait_ms":30000}}`)
		rtExpectError(t, tool, `"w7"`, -32601)
		rtQuiet(t, ae)
	})
	rtQuiet(t, tool)
}

func TestRoutingTimeout(t *testing.T) {
	b := rtStart(t, nil)
	ae, _ := rtJoin(t, b, map[string]any{"app": "aftereffects", "instance": "ae-1", "methods": []string{"render"}})
	tool, _ := rtJoin(t, b, map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-1"})

	start := time.Now()
	tool.Send(`{"jsonrpc":"2.0","id":"slow","method":"aftereffects.render","meta":{"timeout_ms":100}}`)
	fid := rtForwarded(t, ae, "render", "", "pipeline", "pub-1", 0, 100)
	data := rtExpectError(t, tool, `"slow"`, -32002)
	if took := time.Since(start); took < 100*time.Millisecond {
		t.Fatalf("-32002 after %v, before timeout_ms 100 ran out", took)
	}
	rtWantData(t, data, map[string]any{"app": "aftereffects", "instance": "ae-1", "method": "aftereffects.render"})
	if got, want := rtNext(t, ae), `{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":"`+fid+`"}}`; got != want {
		t.Fatalf("host got %s, want %s", got, want)
	}
	// The host's late reply is dropped: once the bridge has read it (the
	// host's ping is answered after it), the caller has nothing waiting.
	ae.Send(`{"jsonrpc":"2.0","id":"` + fid + `","result":"late"}`)
	rtQuiet(t, ae)
	rtQuiet(t, tool)
}

func TestRoutingCancel(t *testing.T) {
	b := rtStart(t, nil)
	ae, _ := rtJoin(t, b, map[string]any{"app": "aftereffects", "instance": "ae-1", "methods": []string{"render"}})
	tool, _ := rtJoin(t, b, map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-1"})

	t.Run("written call", func(t *testing.T) {
		tool.Send(`{"jsonrpc":"2.0","id":12345678901234567890123,"method":"aftereffects.render"}`)
		fid := rtForwarded(t, ae, "render", "", "pipeline", "pub-1", 1, 600000)
		tool.Send(`{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":12345678901234567890123}}`)
		data := rtExpectError(t, tool, `12345678901234567890123`, -32800)
		rtWantData(t, data, map[string]any{"app": "aftereffects", "instance": "ae-1", "method": "aftereffects.render"})
		if got, want := rtNext(t, ae), `{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":"`+fid+`"}}`; got != want {
			t.Fatalf("host got %s, want %s", got, want)
		}
		ae.Send(`{"jsonrpc":"2.0","id":"` + fid + `","result":"late"}`)
		rtQuiet(t, ae)
		rtQuiet(t, tool) // the late reply is dropped
	})

	t.Run("null id", func(t *testing.T) {
		tool.Send(`{"jsonrpc":"2.0","id":null,"method":"aftereffects.render"}`)
		fid := rtForwarded(t, ae, "render", "", "pipeline", "pub-1", 1, 600000)
		tool.Send(`{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":null}}`)
		rtExpectError(t, tool, `null`, -32800)
		if got, want := rtNext(t, ae), `{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":"`+fid+`"}}`; got != want {
			t.Fatalf("host got %s, want %s", got, want)
		}
	})

	t.Run("unknown id ignored", func(t *testing.T) {
		tool.Send(`{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":"nope"}}`)
		tool.Send(`{"jsonrpc":"2.0","method":"$/cancelRequest","params":{}}`)
		rtQuiet(t, tool)
		rtQuiet(t, ae)
	})

	t.Run("waiting call is never sent", func(t *testing.T) {
		tool.Send(`{"jsonrpc":"2.0","id":5,"method":"photoshop.open","meta":{"wait_ms":30000}}`)
		rtQuiet(t, tool) // waiting now
		tool.Send(`{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":5}}`)
		data := rtExpectError(t, tool, `5`, -32800)
		rtWantData(t, data, map[string]any{"app": "photoshop", "method": "photoshop.open"})
		ps, _ := rtJoin(t, b, map[string]any{"app": "photoshop", "instance": "ps-1", "methods": []string{"open"}})
		rtQuiet(t, ps) // a call woken by the hello would be queued before this pong
		rtQuiet(t, tool)
	})
}

func TestRoutingProgress(t *testing.T) {
	b := rtStart(t, nil)
	ae1, sid1 := rtJoin(t, b, map[string]any{"app": "aftereffects", "instance": "ae-1", "methods": []string{"render"}})
	ae2, _ := rtJoin(t, b, map[string]any{"app": "aftereffects", "instance": "ae-2", "methods": []string{"render"}})
	tool, _ := rtJoin(t, b, map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-1"})

	tool.Send(`{"jsonrpc":"2.0","id":77,"method":"aftereffects.render","meta":{"target":"ae-1"}}`)
	fid := rtForwarded(t, ae1, "render", "", "pipeline", "pub-1", 1, 600000)

	// Progress from anyone but the callee is ignored: another host, and the
	// caller itself, naming the forwarded id; and the caller's own id.
	ae2.Send(`{"jsonrpc":"2.0","method":"$/progress","params":{"id":"` + fid + `","value":"from ae-2"}}`)
	rtQuiet(t, ae2)
	tool.Send(`{"jsonrpc":"2.0","method":"$/progress","params":{"id":"` + fid + `","value":"from the caller"}}`)
	tool.Send(`{"jsonrpc":"2.0","method":"$/progress","params":{"id":77,"value":"own id"}}`)
	rtQuiet(t, tool)

	for _, v := range []string{`{"pct": 10, "step":"comp"}`, `"half"`, `[1,2]`} {
		ae1.Send(`{"jsonrpc":"2.0","method":"$/progress","params":{"id":"` + fid + `","value":` + v + `}}`)
		if got, want := rtNext(t, tool), `{"jsonrpc":"2.0","method":"$/progress","params":{"id":77,"value":`+v+`}}`; got != want {
			t.Fatalf("caller got %s, want %s", got, want)
		}
	}
	ae1.Send(`{"jsonrpc":"2.0","id":"` + fid + `","result":"done"}`)
	if got, want := rtNext(t, tool), `{"jsonrpc":"2.0","id":77,"result":"done","meta":`+rtAnswerMeta("aftereffects", "ae-1", sid1)+`}`; got != want {
		t.Fatalf("caller got %s, want %s", got, want)
	}
	// Progress after the reply is ignored.
	ae1.Send(`{"jsonrpc":"2.0","method":"$/progress","params":{"id":"` + fid + `","value":"late"}}`)
	rtQuiet(t, ae1)
	rtQuiet(t, tool)
}

func TestRoutingDisconnects(t *testing.T) {
	b := rtStart(t, nil)
	ae, _ := rtJoin(t, b, map[string]any{"app": "aftereffects", "instance": "ae-1", "methods": []string{"render"}})

	t.Run("caller leaves: the host is cancelled", func(t *testing.T) {
		tool, _ := rtJoin(t, b, map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-2"})
		tool.Send(`{"jsonrpc":"2.0","id":"r1","method":"aftereffects.render"}`)
		fid := rtForwarded(t, ae, "render", "", "pipeline", "pub-2", 1, 600000)
		tool.Send(`{"jsonrpc":"2.0","id":"r2","method":"photoshop.open","meta":{"wait_ms":30000}}`)
		rtQuiet(t, tool) // r2 is waiting
		_ = tool.Conn.CloseNow()
		if got, want := rtNext(t, ae), `{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":"`+fid+`"}}`; got != want {
			t.Fatalf("host got %s, want %s", got, want)
		}
		// The waiting call is never sent to a photoshop that appears later.
		ps, _ := rtJoin(t, b, map[string]any{"app": "photoshop", "instance": "ps-1", "methods": []string{"open"}})
		rtQuiet(t, ps)
		ae.Send(`{"jsonrpc":"2.0","id":"` + fid + `","result":"late"}`)
		rtQuiet(t, ae)
	})

	t.Run("callee leaves with a written call: -32004", func(t *testing.T) {
		tool, _ := rtJoin(t, b, map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-1"})
		ae9, _ := rtJoin(t, b, map[string]any{"app": "aftereffects", "instance": "ae-9", "methods": []string{"render"}})
		tool.Send(`{"jsonrpc":"2.0","id":"d1","method":"aftereffects.render","meta":{"target":"ae-9"}}`)
		rtForwarded(t, ae9, "render", "", "pipeline", "pub-1", 1, 600000)
		_ = ae9.Conn.CloseNow()
		data := rtExpectError(t, tool, `"d1"`, -32004)
		rtWantData(t, data, map[string]any{"app": "aftereffects", "instance": "ae-9", "method": "aftereffects.render", "may_have_run": true})
		rtQuiet(t, tool)
	})
}

func TestRoutingDuplicateID(t *testing.T) {
	b := rtStart(t, nil)
	ae, aeSID := rtJoin(t, b, map[string]any{"app": "aftereffects", "instance": "ae-1", "methods": []string{"render"}})
	tool, _ := rtJoin(t, b, map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-1"})

	tool.Send(`{"jsonrpc":"2.0","id":7,"method":"aftereffects.render","params":["first"]}`)
	fid := rtForwarded(t, ae, "render", `["first"]`, "pipeline", "pub-1", 1, 600000)
	tool.Send(`{"jsonrpc":"2.0","id":7,"method":"aftereffects.render","params":["second"]}`)
	rtExpectError(t, tool, `7`, -32600)
	rtQuiet(t, ae) // the second never reached the host
	ae.Send(`{"jsonrpc":"2.0","id":"` + fid + `","result":"first done"}`)
	if got, want := rtNext(t, tool), `{"jsonrpc":"2.0","id":7,"result":"first done","meta":`+rtAnswerMeta("aftereffects", "ae-1", aeSID)+`}`; got != want {
		t.Fatalf("caller got %s, want %s", got, want)
	}
	// Once answered, the id is free again.
	tool.Send(`{"jsonrpc":"2.0","id":7,"method":"aftereffects.render","params":["third"]}`)
	rtAnswer(t, ae, `"third done"`)
	if got, want := rtNext(t, tool), `{"jsonrpc":"2.0","id":7,"result":"third done","meta":`+rtAnswerMeta("aftereffects", "ae-1", aeSID)+`}`; got != want {
		t.Fatalf("caller got %s, want %s", got, want)
	}
}

// rtEvent reads the next message of p and requires it to be a bridge.event
// on topic; it returns the event's data.
func rtEvent(t *testing.T, p *bridgetest.Peer, topic string) any {
	t.Helper()
	got := rtNext(t, p)
	var m struct {
		JSONRPC string `json:"jsonrpc"`
		ID      any    `json:"id"`
		Method  string `json:"method"`
		Params  struct {
			Topic string `json:"topic"`
			Data  any    `json:"data"`
			At    string `json:"at"`
		} `json:"params"`
	}
	if err := json.Unmarshal([]byte(got), &m); err != nil || m.JSONRPC != "2.0" || m.ID != nil || strings.Contains(got, `"id"`) ||
		m.Method != "bridge.event" || m.Params.Topic != topic {
		t.Fatalf("want a bridge.event notification on %s, got %s", topic, got)
	}
	rtCheckAt(t, m.Params.At)
	return m.Params.Data
}

// rtCheckAt requires at to be RFC 3339 in UTC with milliseconds.
func rtCheckAt(t *testing.T, at string) {
	t.Helper()
	if !regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$`).MatchString(at) {
		t.Fatalf("at = %q, want RFC 3339 UTC with milliseconds", at)
	}
	ts, err := time.Parse(time.RFC3339Nano, at)
	if err != nil || time.Since(ts).Abs() > time.Minute {
		t.Fatalf("at = %q is not now (%v)", at, err)
	}
}

// rtResult sends a request (id and params raw, params "" for none) and
// returns its result object, failing on an error reply or on any other
// message coming first.
func rtResult(t *testing.T, p *bridgetest.Peer, id, method, params string) map[string]any {
	t.Helper()
	req := `{"jsonrpc":"2.0","id":` + id + `,"method":"` + method + `"`
	if params != "" {
		req += `,"params":` + params
	}
	p.Send(req + "}")
	got := rtNext(t, p)
	var r struct {
		ID     json.RawMessage `json:"id"`
		Result map[string]any  `json:"result"`
	}
	if err := json.Unmarshal([]byte(got), &r); err != nil || string(r.ID) != id || r.Result == nil {
		t.Fatalf("%s: want a result for id %s, got %s", method, id, got)
	}
	return r.Result
}

// rtNorm returns the JSON text raw decoded and encoded again (object keys
// sorted, no spaces), for comparing values.
func rtNorm(raw string) string {
	var v any
	if err := json.Unmarshal([]byte(raw), &v); err != nil {
		return "invalid JSON: " + raw
	}
	return rtJSON(v)
}

// rtJSON encodes v as JSON text, for comparing decoded values.
func rtJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestRoutingContext(t *testing.T) {
	b := rtStart(t, nil)
	ae1, sid1 := rtJoin(t, b, map[string]any{"app": "aftereffects", "instance": "ae-1", "methods": []string{"set_context", "get_items"}})
	ae2, sid2 := rtJoin(t, b, map[string]any{"app": "AfterEffects", "instance": "ae-2", "methods": []string{"set_context"}})
	ae3, _ := rtJoin(t, b, map[string]any{"app": "aftereffects", "instance": "ae-3", "methods": []string{"get_items"}})
	ps, _ := rtJoin(t, b, map[string]any{"app": "photoshop", "instance": "ps-1", "methods": []string{"set_context"}})
	watcher, _ := rtJoin(t, b, map[string]any{"app": "tracker", "kind": "tool", "instance": "w-1"})
	tool, _ := rtJoin(t, b, map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-1"})
	rtResult(t, watcher, `"s"`, "bridge.subscribe", `{"topics":["context.changed"]}`)
	rtResult(t, tool, `"s"`, "bridge.subscribe", `{"topics":["context.changed"]}`)

	ctx := `{"project":"P", "folder":"/shots/sh010","task":"comp"}`
	tool.Send(`{"jsonrpc":"2.0","id":"ctx-1","method":"bridge.context","params":{"app":"AfterEffects","context":` + ctx + `}}`)
	// Each aftereffects host that offers set_context gets it, the context as
	// params, with the meta every routed call carries.
	fid1 := rtForwarded(t, ae1, "set_context", ctx, "pipeline", "pub-1", 1, 10000)
	fid2 := rtForwarded(t, ae2, "set_context", ctx, "pipeline", "pub-1", 1, 10000)
	ev := rtEvent(t, watcher, "context.changed")
	if got, want := rtJSON(ev), `{"app":"aftereffects","context":{"folder":"/shots/sh010","project":"P","task":"comp"},"instance":""}`; got != want {
		t.Fatalf("context.changed data = %s, want %s", got, want)
	}
	ae2.Send(`{"jsonrpc":"2.0","id":"` + fid2 + `","error":{"code":-32000,"message":"no project open"}}`)
	rtQuiet(t, tool) // no reply before every host has answered; no event to the publisher
	ae1.Send(`{"jsonrpc":"2.0","id":"` + fid1 + `","result":true}`)
	got := rtNext(t, tool)
	var res struct {
		ID     string `json:"id"`
		Result struct {
			App      string          `json:"app"`
			Context  json.RawMessage `json:"context"`
			Sessions []struct {
				Session  string          `json:"session"`
				Instance string          `json:"instance"`
				OK       bool            `json:"ok"`
				Error    json.RawMessage `json:"error"`
			} `json:"sessions"`
		} `json:"result"`
	}
	if err := json.Unmarshal([]byte(got), &res); err != nil || res.ID != "ctx-1" || res.Result.App != "aftereffects" || rtNorm(string(res.Result.Context)) != rtNorm(ctx) {
		t.Fatalf("bridge.context reply %s", got)
	}
	slices.SortFunc(res.Result.Sessions, func(a, b struct {
		Session  string          `json:"session"`
		Instance string          `json:"instance"`
		OK       bool            `json:"ok"`
		Error    json.RawMessage `json:"error"`
	}) int {
		return strings.Compare(a.Instance, b.Instance)
	})
	if s := res.Result.Sessions; len(s) != 2 ||
		s[0].Session != sid1 || s[0].Instance != "ae-1" || !s[0].OK || s[0].Error != nil ||
		s[1].Session != sid2 || s[1].Instance != "ae-2" || s[1].OK || !strings.Contains(string(s[1].Error), "no project open") {
		t.Fatalf("sessions that took it: %s", got)
	}
	for _, p := range []*bridgetest.Peer{ae3, ps, watcher} {
		rtQuiet(t, p) // no set_context without the offer, none to another app, one event only
	}

	// Read back, with and without a target.
	if r := rtResult(t, tool, `"read"`, "bridge.context", `{"app":"aftereffects"}`); rtJSON(r["context"]) != rtNorm(ctx) {
		t.Fatalf("read back %v", r)
	}
	if r := rtResult(t, tool, `"read"`, "bridge.context", `{"app":"aftereffects","target":"ae-3"}`); rtJSON(r["context"]) != rtNorm(ctx) {
		t.Fatalf("read back for an instance %v", r)
	}
	if r := rtResult(t, tool, `"read"`, "bridge.context", `{"app":"photoshop"}`); rtJSON(r["context"]) != `{}` {
		t.Fatalf("read back another app %v", r)
	}

	// A panel that says hello later gets it in its hello result.
	late := bridgetest.Dial(t, b.WSURL, nil)
	if hr := late.Hello(map[string]any{"app": "aftereffects", "instance": "ae-4"}); rtJSON(hr["context"]) != rtNorm(ctx) {
		t.Fatalf("hello result context = %v", hr["context"])
	}

	// A target limits it to one instance.
	ctx2 := `{"task":"light"}`
	tool.Send(`{"jsonrpc":"2.0","id":"ctx-2","method":"bridge.context","params":{"app":"aftereffects","target":"ae-2","context":` + ctx2 + `}}`)
	rtAnswer(t, ae2, `"ok"`)
	got = rtNext(t, tool) // the reply, not the publisher's own event
	if err := json.Unmarshal([]byte(got), &res); err != nil || res.ID != "ctx-2" || rtJSON(res.Result.Context) != ctx2 ||
		len(res.Result.Sessions) != 1 || res.Result.Sessions[0].Session != sid2 || !res.Result.Sessions[0].OK {
		t.Fatalf("bridge.context with a target: %s", got)
	}
	ev = rtEvent(t, watcher, "context.changed")
	if got, want := rtJSON(ev), `{"app":"aftereffects","context":{"task":"light"},"instance":"ae-2"}`; got != want {
		t.Fatalf("context.changed data = %s, want %s", got, want)
	}
	for _, p := range []*bridgetest.Peer{ae1, ae3} {
		rtQuiet(t, p)
	}
	if r := rtResult(t, tool, `"read"`, "bridge.context", `{"app":"aftereffects","target":"ae-2"}`); rtJSON(r["context"]) != ctx2 {
		t.Fatalf("read back for ae-2 %v", r)
	}
	if r := rtResult(t, tool, `"read"`, "bridge.context", `{"app":"aftereffects"}`); rtJSON(r["context"]) != rtNorm(ctx) {
		t.Fatalf("the app's context changed with a target: %v", r)
	}
	late5 := bridgetest.Dial(t, b.WSURL, nil)
	if hr := late5.Hello(map[string]any{"app": "aftereffects", "instance": "ae-5"}); rtJSON(hr["context"]) != rtNorm(ctx) {
		t.Fatalf("hello result context for another instance = %v", hr["context"])
	}

	// A target not connected yet: nobody takes it now, its panel gets it at hello.
	if r := rtResult(t, tool, `"ctx-3"`, "bridge.context", `{"app":"aftereffects","target":"ae-6","context":{"task":"fx"}}`); rtJSON(r["sessions"]) != `[]` {
		t.Fatalf("bridge.context for an absent instance: %v", r)
	}
	rtEvent(t, watcher, "context.changed")
	late6 := bridgetest.Dial(t, b.WSURL, nil)
	if hr := late6.Hello(map[string]any{"app": "aftereffects", "instance": "ae-6"}); rtJSON(hr["context"]) != `{"task":"fx"}` {
		t.Fatalf("hello result context for the targeted instance = %v", hr["context"])
	}

	// Invalid meta: refused, and nothing stored, published or sent.
	tool.Send(`{"jsonrpc":"2.0","id":"bad","method":"bridge.context","params":{"app":"aftereffects","context":{"task":"x"}},"meta":{"timeout_ms":-1}}`)
	rtExpectError(t, tool, `"bad"`, -32602)
	if r := rtResult(t, tool, `"read"`, "bridge.context", `{"app":"aftereffects"}`); rtJSON(r["context"]) != rtNorm(ctx) {
		t.Fatalf("a refused bridge.context changed the context: %v", r)
	}
	for _, p := range []*bridgetest.Peer{ae1, ae2, watcher} {
		rtQuiet(t, p)
	}

	// A host that does not answer within meta.timeout_ms: listed as not
	// taking it, and cancelled. A push to the whole app replaces what an
	// instance was given before.
	ctx4 := `{"project":"Q"}`
	tool.Send(`{"jsonrpc":"2.0","id":"ctx-4","method":"bridge.context","params":{"app":"aftereffects","context":` + ctx4 + `},"meta":{"timeout_ms":100}}`)
	fid1 = rtForwarded(t, ae1, "set_context", ctx4, "pipeline", "pub-1", 0, 100)
	rtAnswer(t, ae2, "true")
	got = rtNext(t, tool)
	if err := json.Unmarshal([]byte(got), &res); err != nil || res.ID != "ctx-4" || len(res.Result.Sessions) != 2 {
		t.Fatalf("bridge.context with a silent host: %s", got)
	}
	for _, s := range res.Result.Sessions {
		var e struct {
			Code int64 `json:"code"`
		}
		if s.Instance == "ae-1" && (s.OK || json.Unmarshal(s.Error, &e) != nil || e.Code != -32002) ||
			s.Instance == "ae-2" && !s.OK {
			t.Fatalf("bridge.context with a silent host: %s", got)
		}
	}
	if got, want := rtNext(t, ae1), `{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":"`+fid1+`"}}`; got != want {
		t.Fatalf("silent host got %s, want %s", got, want)
	}
	for _, instance := range []string{"ae-2", "ae-6"} {
		if r := rtResult(t, tool, `"read"`, "bridge.context", `{"app":"aftereffects","target":"`+instance+`"}`); rtJSON(r["context"]) != ctx4 {
			t.Fatalf("%s's context after a push to the whole app: %v", instance, r)
		}
	}
	again := bridgetest.Dial(t, b.WSURL, nil) // ae-2 reloads
	if hr := again.Hello(map[string]any{"app": "aftereffects", "instance": "ae-2"}); rtJSON(hr["context"]) != ctx4 {
		t.Fatalf("hello result context after a push to the whole app = %v", hr["context"])
	}
}

func TestRoutingEvents(t *testing.T) {
	b := rtStart(t, nil)
	sub, _ := rtJoin(t, b, map[string]any{"app": "tracker", "kind": "tool", "instance": "sub-1"})
	wild, _ := rtJoin(t, b, map[string]any{"app": "tracker", "kind": "tool", "instance": "sub-2"})
	pub, _ := rtJoin(t, b, map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-1"})

	if r := rtResult(t, sub, `1`, "bridge.subscribe", `{"topics":["session.*","build.done"]}`); rtJSON(r) != `{"topics":["session.*","build.done"]}` {
		t.Fatalf("subscribe result %v", r)
	}
	rtResult(t, wild, `1`, "bridge.subscribe", `{"topics":["build.*"]}`)
	rtResult(t, pub, `1`, "bridge.subscribe", `{"topics":["build.done"]}`)

	// session.joined and session.left, to session.* only.
	ae, aeSID := rtJoin(t, b, map[string]any{"app": "AfterEffects", "instance": "ae-1", "methods": []string{"get_items"}})
	d, _ := rtEvent(t, sub, "session.joined").(map[string]any)
	if d["session"] != aeSID || d["app"] != "aftereffects" || d["instance"] != "ae-1" {
		t.Fatalf("session.joined data %v", d)
	}
	_ = ae.Conn.Close(websocket.StatusNormalClosure, "")
	d, _ = rtEvent(t, sub, "session.left").(map[string]any)
	if d["session"] != aeSID || d["app"] != "aftereffects" || d["instance"] != "ae-1" {
		t.Fatalf("session.left data %v", d)
	}

	// publish: exact and prefix subscribers get it, the publisher does not.
	pub.Send(`{"jsonrpc":"2.0","id":"p1","method":"bridge.publish","params":{"topic":"build.done","data":{"shot" : "sh010"}}}`)
	if got, want := rtNext(t, pub), `{"jsonrpc":"2.0","id":"p1","result":{"delivered":2}}`; got != want {
		t.Fatalf("publish reply %s, want %s", got, want)
	}
	for _, p := range []*bridgetest.Peer{sub, wild} {
		m := rtMatch(t, rtNext(t, p), `{"jsonrpc":"2.0","method":"bridge.event","params":{"topic":"build.done","data":{"shot" : "sh010"},"at":"<AT>"}}`)
		rtCheckAt(t, m[0])
	}
	pub.Send(`{"jsonrpc":"2.0","id":"p2","method":"bridge.publish","params":{"topic":"build.started"}}`)
	if got, want := rtNext(t, pub), `{"jsonrpc":"2.0","id":"p2","result":{"delivered":1}}`; got != want {
		t.Fatalf("publish reply %s, want %s", got, want)
	}
	rtMatch(t, rtNext(t, wild), `{"jsonrpc":"2.0","method":"bridge.event","params":{"topic":"build.started","data":null,"at":"<AT>"}}`)

	// Unsubscribed: no longer counted.
	if r := rtResult(t, wild, `2`, "bridge.unsubscribe", `{"topics":["build.*"]}`); rtJSON(r) != `{"topics":[]}` {
		t.Fatalf("unsubscribe result %v", r)
	}
	if r := rtResult(t, pub, `"p3"`, "bridge.publish", `{"topic":"build.done","data":1}`); rtJSON(r) != `{"delivered":1}` {
		t.Fatalf("publish result %v", r)
	}
	rtEvent(t, sub, "build.done")

	// The bridge's own topics are not for peers.
	for i, topic := range []string{"session.x", "session.joined", "bridge.anything", "context.changed"} {
		id := strconv.Itoa(100 + i)
		pub.Send(`{"jsonrpc":"2.0","id":` + id + `,"method":"bridge.publish","params":{"topic":"` + topic + `","data":{}}}`)
		rtExpectError(t, pub, id, -32602)
	}
	for _, p := range []*bridgetest.Peer{sub, wild, pub} {
		rtQuiet(t, p)
	}
}

func TestRoutingSessions(t *testing.T) {
	b := rtStart(t, nil)
	ae, aeSID := rtJoin(t, b, map[string]any{"app": "AfterEffects", "kind": "host", "instance": "ae-7f3a", "boot": "b-91c2",
		"label": "AYON panel", "version": "1.4.0", "methods": []string{"get_items", "open"}, "replay": true})
	tool, _ := rtJoin(t, b, map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-1"})
	tool.Send(`{"jsonrpc":"2.0","id":"busy","method":"aftereffects.get_items"}`)
	fid := rtForwarded(t, ae, "get_items", "", "pipeline", "pub-1", 1, 600000)
	rtResult(t, tool, `"ctx"`, "bridge.context", `{"app":"aftereffects","context":{"project":"P"}}`)

	tool.Send(`{"jsonrpc":"2.0","id":"s","method":"bridge.sessions","params":{"app":"AfterEffects"}}`)
	got := rtNext(t, tool)
	var r struct {
		ID     string           `json:"id"`
		Result []map[string]any `json:"result"`
	}
	if err := json.Unmarshal([]byte(got), &r); err != nil || r.ID != "s" || len(r.Result) != 1 {
		t.Fatalf("bridge.sessions for aftereffects: %s", got)
	}
	s := r.Result[0]
	for k, want := range map[string]any{
		"session": aeSID, "app": "aftereffects", "kind": "host", "instance": "ae-7f3a", "boot": "b-91c2",
		"label": "AYON panel", "version": "1.4.0", "state": "connected", "in_flight": 1.0, "parked": 0.0,
	} {
		if s[k] != want {
			t.Errorf("sessions[%q] = %v, want %v", k, s[k], want)
		}
	}
	if got := rtJSON(s["methods"]); got != `["aftereffects.get_items","aftereffects.open"]` {
		t.Errorf("methods = %s", got)
	}
	if got := rtJSON(s["context"]); got != `{"project":"P"}` {
		t.Errorf("context = %s", got)
	}
	if rtt, ok := s["rtt_ms"].(float64); !ok || rtt < 0 {
		t.Errorf("rtt_ms = %v", s["rtt_ms"])
	}
	for _, k := range []string{"connected_at", "last_seen"} {
		v, _ := s[k].(string)
		ts, err := time.Parse(time.RFC3339Nano, v)
		if err != nil || time.Since(ts) > time.Minute || time.Since(ts) < 0 {
			t.Errorf("%s = %q", k, v)
		}
	}

	all := rtSessions(t, tool)
	if len(all) != 2 || all[0]["app"] != "aftereffects" || all[1]["app"] != "pipeline" {
		t.Fatalf("bridge.sessions: %v", all)
	}
	ae.Send(`{"jsonrpc":"2.0","id":"` + fid + `","result":[]}`)
	if got, want := rtNext(t, tool), `{"jsonrpc":"2.0","id":"busy","result":[],"meta":`+rtAnswerMeta("aftereffects", "ae-7f3a", aeSID)+`}`; got != want {
		t.Fatalf("caller got %s, want %s", got, want)
	}
	if all := rtSessions(t, tool); all[0]["in_flight"] != 0.0 {
		t.Fatalf("in_flight after the reply: %v", all[0]["in_flight"])
	}
}

// rtSessions calls bridge.sessions without params and returns the list.
func rtSessions(t *testing.T, p *bridgetest.Peer) []map[string]any {
	t.Helper()
	p.Send(`{"jsonrpc":"2.0","id":"all","method":"bridge.sessions"}`)
	var r struct {
		ID     string           `json:"id"`
		Result []map[string]any `json:"result"`
	}
	got := rtNext(t, p)
	if err := json.Unmarshal([]byte(got), &r); err != nil || r.ID != "all" {
		t.Fatalf("bridge.sessions: %s", got)
	}
	return r.Result
}

// $/cancelRequest and $/progress are notifications; sent with an id they
// get -32600 (alone or in a batch), so the sender is never left waiting.
func TestRoutingDollarMethodsAsRequests(t *testing.T) {
	b := rtStart(t, nil)
	tool, _ := rtJoin(t, b, map[string]any{"app": "pipeline", "kind": "tool"})
	tool.Send(`{"jsonrpc":"2.0","id":7,"method":"$/cancelRequest","params":{"id":5}}`)
	rtExpectError(t, tool, "7", -32600)
	tool.Send(`[{"jsonrpc":"2.0","id":1,"method":"$/progress","params":{"id":"x","value":1}},{"jsonrpc":"2.0","id":2,"method":"bridge.ping"}]`)
	var batch []map[string]any
	if err := json.Unmarshal([]byte(rtNext(t, tool)), &batch); err != nil || len(batch) != 2 {
		t.Fatalf("want a batch reply of 2, got %v (%v)", batch, err)
	}
	for _, m := range batch {
		if m["id"] == 1.0 && m["error"].(map[string]any)["code"] != -32600.0 {
			t.Errorf("$/progress with an id: %v, want -32600", m)
		}
		if m["id"] == 2.0 && m["result"] == nil {
			t.Errorf("ping in the batch: %v", m)
		}
	}
}

// A huge timeout_ms or wait_ms means "practically forever", not an
// overflowed duration that fires at once.
func TestRoutingHugeTimeouts(t *testing.T) {
	b := rtStart(t, nil)
	host, _ := rtJoin(t, b, map[string]any{"app": "aftereffects", "instance": "ae-1", "methods": []string{"render"}})
	tool, _ := rtJoin(t, b, map[string]any{"app": "pipeline", "kind": "tool"})
	tool.Send(`{"jsonrpc":"2.0","id":1,"method":"aftereffects.render","meta":{"timeout_ms":1e300,"wait_ms":1e300}}`)
	fid := rtAnswer(t, host, `"done"`)
	if fid == "" {
		t.Fatal("no forwarded id")
	}
	if r := tool.Read(); r["result"] != "done" {
		t.Fatalf("want the result, got %v", r)
	}
}
