package session_test

import (
	"encoding/json"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dccbridge/dccbridge/internal/bridgetest"
	"github.com/dccbridge/dccbridge/session"
)

// Helpers that read and compare exact frames, the bytes a peer receives.

// wirePeer is a peer the frame helpers read and write: a real websocket
// peer (bridgetest.Peer) or an in-memory one (memPeer).
type wirePeer interface {
	Send(v any)
	ReadRaw(timeout time.Duration) []byte
	Call(id any, method string, params any) map[string]any
}

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
func rtJoin(t *testing.T, b *bridgetest.Bridge, hello map[string]any) (wirePeer, string) {
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
func rtNext(t *testing.T, p wirePeer) string {
	t.Helper()
	return string(p.ReadRaw(rtWait))
}

var rtSeq atomic.Int64

// rtQuiet proves nothing is on its way to p: it pings the bridge and
// requires the very next message to be the pong. Everything the bridge
// queued for p before it read the ping would arrive first.
func rtQuiet(t *testing.T, p wirePeer) {
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
// forwarded call's frame: the method by the name p offered, params as the
// caller's raw bytes ("" for none), meta naming the caller, timeout_ms in
// [minMS, maxMS] and attempt 1. It returns the forwarded id.
func rtForwarded(t *testing.T, p wirePeer, method, params, callerApp, callerInstance string, minMS, maxMS int) string {
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
func rtExpectError(t *testing.T, p wirePeer, id string, code int64) map[string]any {
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

// rtAnswer reads a forwarded call on p and answers it with result.
func rtAnswer(t *testing.T, p wirePeer, result string) (fid string) {
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

// rtEvent reads the next message of p and requires it to be a bridge.event
// on topic; it returns the event's data.
func rtEvent(t *testing.T, p wirePeer, topic string) any {
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
func rtResult(t *testing.T, p wirePeer, id, method, params string) map[string]any {
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

// rtSessions calls bridge.sessions without params and returns the list.
func rtSessions(t *testing.T, p wirePeer) []map[string]any {
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
