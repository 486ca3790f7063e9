package hostadapters

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dccbridge/dccbridge/rpc"
	"github.com/dccbridge/dccbridge/session"
)

// A connection's dialect, decided by its first message or its silence.
const (
	dialectUnknown int32 = iota
	dialectJSONRPC
	dialectWSRPC
)

// helloID is the id of the bridge.hello the adapter says for a wsrpc peer;
// its reply is not passed on.
const helloID = `"wsrpc-hello"`

// wsrpcClientApp is the app of a wsrpc connection that is not a panel (a
// Python WSRPCClient, like AYON's second launch calling set_context).
const wsrpcClientApp = "wsrpc"

// wsrpcConn is one connection as the session core sees it (see WSRPC.Wrap).
// Read is called from one goroutine, Write from another; the calls table
// is shared between them under mu.
type wsrpcConn struct {
	inner session.Conn
	hub   *WSRPC
	hint  *App // the app the listener or URL names, if it has a wsrpc panel
	host  string

	dialect atomic.Int32

	// Owned by the reading goroutine.
	first chan readResult // the first read, under way on a goroutine of its own while the dialect is decided
	inbox [][]byte        // messages Read returns before it reads more

	// Set before the dialect is stored as wsrpc; read-only after.
	app      *App // nil for a client whose calls name no known app
	panel    bool
	instance string // the name claimed for a panel, released at close

	mu     sync.Mutex
	nextID int                 // the next id of a call to the peer: even, from 2, as wsrpc-aiohttp's server
	calls  map[int]pendingCall // calls written to the peer, by the id it was given; made at the first
	closed bool
}

// pendingCall is a call written to a wsrpc peer, awaiting its answer.
type pendingCall struct {
	id     json.RawMessage // the forwarded id the session core gave it
	method string          // as written, for errors
}

type readResult struct {
	msg []byte
	err error
}

