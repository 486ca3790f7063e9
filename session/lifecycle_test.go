package session_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"github.com/dccbridge/dccbridge/internal/bridgetest"
	"github.com/dccbridge/dccbridge/session"
	"github.com/dccbridge/dccbridge/web"
)

// Lifecycle and limits of sessions (DESIGN §3.2, §4, §5): replacement,
// protocol violations, slow readers, --max-sessions, goroutine leaks,
// shutdown, heartbeat and unauthorized peers. Real sockets on 127.0.0.1
// with millisecond-scale options, except the heartbeat timeout, which runs
// in a synctest bubble over net.Pipe (DESIGN §7).
//
// Tests whose peers stop reading set WriteTimeout and HeartbeatInterval to
// a minute, so that neither ends the stall before the test does: a flood
// can take seconds under -race, and coder/websocket gives a ping's write
// 5 s, so a full socket fails the heartbeat at HeartbeatInterval + 5 s.
// Those that stall a host with calls in flight set BusyAfter to a minute
// too: a busy host is given no new calls.

// ---- helpers ----

// logWatch keeps every record logged through its handler, so a test can
// await a log line (an event) instead of sleeping.
type logWatch struct {
	mu      sync.Mutex
	recs    []logRec
	changed chan struct{} // closed and replaced at every record
}

type logRec struct {
	Msg   string
	Attrs map[string]string
}

type logHandler struct {
	w     *logWatch
	attrs []slog.Attr
}

// newLogWatch returns a watch and a logger that feeds it; the records are
// printed if the test fails.
func newLogWatch(t *testing.T) (*logWatch, *slog.Logger) {
	w := &logWatch{changed: make(chan struct{})}
	t.Cleanup(func() {
		if t.Failed() {
			for _, r := range w.all() {
				t.Logf("bridge log: %s %v", r.Msg, r.Attrs)
			}
		}
	})
	return w, slog.New(logHandler{w: w})
}

func (h logHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h logHandler) Handle(_ context.Context, r slog.Record) error {
	rec := logRec{Msg: r.Message, Attrs: map[string]string{}}
	for _, a := range h.attrs {
		rec.Attrs[a.Key] = a.Value.Resolve().String()
	}
	r.Attrs(func(a slog.Attr) bool {
		rec.Attrs[a.Key] = a.Value.Resolve().String()
		return true
	})
	h.w.mu.Lock()
	h.w.recs = append(h.w.recs, rec)
	close(h.w.changed)
	h.w.changed = make(chan struct{})
	h.w.mu.Unlock()
	return nil
}

func (h logHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return logHandler{w: h.w, attrs: append(slices.Clip(h.attrs), as...)}
}

func (h logHandler) WithGroup(string) slog.Handler { return h }

func (w *logWatch) all() []logRec {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.recs)
}

func (r logRec) matches(msg string, kv []string) bool {
	if r.Msg != msg {
		return false
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if r.Attrs[kv[i]] != kv[i+1] {
			return false
		}
	}
	return true
}

// count returns how many records so far match msg and the key/value pairs.
func (w *logWatch) count(msg string, kv ...string) int {
	n := 0
	for _, r := range w.all() {
		if r.matches(msg, kv) {
			n++
		}
	}
	return n
}

// waitN waits until n records match msg and the key/value pairs and returns
// the nth; it fails the test after timeout.
func (w *logWatch) waitN(t *testing.T, timeout time.Duration, n int, msg string, kv ...string) logRec {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	seen, idx := 0, 0
	for {
		w.mu.Lock()
		recs, changed := w.recs[idx:], w.changed
		idx = len(w.recs)
		w.mu.Unlock()
		for _, r := range recs {
			if r.matches(msg, kv) {
				if seen++; seen == n {
					return r
				}
			}
		}
		select {
		case <-changed:
		case <-timer.C:
			t.Fatalf("log: %d of %d %q %v within %v", seen, n, msg, kv, timeout)
		}
	}
}

// wait waits for the first record that matches msg and the key/value pairs.
func (w *logWatch) wait(t *testing.T, timeout time.Duration, msg string, kv ...string) logRec {
	t.Helper()
	return w.waitN(t, timeout, 1, msg, kv...)
}

// rawPeer is a websocket peer with no read loop: it reads only when the
// test tells it to, so it can stop reading its socket altogether.
type rawPeer struct {
	t    *testing.T
	conn *websocket.Conn
}

func dialRaw(t *testing.T, url string, opts *websocket.DialOptions) *rawPeer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, url, opts)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	conn.SetReadLimit(64 << 20)
	t.Cleanup(func() { _ = conn.CloseNow() })
	return &rawPeer{t: t, conn: conn}
}

