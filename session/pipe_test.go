package session_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/coder/websocket"

	"github.com/dccbridge/dccbridge/internal/pipelisten"
	"github.com/dccbridge/dccbridge/session"
	"github.com/dccbridge/dccbridge/web"
)

// A bridge served over net.Pipe inside a synctest bubble, through the real
// websocket adapter (package web and coder/websocket), for the heartbeat
// tests that need the real transport with fake time.

// pipeBridge is a bridge served over net.Pipe inside a synctest bubble.
type pipeBridge struct {
	t      *testing.T
	r      *session.Router
	ln     *pipelisten.Listener
	web    *web.Server
	srv    *http.Server
	served chan struct{}
	tr     *http.Transport
	client *http.Client
	peers  []*pipePeer
	logs   *logWatch
}

func startPipeBridge(t *testing.T, opts session.Options) *pipeBridge {
	logs, logger := newLogWatch(t)
	opts.Logger = logger
	b := &pipeBridge{t: t, r: session.New(opts), ln: pipelisten.New(), served: make(chan struct{}), logs: logs}
	b.web = web.New(web.Options{Router: b.r, Addr: "127.0.0.1:8098", Logger: logger})
	b.srv = web.NewHTTPServer(b.web, nil)
	go func() { _ = b.srv.Serve(b.ln); close(b.served) }()
	b.tr = &http.Transport{DialContext: b.ln.Dial}
	b.client = &http.Client{Transport: b.tr}
	return b
}

// close shuts the bridge down and ends every peer, so that the bubble has
// no goroutine left.
func (b *pipeBridge) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.r.Shutdown(ctx); err != nil {
		b.t.Errorf("shutdown: %v", err)
	}
	for _, p := range b.peers {
		p.drop()
	}
	b.web.Close()
	_ = b.srv.Close()
	<-b.served
	b.tr.CloseIdleConnections()
}

// pipePeer is a websocket peer over net.Pipe whose reader hands every
// message to in.
type pipePeer struct {
	t    *testing.T
	conn *websocket.Conn
	in   chan map[string]any
	done chan struct{}
}

// dial connects a peer and says hello; it returns the hello result.
func (b *pipeBridge) dial(hello map[string]any) (*pipePeer, map[string]any) {
	b.t.Helper()
	conn, _, err := websocket.Dial(context.Background(), "ws://127.0.0.1:8098/ws", &websocket.DialOptions{HTTPClient: b.client})
	if err != nil {
		b.t.Fatalf("dial: %v", err)
	}
	p := &pipePeer{t: b.t, conn: conn, in: make(chan map[string]any, 100), done: make(chan struct{})}
	b.peers = append(b.peers, p)
	go func() {
		defer close(p.done)
		for {
			_, data, err := conn.Read(context.Background())
			if err != nil {
				return
			}
			var m map[string]any
			if json.Unmarshal(data, &m) == nil {
				p.in <- m
			}
		}
	}()
	p.send(map[string]any{"jsonrpc": "2.0", "id": "hello", "method": "bridge.hello", "params": hello})
	m := p.next()
	res, ok := m["result"].(map[string]any)
	if m["id"] != "hello" || !ok {
		b.t.Fatalf("want the hello result, got %v", m)
	}
	return p, res
}

func (p *pipePeer) send(v any) {
	p.t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		p.t.Fatal(err)
	}
	if err := p.conn.Write(context.Background(), websocket.MessageText, data); err != nil {
		p.t.Fatalf("send: %v", err)
	}
}

// next returns the next message, failing after a minute of fake time.
func (p *pipePeer) next() map[string]any {
	p.t.Helper()
	select {
	case m := <-p.in:
		return m
	case <-time.After(time.Minute):
		p.t.Fatalf("no message within a minute")
		return nil
	}
}

// drop cuts the connection without a close frame and waits for the reader.
func (p *pipePeer) drop() {
	_ = p.conn.CloseNow()
	<-p.done
}

// sleepUntil advances fake time to at and lets the bubble settle.
func sleepUntil(at time.Time) {
	time.Sleep(time.Until(at))
	synctest.Wait()
}
