package session_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/dccbridge/dccbridge/internal/bridgetest"
)

// Helpers shared by the tests: a log watch to await log lines instead of
// sleeping, and peers over real websockets (rawPeer, echoHost).

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
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.conn.Write(ctx, websocket.MessageText, bridgetest.Encode(p.t, v)); err != nil {
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
	return bridgetest.DecodeObject(b)
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

// echoReply is an echo host's answer to msg: its params and the host's
// instance as the result; ok is false for what it does not answer
// (replies, notifications, and the method "hang").
func echoReply(msg []byte, instance string) (reply []byte, ok bool) {
	var m struct {
		ID     json.RawMessage `json:"id"`
		Method string          `json:"method"`
		Params json.RawMessage `json:"params"`
	}
	if json.Unmarshal(msg, &m) != nil || m.ID == nil || m.Method == "" || m.Method == "hang" {
		return nil, false
	}
	if m.Params == nil {
		m.Params = json.RawMessage("null")
	}
	return fmt.Appendf(nil, `{"jsonrpc":"2.0","id":%s,"result":{"instance":%q,"params":%s}}`, m.ID, instance, m.Params), true
}

func (h *echoHost) serve(instance string) {
	defer close(h.done)
	ctx := context.Background()
	for {
		_, b, err := h.conn.Read(ctx)
		if err != nil {
			return
		}
		reply, ok := echoReply(b, instance)
		if !ok {
			continue
		}
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = h.conn.Write(wctx, websocket.MessageText, reply)
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
