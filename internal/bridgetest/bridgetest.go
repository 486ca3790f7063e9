// Package bridgetest starts real bridges on 127.0.0.1 and connects real
// websocket peers to them, for tests across the project.
package bridgetest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/dccbridge/dccbridge/session"
	"github.com/dccbridge/dccbridge/web"
)

// Bridge is a bridge served by httptest.
type Bridge struct {
	Router *session.Router
	Web    *web.Server // Close it before Server when ending the bridge early (Stop does)
	Server *httptest.Server
	Addr   string // host:port it listens on, 127.0.0.1:port unless StartOn was given another
	URL    string // http://Addr
	WSURL  string // ws://Addr/ws

	stopOnce sync.Once
}

// Start serves a bridge on a free port of 127.0.0.1 for the test's
// lifetime. so and wo may be nil; see NewUnstarted for what it sets in
// them.
func Start(t testing.TB, so *session.Options, wo *web.Options) *Bridge {
	t.Helper()
	return StartOn(t, "127.0.0.1:0", so, wo)
}

// StartOn serves a bridge on addr (host:port; port 0 for a free one) until
// Stop or the test's end. A restart test stops one bridge and starts
// another on the first one's Addr.
func StartOn(t testing.TB, addr string, so *session.Options, wo *web.Options) *Bridge {
	t.Helper()
	b := NewUnstarted(t, addr, so, wo)
	b.Server.Start()
	return b
}

// NewUnstarted returns a bridge listening on addr (as StartOn) whose
// Server is not started yet: the caller may change b.Server.Config, then
// calls b.Server.Start. Listening is retried for a while, as the socket of
// a bridge just stopped on addr may linger. so and wo may be nil; their
// Router is set, wo.Addr when empty is set to the address listened on, and
// so.Token when empty is set to wo.Token. b.Stop runs when the test ends.
func NewUnstarted(t testing.TB, addr string, so *session.Options, wo *web.Options) *Bridge {
	t.Helper()
	if so == nil {
		so = &session.Options{}
	}
	if wo == nil {
		wo = &web.Options{}
	}
	if so.Token == "" {
		so.Token = wo.Token // one token for the upgrade and for hello
	}
	ln := listen(t, addr)
	r := session.New(*so)
	wo.Router = r
	if wo.Addr == "" {
		wo.Addr = ln.Addr().String()
	}
	h := web.New(*wo)
	srv := &httptest.Server{Listener: ln, Config: web.NewHTTPServer(h, nil)} // configured as `bridge serve` configures it
	b := &Bridge{Router: r, Web: h, Server: srv, Addr: ln.Addr().String()}
	b.URL = "http://" + b.Addr
	b.WSURL = "ws://" + b.Addr + "/ws"
	t.Cleanup(b.Stop)
	return b
}

// listen listens on addr, retrying for up to 10 s while it is in use.
func listen(t testing.TB, addr string) net.Listener {
	t.Helper()
	var ln net.Listener
	var err error
	for deadline := time.Now().Add(10 * time.Second); ; {
		if ln, err = net.Listen("tcp", addr); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	return ln
}

// Stop shuts the bridge down: its sessions are closed with 1001 (the
// Router's Shutdown, for up to 5 s), then the status page's event streams,
// then the server. It is safe to call more than once.
func (b *Bridge) Stop() {
	b.stopOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = b.Router.Shutdown(ctx)
		b.Web.Close()
		b.Server.Close()
	})
}

// Peer is a raw websocket JSON-RPC peer: it sends and reads JSON text.
type Peer struct {
	t    testing.TB
	Conn *websocket.Conn
	raw  chan []byte
	mu   sync.Mutex
	err  error
	done chan struct{}
}

// Dial connects a peer to url with optional headers; it fails the test on error.
func Dial(t testing.TB, url string, header http.Header) *Peer {
	t.Helper()
	p, resp, err := TryDial(t, url, header)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (HTTP %d)", url, err, status)
	}
	return p
}

// TryDial connects a peer and returns the dial error and response.
func TryDial(t testing.TB, url string, header http.Header) (*Peer, *http.Response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: header})
	if err != nil {
		return nil, resp, err
	}
	conn.SetReadLimit(64 << 20)
	p := &Peer{t: t, Conn: conn, raw: make(chan []byte, 100000), done: make(chan struct{})}
	go p.readLoop()
	t.Cleanup(func() { _ = conn.CloseNow() })
	return p, resp, nil
}

func (p *Peer) readLoop() {
	defer close(p.done)
	for {
		_, b, err := p.Conn.Read(context.Background())
		if err != nil {
			p.mu.Lock()
			p.err = err
			p.mu.Unlock()
			return
		}
		p.raw <- b
	}
}