// send writes v (a string of JSON, or a value to encode) as one text message.
func (p *rawPeer) send(v any) {
	p.t.Helper()
	b, isString := []byte(nil), false
	if s, ok := v.(string); ok {
		b, isString = []byte(s), true
	}
	if !isString {
		var err error
		if b, err = json.Marshal(v); err != nil {
			p.t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.conn.Write(ctx, websocket.MessageText, b); err != nil {
		p.t.Fatalf("send: %v", err)
	}
}

// read returns the next message (decoded) or the error that ended the
// connection. A timeout closes the connection (coder/websocket's rule).
func (p *rawPeer) read(timeout time.Duration) (map[string]any, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_, b, err := p.conn.Read(ctx)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("bad JSON from the bridge: %s", b)
	}
	return m, nil
}

// call sends a request and reads messages until its reply.
func (p *rawPeer) call(id, method string, params any) map[string]any {
	p.t.Helper()
	msg := map[string]any{"jsonrpc": "2.0", "id": id, "method": method}
	if params != nil {
		msg["params"] = params
	}
	p.send(msg)
	for range 1000 {
		m, err := p.read(5 * time.Second)
		if err != nil {
			p.t.Fatalf("waiting for the reply to %s: %v", method, err)
		}
		if m["id"] == id && m["method"] == nil {
			return m
		}
	}
	p.t.Fatalf("no reply to %s in 1000 messages", method)
	return nil
}

// hello says bridge.hello and returns its result.
func (p *rawPeer) hello(params map[string]any) map[string]any {
	p.t.Helper()
	r := p.call("hello", "bridge.hello", params)
	res, ok := r["result"].(map[string]any)
	if !ok {
		p.t.Fatalf("hello failed: %v", r)
	}
	return res
}

// echoHost is a host that answers every request it gets with its params
// and its instance, except the method named "hang", which it never
// answers. Its read loop ends when its connection does.
type echoHost struct {
	conn *websocket.Conn
	done chan struct{}
}

func startEchoHost(t *testing.T, url, app, instance string, methods ...string) *echoHost {
	t.Helper()
	p := dialRaw(t, url, nil)
	p.hello(map[string]any{"app": app, "instance": instance, "methods": methods})
	h := &echoHost{conn: p.conn, done: make(chan struct{})}
	go h.serve(instance)
	t.Cleanup(h.close)
	return h
}

func (h *echoHost) serve(instance string) {
	defer close(h.done)
	ctx := context.Background()
	for {
		_, b, err := h.conn.Read(ctx)
		if err != nil {
			return
		}
		var m struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
			Params json.RawMessage `json:"params"`
		}
		if json.Unmarshal(b, &m) != nil || m.ID == nil || m.Method == "" || m.Method == "hang" {
			continue
		}
		if m.Params == nil {
			m.Params = json.RawMessage("null")
		}
		reply := fmt.Sprintf(`{"jsonrpc":"2.0","id":%s,"result":{"instance":%q,"params":%s}}`, m.ID, instance, m.Params)
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = h.conn.Write(wctx, websocket.MessageText, []byte(reply))
		cancel()
		if err != nil {
			return
		}
	}
}

// close ends the host's connection and waits for its read loop.
func (h *echoHost) close() {
	_ = h.conn.CloseNow()
	<-h.done
}

// rpcError returns the error member of a reply, failing the test if there
// is none.
func rpcError(t *testing.T, reply map[string]any) (code int, data map[string]any) {
	t.Helper()
	e, ok := reply["error"].(map[string]any)
	if !ok {
		t.Fatalf("want an error reply, got %v", reply)
	}
	data, _ = e["data"].(map[string]any)
	return int(e["code"].(float64)), data
}

