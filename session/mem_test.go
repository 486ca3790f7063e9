package session_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/dccbridge/dccbridge/internal/bridgetest"
	"github.com/dccbridge/dccbridge/internal/memconn"
	"github.com/dccbridge/dccbridge/session"
)

// An in-memory harness: a Router whose peers are internal/memconn pairs,
// for tests that run inside a synctest bubble, where time is fake and a
// wait of a minute for a message that never comes passes at once.

// memWait bounds every wait for a message that must come (fake time).
const memWait = time.Minute

// memBridge is a Router served over in-memory connections. Start it inside
// a synctest bubble: it shuts down when the bubble's test ends, so that no
// goroutine is left.
type memBridge struct {
	t     *testing.T
	r     *session.Router
	logs  *logWatch
	wg    sync.WaitGroup
	mu    sync.Mutex
	peers []*memPeer
}

// startMem starts a Router with opts, its logs feeding a logWatch.
func startMem(t *testing.T, opts session.Options) *memBridge {
	t.Helper()
	logs, logger := newLogWatch(t)
	opts.Logger = logger
	b := &memBridge{t: t, r: session.New(opts), logs: logs}
	t.Cleanup(b.shutdown)
	return b
}

// shutdown shuts the Router down, ends every peer and waits for every
// session's goroutine.
func (b *memBridge) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := b.r.Shutdown(ctx); err != nil {
		b.t.Errorf("shutdown: %v", err)
	}
	b.mu.Lock()
	peers := b.peers
	b.mu.Unlock()
	for _, p := range peers {
		p.p.Drop()
	}
	b.wg.Wait()
}

// connect makes a memconn pair and serves its bridge end.
func (b *memBridge) connect(opts memconn.Options) *memPeer {
	conn, peer := memconn.New(opts)
	p := &memPeer{t: b.t, p: peer}
	b.mu.Lock()
	b.peers = append(b.peers, p)
	b.mu.Unlock()
	b.wg.Go(func() { b.r.Serve(conn, session.Peer{Authorized: true, Remote: "mem"}) })
	return p
}

// join connects a peer and says hello; the very next message must be the
// hello result, which it returns.
func (b *memBridge) join(hello map[string]any) (*memPeer, map[string]any) {
	b.t.Helper()
	p := b.connect(memconn.Options{})
	return p, p.helloFirst(hello)
}

// joinSID is join for tests that need only the session id.
func (b *memBridge) joinSID(hello map[string]any) (*memPeer, string) {
	b.t.Helper()
	p, res := b.join(hello)
	sid, _ := res["session"].(string)
	if sid == "" {
		b.t.Fatalf("hello result has no session: %v", res)
	}
	return p, sid
}

// stateOf returns the router's view of instance, or nil.
func (b *memBridge) stateOf(instance string) *session.SessionInfo {
	return sessionInfo(b.r, instance)
}

// memPeer is the client end of an in-memory connection. It has no read
// loop: it reads when the test tells it to.
type memPeer struct {
	t *testing.T
	p *memconn.Peer
}

// Send sends v (a string or []byte of JSON, or a value to encode).
func (p *memPeer) Send(v any) {
	p.t.Helper()
	if err := p.p.Send(bridgetest.Encode(p.t, v)); err != nil {
		p.t.Fatalf("send: %v", err)
	}
}

func (p *memPeer) send(v any) { p.t.Helper(); p.Send(v) }

// recv returns the next message or the error that ended the connection
// (a *session.CloseError for the bridge's close), or the timeout.
func (p *memPeer) recv(timeout time.Duration) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return p.p.Recv(ctx)
}

// ReadRaw returns the next message, failing the test after timeout.
func (p *memPeer) ReadRaw(timeout time.Duration) []byte {
	p.t.Helper()
	b, err := p.recv(timeout)
	if err != nil {
		p.t.Fatalf("at %v: no message within %v: %v", time.Now().Format("15:04:05.000"), timeout, err)
	}
	return b
}

// read returns the next message decoded, or the error that ended the
// connection or the wait.
func (p *memPeer) read(timeout time.Duration) (map[string]any, error) {
	b, err := p.recv(timeout)
	if err != nil {
		return nil, err
	}
	return bridgetest.DecodeObject(b)
}

// Read returns the next message decoded as an object (or {"batch": [...]}
// for an array).
func (p *memPeer) Read() map[string]any {
	p.t.Helper()
	return bridgetest.DecodeMessage(p.t, p.ReadRaw(memWait))
}

// next reads the next message, whatever it is, failing the test when none
// comes.
func (p *memPeer) next() map[string]any {
	p.t.Helper()
	m, err := p.read(memWait)
	if err != nil {
		p.t.Fatalf("at %v: waiting for a message: %v", time.Now().Format("15:04:05.000"), err)
	}
	return m
}

// arrived returns the message that has arrived, without letting fake time
// pass; call it after synctest.Wait.
func (p *memPeer) arrived() map[string]any {
	p.t.Helper()
	m, err := p.read(0)
	if err != nil {
		p.t.Fatalf("at %v: nothing has arrived: %v", time.Now().Format("15:04:05.000"), err)
	}
	return m
}