// Send writes v (a string, []byte or a value to encode) as one text message.
func (p *Peer) Send(v any) {
	p.t.Helper()
	b := Encode(p.t, v)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.Conn.Write(ctx, websocket.MessageText, b); err != nil {
		p.t.Fatalf("send: %v", err)
	}
}

// Encode returns v as one message: a string or []byte of JSON as it is,
// any other value encoded; it fails t when v does not encode.
func Encode(t testing.TB, v any) []byte {
	t.Helper()
	switch x := v.(type) {
	case string:
		return []byte(x)
	case []byte:
		return x
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	return b
}

// DecodeObject decodes a message from the bridge as a JSON object.
func DecodeObject(b []byte) (map[string]any, error) {
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("bad JSON from the bridge: %s", b)
	}
	return m, nil
}

// ReadRaw returns the next message, failing the test after timeout.
func (p *Peer) ReadRaw(timeout time.Duration) []byte {
	p.t.Helper()
	select {
	case b := <-p.raw:
		return b
	case <-time.After(timeout):
		p.t.Fatalf("no message within %v (connection error: %v)", timeout, p.Err())
		return nil
	}
}

// Read returns the next message decoded as an object (or {"batch": [...]}
// for an array), failing the test after 5 s.
func (p *Peer) Read() map[string]any {
	p.t.Helper()
	return DecodeMessage(p.t, p.ReadRaw(5*time.Second))
}

// DecodeMessage decodes a message from the bridge as an object, or an
// array as {"batch": [...]}; it fails t on anything else.
func DecodeMessage(t testing.TB, b []byte) map[string]any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("bad JSON from the bridge: %s", b)
	}
	switch x := v.(type) {
	case []any:
		return map[string]any{"batch": x}
	case map[string]any:
		return x
	}
	t.Fatalf("the bridge sent %s: neither an object nor an array", b)
	return nil
}

// Expect reads messages until one satisfies match, failing after timeout.
func (p *Peer) Expect(timeout time.Duration, match func(map[string]any) bool) map[string]any {
	p.t.Helper()
	return Expect(p.t, timeout, p.ReadRaw, match)
}

// Expect reads messages with readRaw (which fails t when nothing comes in
// the time it is given) until one decodes to an object that satisfies
// match, and fails t after timeout. Test peers of every transport use it.
func Expect(t testing.TB, timeout time.Duration, readRaw func(time.Duration) []byte, match func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			t.Fatalf("no matching message within %v", timeout)
		}
		var m map[string]any
		if json.Unmarshal(readRaw(left), &m) == nil && match(m) {
			return m
		}
	}
}

// Request returns the JSON-RPC request for method with params (nil: none),
// and a match for Expect that picks its reply.
func Request(id any, method string, params any) (msg map[string]any, reply func(map[string]any) bool) {
	msg = map[string]any{"jsonrpc": "2.0", "id": id, "method": method}
	if params != nil {
		msg["params"] = params
	}
	want, _ := json.Marshal(id)
	return msg, func(m map[string]any) bool {
		got, _ := json.Marshal(m["id"])
		_, isReq := m["method"]
		return !isReq && string(got) == string(want)
	}
}

// Call sends a request and returns its reply (skipping other messages).
func (p *Peer) Call(id any, method string, params any) map[string]any {
	p.t.Helper()
	msg, reply := Request(id, method, params)
	p.Send(msg)
	return p.Expect(5*time.Second, reply)
}

// Hello says bridge.hello with params and fails the test on an error reply.
func (p *Peer) Hello(params map[string]any) map[string]any {
	p.t.Helper()
	r := p.Call("hello", "bridge.hello", params)
	if r["error"] != nil {
		p.t.Fatalf("hello failed: %v", r["error"])
	}
	return r["result"].(map[string]any)
}

// Err returns the error that ended the read loop, if it has ended.
func (p *Peer) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Closed waits until the connection ends and returns its close status
// (-1 when it ended without a close frame).
func (p *Peer) Closed(timeout time.Duration) websocket.StatusCode {
	p.t.Helper()
	select {
	case <-p.done:
		return websocket.CloseStatus(p.Err())
	case <-time.After(timeout):
		p.t.Fatalf("connection still open after %v", timeout)
		return 0
	}
}

// StartHandler serves h on a free port of 127.0.0.1 until the test ends,
// as `bridge serve` serves a --listen port, and returns its ws:// base
// URL (no path).
func StartHandler(t testing.TB, h http.Handler) string {
	t.Helper()
	ln := listen(t, "127.0.0.1:0")
	srv := &httptest.Server{Listener: ln, Config: web.NewHTTPServer(h, nil)}
	srv.Start()
	t.Cleanup(srv.Close)
	return "ws://" + ln.Addr().String()
}

// SyncBuffer is a bytes.Buffer safe for concurrent writers (a logger, a
// child process's output copier) and a test reading it meanwhile.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