// closeError returns the close frame a peer's connection ended with.
func closeError(err error) websocket.CloseError {
	var ce websocket.CloseError
	if !errors.As(err, &ce) {
		return websocket.CloseError{Code: -1, Reason: fmt.Sprint(err)}
	}
	return ce
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// ---- 1. hello replacement ----

// A second hello for a live app + instance closes the old connection with
// 4001 "replaced"; the old one's unanswered call fails -32004 (the peers
// do not replay), and calls now go to the new connection.
func TestHelloReplacesLiveInstance(t *testing.T) {
	logs, logger := newLogWatch(t)
	b := bridgetest.Start(t, &session.Options{Logger: logger}, &web.Options{Logger: logger})
	tool := bridgetest.Dial(t, b.WSURL, nil)
	tool.Hello(map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-1"})

	old := bridgetest.Dial(t, b.WSURL, nil)
	oldHello := old.Hello(map[string]any{"app": "aftereffects", "instance": "ae-1", "boot": "b-1", "methods": []string{"whoami", "render"}})

	// The old connection answers a call, and holds another unanswered.
	tool.Send(`{"jsonrpc":"2.0","id":"w1","method":"aftereffects.whoami"}`)
	fwd := old.Expect(5*time.Second, func(m map[string]any) bool { return m["method"] == "whoami" })
	old.Send(map[string]any{"jsonrpc": "2.0", "id": fwd["id"], "result": "old"})
	if r := tool.Expect(5*time.Second, func(m map[string]any) bool { return m["id"] == "w1" }); r["result"] != "old" {
		t.Fatalf("whoami before the replacement: %v", r)
	}
	tool.Send(`{"jsonrpc":"2.0","id":"r1","method":"aftereffects.render"}`)
	old.Expect(5*time.Second, func(m map[string]any) bool { return m["method"] == "render" })

	neu := bridgetest.Dial(t, b.WSURL, nil)
	newHello := neu.Hello(map[string]any{"app": "AfterEffects", "instance": "ae-1", "boot": "b-2", "methods": []string{"whoami"}})
	if newHello["session"] == oldHello["session"] {
		t.Fatalf("the new connection got the old session id %v", newHello["session"])
	}

	if code := old.Closed(5 * time.Second); code != 4001 {
		t.Fatalf("old connection closed with %v, want 4001", code)
	}
	if ce := closeError(old.Err()); ce.Reason != "replaced" {
		t.Fatalf("old connection close reason %q, want \"replaced\"", ce.Reason)
	}
	logs.wait(t, 5*time.Second, "session replaced by a new connection of the same instance",
		"app", "aftereffects", "instance", "ae-1", "old", oldHello["session"].(string), "new", newHello["session"].(string))

	// The call the old connection had received fails: neither peer
	// promised replay, so it must not run twice.
	r := tool.Expect(5*time.Second, func(m map[string]any) bool { return m["id"] == "r1" })
	code, data := rpcError(t, r)
	if code != -32004 || data["may_have_run"] != true || data["instance"] != "ae-1" || data["method"] != "aftereffects.render" {
		t.Fatalf("render written to the replaced connection: got %v, want -32004 with may_have_run", r)
	}

	// Calls now go to the new connection.
	tool.Send(`{"jsonrpc":"2.0","id":"w2","method":"aftereffects.whoami"}`)
	fwd = neu.Expect(5*time.Second, func(m map[string]any) bool { return m["method"] == "whoami" })
	neu.Send(map[string]any{"jsonrpc": "2.0", "id": fwd["id"], "result": "new"})
	r = tool.Expect(5*time.Second, func(m map[string]any) bool { return m["id"] == "w2" })
	if r["result"] != "new" || r["meta"].(map[string]any)["session"] != newHello["session"] {
		t.Fatalf("whoami after the replacement: %v", r)
	}

	list := tool.Call("s", "bridge.sessions", map[string]any{"app": "aftereffects"})["result"].([]any)
	if len(list) != 1 || list[0].(map[string]any)["session"] != newHello["session"] {
		t.Fatalf("sessions of aftereffects after the replacement: %v", list)
	}
}

// A replaced connection that was stalled (its socket full, calls queued
// behind) and then drains must not be written the calls that moved to the
// new connection: each call is either written to the old connection (and
// fails -32004) or delivered to the new one, never both, never neither.
func TestHelloReplacesStalledInstance(t *testing.T) {
	logs, logger := newLogWatch(t)
	b := bridgetest.Start(t, &session.Options{Logger: logger, WriteTimeout: time.Minute, HeartbeatInterval: time.Minute, BusyAfter: time.Minute}, &web.Options{Logger: logger})
	tool := bridgetest.Dial(t, b.WSURL, nil)
	tool.Hello(map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-1"})
	old := dialRaw(t, b.WSURL, nil)
	oldID := old.hello(map[string]any{"app": "photoshop", "instance": "ps-1", "methods": []string{"work"}})["session"].(string)

	// Fill the old connection's socket and queue: it does not read now.
	// Loopback buffers hold at most a few MiB (tcp_wmem's 4 MiB cap plus
	// the receiver's window); 40 × 256 KiB is 10 MiB.
	const calls, size = 40, 256 << 10
	pad := strings.Repeat("x", size)
	for i := range calls {
		tool.Send(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"photoshop.work","params":{"seq":%d,"pad":%q}}`, i, i, pad))
	}
	// The tool's frames are handled in order: once this reply is back,
	// every call has been assigned to the old connection.
	if got := tool.Call("s", "bridge.sessions", map[string]any{"app": "photoshop"})["result"].([]any); got[0].(map[string]any)["in_flight"] != float64(calls) {
		t.Fatalf("in flight to the old connection: %v", got)
	}

	startEchoHost(t, b.WSURL, "photoshop", "ps-1", "work") // the new connection
	logs.wait(t, 5*time.Second, "session replaced by a new connection of the same instance", "instance", "ps-1")

	// The old connection, its writer blocked and its close frame not yet
	// written, says hello again and calls. It has left the registry, so
	// both are dropped: a stale hello must not replace the live connection.
	old.send(`{"jsonrpc":"2.0","id":"again","method":"bridge.hello","params":{"app":"photoshop","instance":"ps-1","methods":["work"]}}`)
	old.send(`{"jsonrpc":"2.0","id":"ping","method":"bridge.ping"}`)
	logs.waitN(t, 5*time.Second, 2, "message dropped: the session has left the registry", "session", oldID)
	if n := logs.count("session replaced by a new connection of the same instance"); n != 1 {
		t.Fatalf("%d replacements, want 1", n)
	}

	// The old connection wakes up and drains its socket.
	oldGot := map[int]bool{}
	var end error
	for range calls + 10 {
		m, err := old.read(10 * time.Second)
		if err != nil {
			end = err
			break
		}
		if m["method"] == "work" {
			oldGot[int(m["params"].(map[string]any)["seq"].(float64))] = true
		}
	}
	if ce := closeError(end); ce.Code != 4001 {
		t.Fatalf("old connection ended with %v, want close 4001", end)
	}

	moved, failed := 0, 0
	for range calls {
		r := tool.Expect(10*time.Second, func(m map[string]any) bool { _, isNum := m["id"].(float64); return isNum })
		seq := int(r["id"].(float64))
		if res, ok := r["result"].(map[string]any); ok {
			if oldGot[seq] {
				t.Errorf("call %d ran on both connections", seq)
			}
			if res["instance"] != "ps-1" {
				t.Errorf("call %d answered by %v", seq, res)
			}
			moved++
			continue
		}
		code, data := rpcError(t, r)
		if code != -32004 || data["may_have_run"] != true {
			t.Errorf("call %d: %v, want a result or -32004 may_have_run", seq, r)
		}
		failed++
	}
	if failed < len(oldGot) {
		t.Errorf("the old connection got %d calls but only %d failed -32004", len(oldGot), failed)
	}
	if moved == 0 {
		t.Errorf("no call moved to the new connection (old got %d, failed %d)", len(oldGot), failed)
	}
	t.Logf("old connection got %d calls; %d failed -32004, %d moved to the new connection", len(oldGot), failed, moved)
}

// ---- 2. protocol violations ----

// An oversize message closes its session with 1009 and a binary frame with
// 1003; other sessions and their calls are unaffected.
func TestProtocolViolationsCloseOnlyTheirSession(t *testing.T) {
	logs, logger := newLogWatch(t)
	b := bridgetest.Start(t, &session.Options{Logger: logger}, &web.Options{Logger: logger, MaxMessage: 1024})
	startEchoHost(t, b.WSURL, "maya", "m-1", "echo")
	tool := bridgetest.Dial(t, b.WSURL, nil)
	tool.Hello(map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-1"})
	routed := func(id int) {
		t.Helper()
		r := tool.Call(id, "maya.echo", map[string]any{"n": id})
		if res, ok := r["result"].(map[string]any); !ok || res["instance"] != "m-1" {
			t.Fatalf("routed call %d: %v", id, r)
		}
	}
	routed(1)
	// Just under the limit is fine.
	r := tool.Call("near", "maya.echo", map[string]any{"pad": strings.Repeat("n", 900)})
	if r["result"] == nil {
		t.Fatalf("a 950-byte message with a 1024-byte limit: %v", r)
	}

	for _, size := range []int{2 << 10, 1 << 20} {
		big := bridgetest.Dial(t, b.WSURL, nil)
		sid := big.Hello(map[string]any{"app": "photoshop", "instance": fmt.Sprintf("big-%d", size)})["session"].(string)
		// The bridge may stop reading (and close) before the whole message
		// is written: the write's own error does not matter.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = big.Conn.Write(ctx, websocket.MessageText, []byte(`{"jsonrpc":"2.0","id":1,"method":"bridge.ping","params":{"pad":"`+strings.Repeat("x", size)+`"}}`))
		cancel()
		if code := big.Closed(5 * time.Second); code != websocket.StatusMessageTooBig {
			t.Fatalf("a %d-byte message: connection ended with %v (%v), want 1009", size, code, big.Err())
		}
		logs.wait(t, 5*time.Second, "session ended", "session", sid)
		routed(2)
	}

	bin := bridgetest.Dial(t, b.WSURL, nil)
	sid := bin.Hello(map[string]any{"app": "photoshop", "instance": "bin"})["session"].(string)
	// A reply owed before the binary frame is still written.
	bin.Send(`{"jsonrpc":"2.0","id":"before","method":"bridge.ping"}`)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := bin.Conn.Write(ctx, websocket.MessageBinary, []byte(`{"jsonrpc":"2.0","id":"bin","method":"bridge.ping"}`)); err != nil {
		t.Fatal(err)
	}
	if r := bin.Read(); r["id"] != "before" || r["result"] == nil {
		t.Fatalf("reply before the binary frame: %v", r)
	}
	if code := bin.Closed(5 * time.Second); code != websocket.StatusUnsupportedData {
		t.Fatalf("binary frame: connection ended with %v (%v), want 1003", code, bin.Err())
	}
	logs.wait(t, 5*time.Second, "session ended", "session", sid, "close_code", "1003")

	routed(3)
	// Closed sessions that said hello wait for their instance to come back
	// (DESIGN §4): listed as reconnecting, offered nothing new.
	for _, s := range b.Router.Sessions() {
		if s.App == "photoshop" && s.State != session.StateReconnecting {
			t.Fatalf("closed session listed as %s, want reconnecting: %+v", s.State, s)
		}
	}
}

// ---- 3. slow readers ----

// A host that stops reading its socket while tools flood it is closed with
// 1008 once its queue is full: calls not yet written fail -32003 (and never
// reach it), calls written fail -32004 may_have_run, and meanwhile another
// host/tool pair's calls keep completing.
func TestSlowReaderClosed(t *testing.T) {
	logs, logger := newLogWatch(t)
	const queueLimit = 16
	b := bridgetest.Start(t, &session.Options{Logger: logger, QueueLimit: queueLimit, WriteTimeout: time.Minute, HeartbeatInterval: time.Minute, BusyAfter: time.Minute}, &web.Options{Logger: logger})

	startEchoHost(t, b.WSURL, "maya", "m-1", "echo")
	tool2 := bridgetest.Dial(t, b.WSURL, nil)
	tool2.Hello(map[string]any{"app": "pipeline", "kind": "tool", "instance": "other"})
	n2 := 0
	otherCall := func() {
		t.Helper()
		n2++
		r := tool2.Call(n2, "maya.echo", map[string]any{"n": n2})
		if res, ok := r["result"].(map[string]any); !ok || res["instance"] != "m-1" {
			t.Fatalf("the other pair's call %d: %v", n2, r)
		}
	}

	stalled := dialRaw(t, b.WSURL, nil)
	sid := stalled.hello(map[string]any{"app": "stall", "instance": "stall-1", "methods": []string{"work"}})["session"].(string)
	// From here the stalled host does not read.

	// Tools flood it, each keeping fewer calls in flight than the queue
	// limit (so that its own replies, which all come at once when the host
	// is closed, fit its queue). New tools join until the bridge gives up
	// on the host: at most 40 tools × 12 calls × 64 KiB = 30 MiB.
	const perTool, maxTools = 12, 40
	pad := strings.Repeat("x", 64<<10)
	var tools []*bridgetest.Peer
	sent := map[string]bool{}
	for i := 0; i < maxTools && logs.count("slow reader closed", "session", sid) == 0; i++ {
		tool := bridgetest.Dial(t, b.WSURL, nil)
		tool.Hello(map[string]any{"app": "pipeline", "kind": "tool", "instance": fmt.Sprintf("flood-%d", i)})
		for j := range perTool {
			id := fmt.Sprintf("t%d-%d", i, j)
			tool.Send(map[string]any{"jsonrpc": "2.0", "id": id, "method": "stall.work", "params": map[string]any{"seq": id, "pad": pad},
				"meta": map[string]any{"wait_ms": 300}})
			sent[id] = true
		}
		// A tool's messages are handled in order: once the ping is
		// answered, its calls have been routed to the stalled host.
		if r := tool.Call("sync", "bridge.ping", nil); r["result"] == nil {
			t.Fatalf("ping: %v", r)
		}
		tools = append(tools, tool)
		otherCall()
	}
	logs.wait(t, 10*time.Second, "slow reader closed", "session", sid)

	// The stalled host's writer is blocked on its full socket; others go on.
	for range 20 {
		otherCall()
	}

	// The host reads again: it gets what had been written, then 1008.
	got := map[string]bool{}
	var end error
	for range len(sent) + 10 {
		m, err := stalled.read(10 * time.Second)
		if err != nil {
			end = err
			break
		}
		if m["method"] == "work" {
			got[m["params"].(map[string]any)["seq"].(string)] = true
		}
	}
	if ce := closeError(end); ce.Code != websocket.StatusPolicyViolation || !strings.Contains(ce.Reason, "slow reader") {
		t.Fatalf("the stalled host's connection ended with %v, want 1008 slow reader", end)
	}

	// Calls made after the bridge gave up on the host are not sent to it: it
	// is no longer healthy, so they wait for another instance (-32001).
	n1, n3, n4 := 0, 0, 0
	for _, tool := range tools {
		for range perTool {
			r := tool.Expect(10*time.Second, func(m map[string]any) bool { _, ok := m["id"].(string); return ok && m["method"] == nil })
			id := r["id"].(string)
			if !sent[id] {
				t.Fatalf("reply to an unknown id: %v", r)
			}
			delete(sent, id)
			code, data := rpcError(t, r)
			if code == -32001 && !got[id] && data["app"] == "stall" && data["method"] == "stall.work" {
				n1++
				continue
			}
			if data["app"] != "stall" || data["method"] != "stall.work" || data["instance"] != "stall-1" {
				t.Errorf("call %s: error data %v does not name the app, method and instance", id, data)
			}
			switch code {
			case -32003:
				n3++
				if got[id] {
					t.Errorf("call %s reached the host but failed -32003 (not delivered)", id)
				}
			case -32004:
				n4++
				if data["may_have_run"] != true {
					t.Errorf("call %s: -32004 without may_have_run: %v", id, r)
				}
			default:
				t.Errorf("call %s: %v, want -32003 or -32004 (or -32001 if never sent)", id, r)
			}
			if got[id] && code != -32004 {
				t.Errorf("call %s reached the host but failed %d, want -32004 may_have_run", id, code)
			}
		}
	}
	if n3 == 0 || n4 < len(got) {
		t.Errorf("-32003: %d, -32004: %d, delivered to the host: %d", n3, n4, len(got))
	}
	t.Logf("%d tools flooded; the host got %d calls before 1008; %d failed -32003, %d failed -32004, %d waited -32001", len(tools), len(got), n3, n4, n1)

	logs.wait(t, 5*time.Second, "session ended", "session", sid, "close_code", "1008")
	for _, s := range tool2.Call("s", "bridge.sessions", nil)["result"].([]any) {
		if s := s.(map[string]any); s["app"] == "stall" && (s["state"] != "reconnecting" || s["parked"] != 0.0) {
			t.Fatalf("the slow reader is listed as %v with %v parked, want reconnecting with none (it does not replay)", s["state"], s["parked"])
		}
	}
	otherCall()
}

// Events that do not fit a subscriber's queue are dropped and counted,
// never a reason to close it.
func TestEventsToFullQueueDropped(t *testing.T) {
	logs, logger := newLogWatch(t)
	b := bridgetest.Start(t, &session.Options{Logger: logger, QueueLimit: 16, WriteTimeout: time.Minute, HeartbeatInterval: time.Minute}, &web.Options{Logger: logger})
	sub := dialRaw(t, b.WSURL, nil)
	sid := sub.hello(map[string]any{"app": "photoshop", "instance": "ps-1"})["session"].(string)
	if r := sub.call("sub", "bridge.subscribe", map[string]any{"topics": []string{"news.*"}}); r["result"] == nil {
		t.Fatalf("subscribe: %v", r)
	}
	// From here the subscriber does not read.
	pub := bridgetest.Dial(t, b.WSURL, nil)
	pub.Hello(map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-1"})

	pad := strings.Repeat("y", 64<<10)
	publish := func(i int) float64 {
		t.Helper()
		r := pub.Call(i, "bridge.publish", map[string]any{"topic": "news.flash", "data": map[string]any{"i": i, "pad": pad}})
		res, ok := r["result"].(map[string]any)
		if !ok {
			t.Fatalf("publish %d: %v", i, r)
		}
		return res["delivered"].(float64)
	}
	published, delivered := 0, 0
	for published < 2000 { // 2000 × 64 KiB = 125 MiB at most; far beyond loopback buffers
		d := publish(published)
		published++
		if d == 0 {
			break
		}
		delivered++
	}
	if delivered == published {
		t.Fatalf("all %d events were delivered to a subscriber that does not read", published)
	}
	for range 20 {
		if publish(published) != 0 {
			t.Fatalf("event %d delivered to a subscriber whose queue is full", published)
		}
		published++
	}

	list := pub.Call("s", "bridge.sessions", map[string]any{"app": "photoshop"})["result"].([]any)
	if len(list) != 1 || list[0].(map[string]any)["dropped_events"].(float64) < 21 {
		t.Fatalf("the subscriber in bridge.sessions: %v", list)
	}
	if n := logs.count("slow reader closed", "session", sid); n != 0 {
		t.Fatalf("a subscriber was closed as a slow reader for events")
	}

	// It reads again: it gets the events that fitted, then its own reply.
	sub.send(`{"jsonrpc":"2.0","id":"after","method":"bridge.ping"}`)
	events := 0
	for range published + 10 {
		m, err := sub.read(10 * time.Second)
		if err != nil {
			t.Fatalf("subscriber after %d events: %v", events, err)
		}
		if m["method"] == "bridge.event" {
			events++
			continue
		}
		if m["id"] != "after" || m["result"] == nil {
			t.Fatalf("subscriber got %v", m)
		}
		break
	}
	if events != delivered {
		t.Fatalf("subscriber got %d events, publish said %d were delivered", events, delivered)
	}
}

// ---- 4. --max-sessions ----

func TestMaxSessions(t *testing.T) {
	logs, logger := newLogWatch(t)
	b := bridgetest.Start(t, &session.Options{Logger: logger, MaxSessions: 3}, &web.Options{Logger: logger})
	var peers []*bridgetest.Peer
	var ids []string
	for i := range 3 {
		p := bridgetest.Dial(t, b.WSURL, nil)
		ids = append(ids, p.Hello(map[string]any{"app": "blender", "instance": fmt.Sprint("b-", i)})["session"].(string))
		peers = append(peers, p)
	}
	fourth := bridgetest.Dial(t, b.WSURL, nil)
	if code := fourth.Closed(5 * time.Second); code != websocket.StatusTryAgainLater {
		t.Fatalf("4th connection ended with %v (%v), want 1013", code, fourth.Err())
	}
	if ce := closeError(fourth.Err()); !strings.Contains(ce.Reason, "too many sessions") {
		t.Fatalf("1013 reason %q", ce.Reason)
	}
	logs.wait(t, 5*time.Second, "session refused: too many sessions")
	for _, p := range peers {
		if r := p.Call("ping", "bridge.ping", nil); r["result"] == nil {
			t.Fatalf("an admitted session after the refusal: %v", r)
		}
	}

	// A place frees when a session leaves.
	if err := peers[0].Conn.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Fatal(err)
	}
	logs.wait(t, 5*time.Second, "session ended", "session", ids[0])
	fifth := bridgetest.Dial(t, b.WSURL, nil)
	fifth.Hello(map[string]any{"app": "blender", "instance": "b-5"})

	// So does a session that dropped: it waits for its instance
	// (reconnecting) without holding a place.
	_ = peers[1].Conn.CloseNow()
	logs.wait(t, 5*time.Second, "session state", "session", ids[1], "state", "reconnecting")
	sixth := bridgetest.Dial(t, b.WSURL, nil)
	sixth.Hello(map[string]any{"app": "blender", "instance": "b-6"})
}

// ---- 5. goroutine leaks ----

// 200 sessions connect, say hello, call, and leave (cleanly, abruptly, or
// with a call still in flight); once the bridge is shut down no goroutine
// is left.
func TestNoGoroutinesLeftAfterSessions(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	logs, logger := newLogWatch(t)
	b := bridgetest.Start(t, &session.Options{Logger: logger, ResumeWait: time.Millisecond}, &web.Options{Logger: logger})
	host := startEchoHost(t, b.WSURL, "houdini", "h-1", "echo", "hang")

	const sessions, workers = 200, 8
	errs := make(chan error, sessions)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < sessions; i += workers {
				if err := briefSession(b.WSURL, i); err != nil {
					errs <- fmt.Errorf("session %d: %w", i, err)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	logs.waitN(t, 10*time.Second, sessions, "session ended", "app", "pipeline")
	// Tools that dropped without a close frame wait ResumeWait (1 ms here)
	// for their instance; after that, only the host is left.
	logs.waitN(t, 10*time.Second, sessions, "session left", "app", "pipeline")
	if st := b.Router.Stats(); st.Sessions != 1 {
		t.Fatalf("sessions after all tools left: %d, want 1 (the host)", st.Sessions)
	}

	host.close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.Router.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	b.Web.Close()
	b.Server.Close()
	http.DefaultClient.CloseIdleConnections()
	goleak.VerifyNone(t, ignore)
}

// briefSession is one short-lived tool: hello, one routed call, then it
// leaves one of four ways.
func briefSession(url string, i int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		return err
	}
	defer conn.CloseNow()
	call := func(id, method string) error {
		msg := fmt.Sprintf(`{"jsonrpc":"2.0","id":%q,"method":%q,"params":{"i":%d}}`, id, method, i)
		if err := conn.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
			return err
		}
		for range 100 {
			_, b, err := conn.Read(ctx)
			if err != nil {
				return err
			}
			var m struct {
				ID     string          `json:"id"`
				Result json.RawMessage `json:"result"`
			}
			if json.Unmarshal(b, &m) == nil && m.ID == id {
				if m.Result == nil {
					return fmt.Errorf("%s: %s", method, b)
				}
				return nil
			}
		}
		return fmt.Errorf("no reply to %s", method)
	}
	hello := fmt.Sprintf(`{"jsonrpc":"2.0","id":"hello","method":"bridge.hello","params":{"app":"pipeline","kind":"tool","instance":"brief-%d"}}`, i)
	if err := conn.Write(ctx, websocket.MessageText, []byte(hello)); err != nil {
		return err
	}
	if _, _, err := conn.Read(ctx); err != nil {
		return err
	}
	if err := call("c", "houdini.echo"); err != nil {
		return err
	}
	if i%4 >= 2 { // leave a call in flight: the bridge cancels it at the host
		msg := `{"jsonrpc":"2.0","id":"h","method":"houdini.hang"}`
		if err := conn.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
			return err
		}
		if err := call("p", "bridge.ping"); err != nil { // the hang call is routed by now
			return err
		}
	}
	if i%2 == 0 {
		return conn.Close(websocket.StatusNormalClosure, "")
	}
	return conn.CloseNow()
}

// ---- 6. shutdown ----

// Shutdown with a peer that never answers the close handshake returns
// within CloseBudget and a margin (coder/websocket alone would wait 5 s);
// a tool with calls in flight gets -32006 for them before its close 1001.
func TestShutdownWithPeerThatNeverAnswersClose(t *testing.T) {
	logs, logger := newLogWatch(t)
	const budget = 300 * time.Millisecond
	b := bridgetest.Start(t, &session.Options{Logger: logger, CloseBudget: budget}, &web.Options{Logger: logger})

	mute := dialRaw(t, b.WSURL, nil) // never reads after hello
	muteID := mute.hello(map[string]any{"app": "premiere", "instance": "pr-1", "methods": []string{"render"}})["session"].(string)
	busy := bridgetest.Dial(t, b.WSURL, nil) // reads, never answers
	busy.Hello(map[string]any{"app": "maya", "instance": "m-1", "methods": []string{"simulate"}})
	tool := bridgetest.Dial(t, b.WSURL, nil)
	tool.Hello(map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-1"})

	tool.Send(`{"jsonrpc":"2.0","id":"sim","method":"maya.simulate"}`)
	busy.Expect(5*time.Second, func(m map[string]any) bool { return m["method"] == "simulate" })
	tool.Send(`{"jsonrpc":"2.0","id":"render","method":"premiere.render"}`)
	list := tool.Call("s", "bridge.sessions", map[string]any{"app": "premiere"})["result"].([]any)
	if list[0].(map[string]any)["in_flight"] != 1.0 {
		t.Fatalf("premiere.render not in flight: %v", list)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	err := b.Router.Shutdown(ctx)
	elapsed := time.Since(start)
	if err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if limit := budget + 2*time.Second; elapsed > limit {
		t.Fatalf("Shutdown took %v with a close budget of %v (allowed %v)", elapsed, budget, limit)
	}
	if b.Router.Ready() {
		t.Fatal("Ready after Shutdown")
	}

	for range 2 {
		r := tool.Read()
		code, data := rpcError(t, r)
		if code != -32006 || (r["id"] != "sim" && r["id"] != "render") || data["method"] == nil {
			t.Fatalf("a call in flight at shutdown: %v, want -32006", r)
		}
	}
	if code := tool.Closed(5 * time.Second); code != websocket.StatusGoingAway {
		t.Fatalf("tool connection ended with %v (%v), want 1001", code, tool.Err())
	}
	if code := busy.Closed(5 * time.Second); code != websocket.StatusGoingAway {
		t.Fatalf("busy host ended with %v (%v), want 1001", code, busy.Err())
	}
	logs.wait(t, time.Second, "session ended", "session", muteID)

	// The mute host finds, when it reads at last, its call and the 1001.
	var end error
	for range 10 {
		m, err := mute.read(5 * time.Second)
		if err != nil {
			end = err
			break
		}
		if m["method"] != "render" {
			t.Fatalf("mute host got %v", m)
		}
	}
	if code := websocket.CloseStatus(end); code != websocket.StatusGoingAway {
		t.Fatalf("mute host's connection ended with %v, want 1001", end)
	}
}

// ---- 7. heartbeat ----

// With a 20 ms heartbeat, bridge.sessions shows the measured round trip.
func TestHeartbeatRecordsRTT(t *testing.T) {
	b := bridgetest.Start(t, &session.Options{Logger: quietLogger(), HeartbeatInterval: 20 * time.Millisecond}, &web.Options{Logger: quietLogger()})
	pings := make(chan struct{}, 100)
	p := dialRaw(t, b.WSURL, &websocket.DialOptions{OnPingReceived: func(context.Context, []byte) bool {
		select {
		case pings <- struct{}{}:
		default:
		}
		return true
	}})
	p.hello(map[string]any{"app": "blender", "instance": "bl-1"})
	// The bridge pings again only after the previous pong came back and
	// its round trip was recorded; the peer's reads answer the pings.
	go func() {
		for {
			if _, _, err := p.conn.Read(context.Background()); err != nil {
				return
			}
		}
	}()
	for i := range 2 {
		select {
		case <-pings:
		case <-time.After(5 * time.Second):
			t.Fatalf("ping %d not received within 5 s", i+1)
		}
	}
	var rtt float64
	for _, s := range b.Router.Sessions() {
		if s.Instance == "bl-1" {
			rtt = s.RTTMS
		}
	}
	if rtt <= 0 {
		t.Fatalf("rtt_ms %v after two pings", rtt)
	}
	tool := bridgetest.Dial(t, b.WSURL, nil)
	list := tool.Call("s", "bridge.sessions", map[string]any{"app": "blender"})["result"].([]any)
	if got := list[0].(map[string]any)["rtt_ms"].(float64); got <= 0 {
		t.Fatalf("bridge.sessions rtt_ms %v", got)
	}
}

// pipeListener hands out net.Pipe ends to an http.Server, and dial gives
// the client the other end, so websockets run inside a synctest bubble.
type pipeListener struct {
	conns   chan net.Conn
	clients chan net.Conn // the client ends dialed, for a test to take
	done    chan struct{}
	once    sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), clients: make(chan net.Conn, 16), done: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

func (l *pipeListener) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	client, server := net.Pipe()
	select {
	case l.conns <- server:
		select {
		case l.clients <- client:
		default:
		}
		return client, nil
	case <-l.done:
		return nil, net.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "127.0.0.1:8098" }

// A peer that stops answering pings is dropped after HeartbeatTimeout
// (defaults: a ping every 5 s, 15 s for its pong); a peer that answers
// stays. Fake time in a synctest bubble, coder/websocket over net.Pipe.
func TestHeartbeatDropsSilentPeer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		logs, logger := newLogWatch(t)
		const interval, timeout = 5 * time.Second, 15 * time.Second
		r := session.New(session.Options{Logger: logger, HeartbeatInterval: interval, HeartbeatTimeout: timeout})
		ln := newPipeListener()
		h := web.New(web.Options{Router: r, Addr: "127.0.0.1:8098", Logger: logger})
		srv := &http.Server{Handler: h}
		served := make(chan struct{})
		go func() { _ = srv.Serve(ln); close(served) }()
		tr := &http.Transport{DialContext: ln.dial}
		client := &http.Client{Transport: tr}
		ctx := context.Background()
		dial := func(instance string) *websocket.Conn {
			conn, _, err := websocket.Dial(ctx, "ws://127.0.0.1:8098/ws", &websocket.DialOptions{HTTPClient: client})
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			hello := fmt.Sprintf(`{"jsonrpc":"2.0","id":1,"method":"bridge.hello","params":{"app":"aftereffects","instance":%q}}`, instance)
			if err := conn.Write(ctx, websocket.MessageText, []byte(hello)); err != nil {
				t.Fatal(err)
			}
			if _, _, err := conn.Read(ctx); err != nil {
				t.Fatal(err)
			}
			return conn
		}
		live := dial("ae-live")
		<-ln.clients
		liveDone := make(chan error, 1)
		go func() { // reading answers the pings
			for {
				if _, _, err := live.Read(ctx); err != nil {
					liveDone <- err
					return
				}
			}
		}()
		// The silent peer's websocket never reads again, so it never
		// answers a ping; its socket still swallows what the bridge writes
		// (net.Pipe has no buffer: without this the ping's write would
		// block, and coder/websocket gives a control frame's write 5 s).
		silent := dial("ae-silent")
		drained := make(chan struct{})
		go func() { _, _ = io.Copy(io.Discard, <-ln.clients); close(drained) }()
		start := time.Now()
		instances := func() []string {
			var list []string
			for _, s := range r.Sessions() {
				list = append(list, s.Instance)
			}
			return list
		}

		// The first ping goes out at start+interval; its pong is due within
		// the timeout.
		time.Sleep(interval + timeout - time.Millisecond)
		synctest.Wait()
		if got := instances(); !slices.Equal(got, []string{"ae-live", "ae-silent"}) {
			t.Fatalf("at %v: sessions %v, want both", time.Since(start), got)
		}
		time.Sleep(2 * time.Millisecond)
		synctest.Wait()
		states := func() map[string]session.State {
			m := map[string]session.State{}
			for _, s := range r.Sessions() {
				m[s.Instance] = s.State
			}
			return m
		}
		if got := states(); got["ae-live"] != session.StateConnected || got["ae-silent"] != session.StateReconnecting {
			t.Fatalf("at %v: states %v, want ae-live connected, ae-silent reconnecting", time.Since(start), got)
		}
		// It waits ResumeWait (default 30 s) for its instance, then leaves.
		time.Sleep(30 * time.Second)
		synctest.Wait()
		if got := instances(); !slices.Equal(got, []string{"ae-live"}) {
			t.Fatalf("at %v: sessions %v, want only ae-live", time.Since(start), got)
		}
		rec := logs.wait(t, 0, "session ended", "instance", "ae-silent")
		if !strings.Contains(rec.Attrs["cause"], "no pong within 15s") {
			t.Fatalf("silent session ended by %q", rec.Attrs["cause"])
		}

		time.Sleep(10 * (interval + timeout))
		synctest.Wait()
		if got := instances(); !slices.Equal(got, []string{"ae-live"}) {
			t.Fatalf("at %v: sessions %v, want ae-live still there", time.Since(start), got)
		}

		_ = silent.CloseNow()
		<-drained
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := r.Shutdown(sctx); err != nil {
			t.Fatal(err)
		}
		if err := <-liveDone; websocket.CloseStatus(err) != websocket.StatusGoingAway {
			t.Fatalf("live peer ended with %v, want 1001", err)
		}
		h.Close()
		_ = srv.Close()
		<-served
		tr.CloseIdleConnections()
	})
}

// ---- 8. unauthorized peers ----

// A peer accepted without a token (token in force) gets -32005 for every
// call; a hello with a wrong token gets -32005 and close 1008; a hello with
// the right token admits it.
func TestUnauthorizedPeer(t *testing.T) {
	logs, logger := newLogWatch(t)
	const token = "s3cret"
	b := bridgetest.Start(t, &session.Options{Logger: logger, Token: token},
		&web.Options{Logger: logger, Token: token, TokenInForce: true})

	bearer := func(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }
	tool := bridgetest.Dial(t, b.WSURL, bearer(token))
	tool.Hello(map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-1", "methods": []string{"publish"}})
	if _, resp, err := bridgetest.TryDial(t, b.WSURL, bearer("wrong")); err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("upgrade with a wrong token: err %v, response %v; want 401", err, resp)
	}

	unauthorized := func(p *bridgetest.Peer, id, method string, params any) {
		t.Helper()
		r := p.Call(id, method, params)
		if code, _ := rpcError(t, r); code != -32005 {
			t.Fatalf("%s before hello: %v, want -32005", method, r)
		}
	}
	p := bridgetest.Dial(t, b.WSURL, nil)
	unauthorized(p, "1", "bridge.ping", nil)
	unauthorized(p, "2", "bridge.sessions", nil)
	unauthorized(p, "3", "bridge.register", map[string]any{"methods": []string{"x"}})
	unauthorized(p, "4", "bridge.publish", map[string]any{"topic": "news", "data": 1})
	unauthorized(p, "5", "pipeline.publish", map[string]any{"a": 1})
	p.Send(`[{"jsonrpc":"2.0","id":"b1","method":"bridge.ping"},{"jsonrpc":"2.0","method":"pipeline.publish"},{"jsonrpc":"2.0","id":"b2","method":"pipeline.publish"}]`)
	batch := p.Read()["batch"].([]any)
	if len(batch) != 2 {
		t.Fatalf("batch before hello: %v", batch)
	}
	for _, m := range batch {
		if code, _ := rpcError(t, m.(map[string]any)); code != -32005 {
			t.Fatalf("batch member before hello: %v", m)
		}
	}
	r := p.Call("h", "bridge.hello", map[string]any{"app": "aftereffects", "instance": "ae-1", "token": "wrong"})
	if code, _ := rpcError(t, r); code != -32005 {
		t.Fatalf("hello with a wrong token: %v, want -32005", r)
	}
	if code := p.Closed(5 * time.Second); code != websocket.StatusPolicyViolation {
		t.Fatalf("after a wrong hello token the connection ended with %v (%v), want 1008", code, p.Err())
	}
	logs.wait(t, 5*time.Second, "hello refused: bad or missing token")

	missing := bridgetest.Dial(t, b.WSURL, nil)
	r = missing.Call("h", "bridge.hello", map[string]any{"app": "aftereffects", "instance": "ae-1"})
	if code, _ := rpcError(t, r); code != -32005 {
		t.Fatalf("hello without a token: %v, want -32005", r)
	}
	if code := missing.Closed(5 * time.Second); code != websocket.StatusPolicyViolation {
		t.Fatalf("after a hello without a token the connection ended with %v, want 1008", code)
	}

	good := bridgetest.Dial(t, b.WSURL, nil)
	unauthorized(good, "1", "bridge.ping", nil)
	res := good.Hello(map[string]any{"app": "aftereffects", "instance": "ae-1", "token": token})
	if res["session"] == nil {
		t.Fatalf("hello with the token: %v", res)
	}
	if r := good.Call("2", "bridge.ping", nil); r["result"] == nil {
		t.Fatalf("ping after hello: %v", r)
	}
	good.Send(`{"jsonrpc":"2.0","id":"3","method":"pipeline.publish","params":{"a":1}}`)
	fwd := tool.Expect(5*time.Second, func(m map[string]any) bool { return m["method"] == "publish" })
	tool.Send(map[string]any{"jsonrpc": "2.0", "id": fwd["id"], "result": "done"})
	if r := good.Expect(5*time.Second, func(m map[string]any) bool { return m["id"] == "3" }); r["result"] != "done" {
		t.Fatalf("routed call after hello: %v", r)
	}
	// The unauthorized peer's routed calls never reached the tool: the
	// only call it got is the admitted peer's.
	if got := fwd["meta"].(map[string]any)["caller"].(map[string]any)["instance"]; got != "ae-1" {
		t.Fatalf("tool got a call from %v", got)
	}
	if r := tool.Call("p", "bridge.ping", nil); r["result"] == nil {
		t.Fatalf("tool ping: %v", r)
	}
}