// wsrpcMessage is a wsrpc frame; a member that is absent stays nil.
type wsrpcMessage struct {
	JSONRPC json.RawMessage `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Method  *string         `json:"method"`
	Params  json.RawMessage `json:"params"`
	Result  json.RawMessage `json:"result"`
	Error   json.RawMessage `json:"error"`
}

func (c *wsrpcConn) Read(ctx context.Context) ([]byte, error) {
	for {
		if len(c.inbox) > 0 {
			m := c.inbox[0]
			c.inbox = c.inbox[1:]
			if len(c.inbox) == 0 {
				c.inbox = nil // keep nothing of what the session now owns
			}
			return m, nil
		}
		switch c.dialect.Load() {
		case dialectJSONRPC:
			return c.readInner(ctx)
		case dialectWSRPC:
			raw, err := c.readInner(ctx)
			if err != nil {
				return nil, err
			}
			if m := c.fromPeer(raw); m != nil {
				return m, nil
			}
		default:
			if err := c.decide(ctx); err != nil {
				return nil, err
			}
		}
	}
}

// readInner returns the next message of the inner connection, taking the
// first read's result if it is still to be taken.
func (c *wsrpcConn) readInner(ctx context.Context) ([]byte, error) {
	if c.first != nil {
		r := <-c.first
		c.first = nil
		return r.msg, r.err
	}
	return c.inner.Read(ctx)
}

// decide reads the first message, or waits for the silence, and decides
// the dialect; what the session core must read first goes to the inbox.
func (c *wsrpcConn) decide(ctx context.Context) error {
	if c.first == nil {
		c.first = make(chan readResult, 1)
		go func(first chan<- readResult) {
			m, err := c.inner.Read(ctx)
			first <- readResult{m, err}
		}(c.first)
	}
	silence := time.NewTimer(c.hub.opts.Silence)
	defer silence.Stop()
	select {
	case r := <-c.first:
		c.first = nil
		if r.err != nil {
			return r.err
		}
		c.firstMessage(r.msg)
	case <-silence.C:
		if c.hint != nil {
			c.becomeWSRPC(c.hint, true, "silent on a connection for "+c.hint.Name)
			return nil
		}
		c.probe(ctx)
	}
	return nil
}

// firstMessage decides the dialect from the connection's first message.
// A JSON-RPC 2.0 one is told without decoding it, so that the session's
// goroutine, which keeps its stack for the connection's life, never runs
// encoding/json for a JSON-RPC client.
func (c *wsrpcConn) firstMessage(raw []byte) {
	var m wsrpcMessage
	if rpc.HasMember(raw, "jsonrpc") || json.Unmarshal(raw, &m) != nil {
		c.dialect.Store(dialectJSONRPC) // the session core answers what is wrong with it
		c.inbox = append(c.inbox, raw)
		return
	}
	app, panel := c.hint, c.hint != nil
	if m.Method != nil {
		prefix, route, _ := strings.Cut(*m.Method, ".")
		if a, ok := c.hub.opts.Catalog.App(prefix); ok && a.WSRPC != nil && app == nil {
			app = a
		}
		panel = app != nil && app.WSRPC.isStartRoute(route)
	}
	how := "its first message"
	if c.hint != nil {
		how = "a connection for " + c.hint.Name
	}
	c.becomeWSRPC(app, panel, how)
	if out := c.fromPeer(raw); out != nil {
		c.inbox = append(c.inbox, out)
	}
}

// probe asks a silent connection whose app is not known which app's panel
// it is, calling each wsrpc app's probe route until one is answered: a
// panel answers a route it lacks with "Route not found". A connection
// that answers none, or sends JSON-RPC 2.0, is left to the session core.
func (c *wsrpcConn) probe(ctx context.Context) {
	for _, a := range c.hub.wsrpcApps() {
		id := c.newCall(nil, "")
		frame := []byte(`{"id":` + strconv.Itoa(id) + `,"method":` + string(rpc.AppendString(nil, a.WSRPC.Prefix+"."+a.WSRPC.Probe)) + `}`)
		if c.inner.Write(ctx, frame) != nil {
			return
		}
		timeout := time.NewTimer(c.hub.opts.ProbeTimeout)
		select {
		case r := <-c.first:
			timeout.Stop()
			c.first = nil
			if r.err != nil {
				c.dialect.Store(dialectJSONRPC)
				c.first = make(chan readResult, 1)
				c.first <- r
				return
			}
			var m wsrpcMessage
			switch {
			case json.Unmarshal(r.msg, &m) != nil || m.JSONRPC != nil || m.Method != nil:
				c.firstMessage(r.msg)
				return
			case string(m.ID) == strconv.Itoa(id) && !isRouteNotFound(m.Error):
				c.takeCall(id)
				c.becomeWSRPC(a, true, "answering the probe "+a.WSRPC.Prefix+"."+a.WSRPC.Probe)
				return
			}
			c.takeCall(id)
			c.first = make(chan readResult, 1)
			go func(first chan<- readResult) {
				m, err := c.inner.Read(ctx)
				first <- readResult{m, err}
			}(c.first)
		case <-timeout.C:
			c.takeCall(id)
			c.dialect.Store(dialectJSONRPC)
			c.hub.log.Info("connection not identified: silent, and no wsrpc probe answered", "remote", c.host)
			return
		}
	}
	c.dialect.Store(dialectJSONRPC)
	c.hub.log.Info("connection not identified: silent, and no wsrpc probe answered", "remote", c.host)
}

// becomeWSRPC makes c a wsrpc connection of app (nil: a client of no
// known app), a panel or a client, and queues the bridge.hello the
// session core reads first.
func (c *wsrpcConn) becomeWSRPC(app *App, panel bool, how string) {
	c.app, c.panel = app, panel
	hello := map[string]any{"kind": "tool", "app": wsrpcClientApp, "replay": false, "version": "wsrpc"}
	switch {
	case panel:
		c.instance = c.hub.claimName(app.Name, c.host)
		methods := make([]string, 0, len(app.Methods))
		for _, m := range app.Methods {
			methods = append(methods, app.WSRPC.Prefix+"."+m.Name)
		}
		hello["kind"], hello["app"], hello["instance"] = "host", app.Name, c.instance
		hello["label"] = app.Label + " panel (wsrpc)"
		hello["methods"] = methods
	case app != nil:
		hello["label"] = "wsrpc client of " + app.Label
	default:
		hello["label"] = "wsrpc client"
	}
	params, _ := json.Marshal(hello)
	c.inbox = append(c.inbox, rpc.AppendRequest(nil, json.RawMessage(helloID), "bridge.hello", params, nil))
	c.dialect.Store(dialectWSRPC)
	c.hub.log.Info("wsrpc connection", "app", hello["app"], "kind", hello["kind"], "instance", c.instance, "remote", c.host, "identified_by", how)
}

// fromPeer translates a message of a wsrpc peer into JSON-RPC 2.0, or
// returns nil when there is nothing to pass on (an answer to no call).
func (c *wsrpcConn) fromPeer(raw []byte) []byte {
	var m wsrpcMessage
	if json.Unmarshal(raw, &m) != nil || m.JSONRPC != nil {
		return raw // JSON-RPC 2.0 (the panel passes it through), or for the session core to refuse
	}
	if m.Method != nil {
		id := m.ID
		if string(id) == "null" {
			id = nil
		}
		if c.panel && id != nil && *m.Method == c.app.WSRPC.Prefix+".ping" {
			// The panel's hello to the server it thinks it has: answered
			// here, as AYON's server does.
			c.writeInner(append(append([]byte(`{"id":`), id...), `,"result":null}`...))
			return nil
		}
		return rpc.AppendRequest(nil, id, *m.Method, m.Params, nil)
	}
	n, err := strconv.Atoi(string(m.ID))
	if err != nil {
		return nil // an error frame of the panel with id null: nothing waits for it
	}
	pc, ok := c.takeCall(n)
	if !ok {
		return nil
	}
	switch {
	case isRouteNotFound(m.Error):
		return rpc.AppendError(nil, pc.id, rpc.Errorf(rpc.CodeMethodNotFound, "method not found: the %s panel has no route %s", c.appLabel(), pc.method))
	case m.Error != nil && string(m.Error) != "null":
		e := rpc.Errorf(rpc.CodeInternalError, "the %s panel's %s failed%s", c.appLabel(), pc.method, errorText(m.Error))
		e.Data = json.RawMessage(`{"wsrpc_error":` + string(m.Error) + `}`)
		return rpc.AppendError(nil, pc.id, e)
	}
	return rpc.AppendResult(nil, pc.id, m.Result, nil) // no result: undefined, null
}

// Write translates what the session core writes for a wsrpc peer: calls
// get the peer's ids, replies its shapes; notifications ($/cancelRequest,
// bridge.event, $/progress) are never sent, since a wsrpc peer answers
// each with an error; the reply to the adapter's own hello is not passed
// on.
func (c *wsrpcConn) Write(ctx context.Context, msg []byte) error {
	if c.dialect.Load() != dialectWSRPC {
		return c.inner.Write(ctx, msg)
	}
	items, _ := rpc.Decode(msg)
	for _, it := range items {
		m := it.Msg
		var out []byte
		switch {
		case m == nil:
			continue
		case m.IsNotification():
			continue
		case m.IsRequest():
			id := c.newCall(m.ID, m.Method)
			out = append([]byte(`{"id":`), strconv.Itoa(id)...)
			out = append(out, `,"method":`...)
			out = rpc.AppendString(out, m.Method)
			if m.Params != nil {
				out = append(append(out, `,"params":`...), m.Params...)
			}
			out = append(out, '}')
		case string(m.ID) == helloID:
			if m.Error != nil {
				c.hub.log.Warn("wsrpc connection refused", "remote", c.host, "instance", c.instance, "error", string(m.Error))
			}
			continue
		default:
			out = c.reply(m)
		}
		if err := c.inner.Write(ctx, out); err != nil {
			return err
		}
	}
	return nil
}

// reply returns the wsrpc form of a reply to the peer's call. A success
// always carries "result" (the panel rejects one without it); an error
// never does (the panel would take it for a success). A panel gets the
// error as text, which it shows in its alert; a Python client gets
// wsrpc-aiohttp's {"type","message"} object, without which it never
// returns.
func (c *wsrpcConn) reply(m *rpc.Message) []byte {
	out := []byte(`{"id":`)
	out = append(out, m.ID...)
	if m.Error == nil {
		out = append(append(out, `,"result":`...), m.Result...)
		return append(out, '}')
	}
	var e rpc.Error
	_ = json.Unmarshal(m.Error, &e)
	text := e.Message + " (" + strconv.FormatInt(e.Code, 10) + ")"
	out = append(out, `,"error":`...)
	if c.panel {
		out = rpc.AppendString(out, text)
	} else {
		out = append(out, `{"type":"BridgeError","message":`...)
		out = rpc.AppendString(out, text)
		out = append(append(out, `,"code":`...), strconv.FormatInt(e.Code, 10)...)
		if e.Data != nil {
			out = append(append(out, `,"data":`...), e.Data...)
		}
		out = append(out, '}')
	}
	return append(out, '}')
}

// writeInner writes a frame of the adapter's own (an answer to the
// panel's ping) from the reading goroutine.
func (c *wsrpcConn) writeInner(frame []byte) {
	_ = c.inner.Write(context.Background(), frame)
}

// newCall records a call to the peer and returns the id it goes with.
func (c *wsrpcConn) newCall(id json.RawMessage, method string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.nextID
	c.nextID += 2
	if c.calls == nil {
		c.calls = map[int]pendingCall{}
	}
	c.calls[n] = pendingCall{id: id, method: method}
	return n
}

// takeCall removes and returns the call the peer's id n answers.
func (c *wsrpcConn) takeCall(n int) (pendingCall, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	pc, ok := c.calls[n]
	delete(c.calls, n)
	return pc, ok
}

func (c *wsrpcConn) appLabel() string {
	if c.app != nil {
		return c.app.Label
	}
	return "wsrpc"
}

func (c *wsrpcConn) Ping(ctx context.Context) error { return c.inner.Ping(ctx) }

func (c *wsrpcConn) Close(code session.CloseCode, reason string) error {
	defer c.release()
	return c.inner.Close(code, reason)
}

func (c *wsrpcConn) CloseNow() error {
	defer c.release()
	return c.inner.CloseNow()
}

// release frees the panel's instance name for the panel's next connection.
func (c *wsrpcConn) release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed && c.instance != "" {
		c.hub.releaseName(c.instance)
	}
	c.closed = true
}

// isRouteNotFound reports whether a wsrpc error member is the panel's
// answer to a route it lacks.
func isRouteNotFound(errMember json.RawMessage) bool {
	return bytes.Equal(bytes.TrimSpace(errMember), []byte(`"Route not found"`))
}

// errorText returns ": <text>" for a wsrpc error member that says
// something (a string, or an object's "message"), else "".
func errorText(errMember json.RawMessage) string {
	var s string
	if json.Unmarshal(errMember, &s) == nil && s != "" {
		return ": " + s
	}
	var o struct{ Type, Message string }
	if json.Unmarshal(errMember, &o) == nil && (o.Message != "" || o.Type != "") {
		return ": " + strings.TrimPrefix(o.Type+": "+o.Message, ": ")
	}
	return " (the panel gives no reason: a script error in its host)"
}

// isStartRoute reports whether route is one the panel calls when it starts.
func (p *WSRPCPanel) isStartRoute(route string) bool {
	for _, r := range p.StartRoutes {
		if r == route {
			return true
		}
	}
	return false
}