// none requires that nothing has arrived; call it after synctest.Wait.
func (p *memPeer) none() {
	p.t.Helper()
	if m, err := p.read(0); err == nil {
		p.t.Fatalf("at %v: unexpected %v", time.Now().Format("15:04:05.000"), m)
	}
}

// Expect reads messages until one satisfies match, failing after timeout.
func (p *memPeer) Expect(timeout time.Duration, match func(map[string]any) bool) map[string]any {
	p.t.Helper()
	return bridgetest.Expect(p.t, timeout, p.ReadRaw, match)
}

// Call sends a request and returns its reply (skipping other messages).
func (p *memPeer) Call(id any, method string, params any) map[string]any {
	p.t.Helper()
	msg, reply := bridgetest.Request(id, method, params)
	p.Send(msg)
	return p.Expect(memWait, reply)
}

// call is Call with a string id.
func (p *memPeer) call(id, method string, params any) map[string]any {
	p.t.Helper()
	return p.Call(id, method, params)
}

// Hello says bridge.hello and fails the test on an error reply.
func (p *memPeer) Hello(params map[string]any) map[string]any {
	p.t.Helper()
	r := p.Call("hello", "bridge.hello", params)
	res, ok := r["result"].(map[string]any)
	if !ok {
		p.t.Fatalf("hello failed: %v", r)
	}
	return res
}

// helloFirst says bridge.hello and requires the very next message to be
// its result, which it returns.
func (p *memPeer) helloFirst(params map[string]any) map[string]any {
	p.t.Helper()
	p.Send(map[string]any{"jsonrpc": "2.0", "id": "hello", "method": "bridge.hello", "params": params})
	m := p.next()
	res, ok := m["result"].(map[string]any)
	if m["id"] != "hello" || !ok {
		p.t.Fatalf("want the hello result first, got %v", m)
	}
	return res
}

// nextCall reads p's next message and requires it to be a forwarded call
// of method with attempt; it returns the forwarded id and the params.
func (p *memPeer) nextCall(method string, attempt int) (fid string, params map[string]any) {
	p.t.Helper()
	m := p.next()
	fid, _ = m["id"].(string)
	meta, _ := m["meta"].(map[string]any)
	if fid == "" || m["method"] != method || meta == nil || meta["attempt"] != float64(attempt) {
		p.t.Fatalf("want call %s attempt %d, got %v", method, attempt, m)
	}
	params, _ = m["params"].(map[string]any)
	return fid, params
}

// answer sends the result of the forwarded call fid.
func (p *memPeer) answer(fid string, result any) {
	p.t.Helper()
	p.Send(map[string]any{"jsonrpc": "2.0", "id": fid, "result": result})
}

// drop cuts the connection without a close, as a network failure.
func (p *memPeer) drop() { p.p.Drop() }

// close closes the connection with code and reason, as a peer's close.
func (p *memPeer) close(code session.CloseCode, reason string) { p.p.Close(code, reason) }

// closed reads what is left for p and returns the close the connection
// ended with (nil when it was dropped); it fails the test when the
// connection is still open after a minute of fake time.
func (p *memPeer) closed() *session.CloseError {
	p.t.Helper()
	for {
		_, err := p.recv(memWait)
		if err == nil {
			continue
		}
		var ce *session.CloseError
		if errors.As(err, &ce) {
			return ce
		}
		if errors.Is(err, context.DeadlineExceeded) {
			p.t.Fatalf("connection still open after %v", memWait)
		}
		return nil
	}
}

// memEchoHost says hello as a host of app with methods and answers every
// request it gets with its params and its instance, except the method
// named "hang", which it never answers. It ends when its connection does.
func (b *memBridge) memEchoHost(app, instance string, methods ...string) *memPeer {
	b.t.Helper()
	p, _ := b.join(map[string]any{"app": app, "instance": instance, "methods": methods})
	go func() {
		for {
			data, err := p.p.Recv(context.Background())
			if err != nil {
				return
			}
			reply, ok := echoReply(data, instance)
			if !ok {
				continue
			}
			if p.p.Send(reply) != nil {
				return
			}
		}
	}()
	return p
}

// dial connects a peer that has not said hello.
func (b *memBridge) dial() *memPeer { return b.connect(memconn.Options{}) }

// step runs one named part of a test inside a synctest bubble, where t.Run
// may not be called; a failure in it is followed by the step's name.
func step(t *testing.T, name string, f func(t *testing.T)) {
	t.Helper()
	failed := t.Failed()
	defer func() {
		if t.Failed() && !failed {
			t.Logf("in step %q", name)
		}
	}()
	f(t)
}

// memCloseError returns the bridge's close that ended a memPeer's
// connection, as read or recv report it.
func memCloseError(err error) session.CloseError {
	var ce *session.CloseError
	if !errors.As(err, &ce) {
		return session.CloseError{Code: -1, Reason: fmt.Sprint(err)}
	}
	return *ce
}
