package hostadapters_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/dccbridge/dccbridge/hostadapters"
	"github.com/dccbridge/dccbridge/internal/bridgetest"
	"github.com/dccbridge/dccbridge/session"
	"github.com/dccbridge/dccbridge/web"
)

// wsrpcPanel is a wsrpc panel written from the wire of AYON's After
// Effects and Photoshop extensions (their vendored wsrpc.js): its calls
// have odd ids from 3, restarting at every connection, and no "jsonrpc";
// calls made before the socket opened go out pretty-printed; it answers
// a route it lacks with {"error":"Route not found","result":null,"id":N},
// a handler that throws with {"id":N,"error":{}}, an undefined result
// with {"id":N}, and a call without an id with the same but no id. After a
// reconnect it sends nothing.
type wsrpcPanel struct {
	t      *testing.T
	url    string
	routes map[string]panelRoute

	mu       sync.Mutex
	conn     *websocket.Conn
	id       int
	pending  map[int]chan map[string]any
	received []map[string]any // every message the bridge sent, in order
	arrived  chan map[string]any
}

// panelRoute answers a call: a result, errUndefined for undefined, or
// errThrown for a handler that throws.
type panelRoute func(params map[string]any) (any, error)

var (
	errUndefined = errors.New("undefined")
	errThrown    = errors.New("thrown")
)

func newPanel(t *testing.T, url string, routes map[string]panelRoute) *wsrpcPanel {
	return &wsrpcPanel{t: t, url: url, routes: routes, arrived: make(chan map[string]any, 1000)}
}

// connect opens a connection; queued calls are sent at once, pretty-printed,
// as wsrpc.js sends the calls made before the socket opened.
func (p *wsrpcPanel) connect(queued ...string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, p.url, nil)
	if err != nil {
		p.t.Fatalf("panel: dial %s: %v", p.url, err)
	}
	p.mu.Lock()
	p.conn, p.id, p.pending = c, 1, map[int]chan map[string]any{}
	p.mu.Unlock()
	p.t.Cleanup(func() { c.CloseNow() })
	go p.read(c)
	for _, method := range queued {
		p.send(p.newCall(method, nil), true)
	}
}

// newCall returns a call with the next odd id and a channel for its reply.
func (p *wsrpcPanel) newCall(method string, params any) map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.id += 2
	p.pending[p.id] = make(chan map[string]any, 1)
	m := map[string]any{"id": p.id, "method": method}
	if params != nil {
		m["params"] = params
	}
	return m
}

func (p *wsrpcPanel) send(v any, pretty bool) {
	var b []byte
	if pretty {
		b, _ = json.MarshalIndent(v, "", " ")
	} else {
		b, _ = json.Marshal(v)
	}
	p.mu.Lock()
	c := p.conn
	p.mu.Unlock()
	_ = c.Write(context.Background(), websocket.MessageText, b)
}

// call calls a route on the server side and returns the reply.
func (p *wsrpcPanel) call(method string, params any) map[string]any {
	p.t.Helper()
	m := p.newCall(method, params)
	p.mu.Lock()
	ch := p.pending[m["id"].(int)]
	p.mu.Unlock()
	p.send(m, false)
	select {
	case r := <-ch:
		return r
	case <-time.After(15 * time.Second):
		p.t.Fatalf("panel: no reply to %s", method)
		return nil
	}
}

func (p *wsrpcPanel) read(c *websocket.Conn) {
	for {
		_, b, err := c.Read(context.Background())
		if err != nil {
			return
		}
		var m map[string]any
		if json.Unmarshal(b, &m) != nil {
			p.t.Errorf("panel: not JSON: %s", b)
			continue
		}
		p.mu.Lock()
		p.received = append(p.received, m)
		p.mu.Unlock()
		p.arrived <- m
		if _, isCall := m["method"]; isCall {
			go p.answer(c, m)
			continue
		}
		id, _ := m["id"].(float64)
		p.mu.Lock()
		ch := p.pending[int(id)]
		delete(p.pending, int(id))
		p.mu.Unlock()
		if ch != nil {
			ch <- m
		}
	}
}

func (p *wsrpcPanel) answer(c *websocket.Conn, m map[string]any) {
	id, hasID := m["id"]
	reply := map[string]any{}
	if hasID {
		reply["id"] = id
	}
	route, ok := p.routes[m["method"].(string)]
	if !ok {
		reply["error"], reply["result"] = "Route not found", nil
	} else {
		params, _ := m["params"].(map[string]any)
		switch res, err := route(params); err {
		case nil:
			reply["result"] = res
		case errThrown:
			reply["error"] = map[string]any{}
		case errUndefined:
		}
	}
	b, _ := json.Marshal(reply)
	_ = c.Write(context.Background(), websocket.MessageText, b)
}

// drop ends the connection without a close frame (After Effects quits, or
// its network goes).
func (p *wsrpcPanel) drop() {
	p.mu.Lock()
	c := p.conn
	p.mu.Unlock()
	c.CloseNow()
}

// expectCall waits for a call of method from the bridge.
func (p *wsrpcPanel) expectCall(method string) map[string]any {
	p.t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		select {
		case m := <-p.arrived:
			if m["method"] == method {
				return m
			}
		case <-deadline:
			p.t.Fatalf("panel: %s never came", method)
			return nil
		}
	}
}

// all returns every message the bridge sent the panel.
func (p *wsrpcPanel) all() []map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]map[string]any(nil), p.received...)
}

// startBridge serves a bridge with the built-in catalog and the wsrpc
// dialect, and also a listener for After Effects panels (as --listen
// aftereffects=…); it returns the bridge and that listener's ws URL.
func startBridge(t *testing.T, so *session.Options, wo *web.Options) (*bridgetest.Bridge, string) {
	t.Helper()
	catalog, err := hostadapters.Load("")
	if err != nil {
		t.Fatal(err)
	}
	if so == nil {
		so = &session.Options{}
	}
	if wo == nil {
		wo = &web.Options{}
	}
	if so.Logger == nil {
		so.Logger = slog.New(slog.NewTextHandler(testLogOut(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	so.Catalog = catalog
	wo.Dialects = hostadapters.NewWSRPC(hostadapters.WSRPCOptions{Catalog: catalog, Logger: so.Logger})
	b := bridgetest.Start(t, so, wo)
	ae := bridgetest.StartHandler(t, b.Web.ForApp("aftereffects"))
	return b, ae + "/ws/"
}

// toolCall sends a JSON-RPC call and returns a function that waits for its
// reply.
func toolCall(tool *bridgetest.Peer, id, method string, params any, meta map[string]any) func() map[string]any {
	msg, reply := bridgetest.Request(id, method, params)
	if meta != nil {
		msg["meta"] = meta
	}
	tool.Send(msg)
	return func() map[string]any { return tool.Expect(20*time.Second, reply) }
}

func rpcError(t *testing.T, r map[string]any) (float64, map[string]any) {
	t.Helper()
	e, ok := r["error"].(map[string]any)
	if !ok {
		t.Fatalf("want an error, got %v", r)
	}
	data, _ := e["data"].(map[string]any)
	return e["code"].(float64), data
}

func itoa(n int) string { return strconv.Itoa(n) }

// testLogOut is where the bridges of these tests log: nowhere, unless
// BRIDGE_TEST_LOGS is set.
func testLogOut() io.Writer {
	if os.Getenv("BRIDGE_TEST_LOGS") != "" {
		return os.Stderr
	}
	return io.Discard
}
