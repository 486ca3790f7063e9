package hostadapters

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
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
// and the inner writes are shared between them under mu and writeMu.
type wsrpcConn struct {
	inner session.Conn
	hub   *WSRPC
	hint  *App // the app the listener or URL names, if it has a wsrpc panel
	host  string

	dialect atomic.Int32

	// Owned by the reading goroutine.
	first    chan readResult // the first read, under way on a goroutine of its own while the dialect is decided
	inbox    [][]byte        // messages Read returns before it reads more
	waited   bool            // the silence has passed once: no more timers
	probes   map[int]*App    // probe calls written, by id
	bySilent bool            // taken for a panel because it was silent on its app's port, and no wsrpc message since

	// Set before the dialect is stored as wsrpc; read-only after.
	app   *App // nil for a client whose calls name no known app
	panel bool

	writeMu sync.Mutex // one inner write at a time: the reading goroutine writes too (probes, the answer to the panel's ping)

	mu       sync.Mutex
	nextID   int                 // the next id of a call to the peer: even, from 2, as wsrpc-aiohttp's server
	calls    map[int]pendingCall // calls written to the peer, by the id it was given; made at the first
	byFID    map[string]int      // their ids, by the forwarded id the session core gave them
	instance string              // the name claimed for a panel, released at close
	closed   bool
}

// pendingCall is a call written to a wsrpc peer, awaiting its answer.
type pendingCall struct {
	id     json.RawMessage // the forwarded id the session core gave it (nil for a probe)
	method string          // as written, for errors
}

type readResult struct {
	msg []byte
	err error
}

// wsrpcMessage is a wsrpc frame; a member that is absent stays nil.
type wsrpcMessage struct {
	ID     json.RawMessage `json:"id"`
	Method *string         `json:"method"`
	Params json.RawMessage `json:"params"`
	Result json.RawMessage `json:"result"`
	Error  json.RawMessage `json:"error"`
}

// isJSONRPC reports whether raw is JSON-RPC 2.0 (has a "jsonrpc" member,
// spelled exactly): the one test of the dialect, everywhere.
func isJSONRPC(raw []byte) bool { return rpc.HasMember(raw, "jsonrpc") }

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
			m, err := c.fromPeer(raw)
			if err != nil {
				return nil, err
			}
			if m != nil {
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

// decide waits for the connection's next message, or (once) for its
// silence, and decides the dialect if it can; what the session core must
// read first goes to the inbox.
func (c *wsrpcConn) decide(ctx context.Context) error {
	if c.first == nil {
		c.first = make(chan readResult, 1)
		go func(first chan<- readResult) {
			m, err := c.inner.Read(ctx)
			first <- readResult{m, err}
		}(c.first)
	}
	var silence <-chan time.Time
	if !c.waited {
		t := time.NewTimer(c.hub.opts.Silence)
		defer t.Stop()
		silence = t.C
	}
	select {
	case r := <-c.first:
		c.first = nil
		if r.err != nil {
			return r.err
		}
		c.message(r.msg)
	case <-silence:
		c.waited = true
		if c.hint != nil {
			c.bySilent = true
			c.becomeWSRPC(c.hint, true, "silent on a connection for "+c.hint.Name)
			return nil
		}
		c.probe(ctx)
	}
	return nil
}

// message decides the dialect from a message that came before it was
// decided, or leaves it undecided (an answer that identifies nothing).
func (c *wsrpcConn) message(raw []byte) {
	var m wsrpcMessage
	if isJSONRPC(raw) || json.Unmarshal(raw, &m) != nil {
		c.endProbes()
		c.dialect.Store(dialectJSONRPC) // the session core answers what is wrong with it
		c.inbox = append(c.inbox, raw)
		return
	}
	if m.Method == nil {
		// A reply: an answer to a probe identifies the app when it has a
		// result (a wsrpc client's error object does not count); any
		// other reply identifies nothing.
		n, err := strconv.Atoi(string(m.ID))
		if app := c.probes[n]; err == nil && app != nil {
			delete(c.probes, n)
			c.takeCall(n)
			if m.Result != nil && m.Error == nil {
				c.endProbes()
				c.becomeWSRPC(app, true, "answering the probe "+app.WSRPC.Prefix+"."+app.WSRPC.Probe)
			}
		}
		return
	}
	c.endProbes()
	// A call. Its prefix names the app; else the connection's. wsrpc.js
	// numbers its calls odd (3, 5, …), wsrpc-aiohttp's Python client even:
	// an odd id is a panel (its start call, or a button clicked while the
	// bridge was away, queued and sent now), an even one a client (AYON's
	// second launch calling set_context).
	app := c.hint
	prefix, route, _ := strings.Cut(*m.Method, ".")
	if a, ok := c.hub.opts.Catalog.App(prefix); ok && a.WSRPC != nil {
		app = a
	}
	n, err := strconv.Atoi(string(m.ID))
	panel := app != nil && (app.WSRPC.isStartRoute(route) || (err == nil && n%2 == 1))
	how := "its first call, " + *m.Method
	c.becomeWSRPC(app, panel, how)
	if out, err := c.fromPeer(raw); err == nil && out != nil {
		c.inbox = append(c.inbox, out)
	}
}

// probe asks a silent connection whose app is not known which app's panel
// it is: it calls each wsrpc app's probe route at once. A panel answers a
// route it lacks with "Route not found" and its own with a value; the
// answers come as messages (see message). Until one identifies it, the
// connection waits undecided, and a connection that never says anything
// is closed by the session core's hello deadline.
func (c *wsrpcConn) probe(ctx context.Context) {
	c.probes = map[int]*App{}
	for _, a := range c.hub.wsrpcApps() {
		id := c.newCall(nil, a.WSRPC.Prefix+"."+a.WSRPC.Probe)
		c.probes[id] = a
		frame := []byte(`{"id":` + strconv.Itoa(id) + `,"method":` + string(rpc.AppendString(nil, a.WSRPC.Prefix+"."+a.WSRPC.Probe)) + `,"params":{}}`)
		if c.writeInner(ctx, frame) != nil {
			return // the connection is going: its read fails next
		}
	}
}

// endProbes forgets the probes still unanswered.
func (c *wsrpcConn) endProbes() {
	for n := range c.probes {
		c.takeCall(n)
	}
	c.probes = nil
}

// becomeWSRPC makes c a wsrpc connection of app (nil: a client of no
// known app), a panel or a client, and queues the bridge.hello the
// session core reads first.
func (c *wsrpcConn) becomeWSRPC(app *App, panel bool, how string) {
	c.app, c.panel = app, panel
	hello := map[string]any{"kind": "tool", "app": wsrpcClientApp, "replay": false, "version": "wsrpc"}
	instance := ""
	switch {
	case panel:
		c.mu.Lock()
		if !c.closed { // a connection closed meanwhile claims no name
			c.instance = c.hub.claimName(app.Name, c.host)
		}
		instance = c.instance
		c.mu.Unlock()
		methods := make([]string, 0, len(app.Methods))
		for _, m := range app.Methods {
			methods = append(methods, app.WSRPC.Prefix+"."+m.Name)
		}
		hello["kind"], hello["app"], hello["instance"] = "host", app.Name, instance
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
	c.hub.log.Info("wsrpc connection", "app", hello["app"], "kind", hello["kind"], "instance", instance, "remote", c.host, "identified_by", how)
}

// errNotWSRPC ends a connection that was taken for a panel because it was
// silent, and then said bridge.hello in JSON-RPC 2.0: a slow JSON-RPC
// client, which connects again and says its hello in time.
var errNotWSRPC = errors.New("a JSON-RPC 2.0 client was taken for a wsrpc panel while it was silent; it must say bridge.hello within half a second on this port")

// fromPeer translates a message of a wsrpc peer into JSON-RPC 2.0, or
// returns nil when there is nothing to pass on (an answer to no call).
func (c *wsrpcConn) fromPeer(raw []byte) ([]byte, error) {
	if isJSONRPC(raw) {
		if c.bySilent {
			_ = c.inner.Close(session.CloseTryAgainLater, "say bridge.hello at once: this port takes a silent connection for a panel")
			return nil, errNotWSRPC
		}
		return raw, nil // the panel passes JSON-RPC 2.0 through
	}
	c.bySilent = false // it speaks wsrpc: a panel indeed
	var m wsrpcMessage
	if json.Unmarshal(raw, &m) != nil {
		return raw, nil // for the session core to refuse
	}
	if m.Method != nil {
		id := m.ID
		if string(id) == "null" {
			id = nil
		}
		if c.panel && id != nil && *m.Method == c.app.WSRPC.Prefix+".ping" {
			// The panel's hello to the server it thinks it has: answered
			// here, as AYON's server does.
			_ = c.writeInner(context.Background(), append(append([]byte(`{"id":`), id...), `,"result":null}`...))
			return nil, nil
		}
		params := m.Params
		if string(params) == "null" {
			params = nil
		}
		return rpc.AppendRequest(nil, id, *m.Method, params, nil), nil
	}
	n, err := strconv.Atoi(string(m.ID))
	if err != nil {
		return nil, nil // an error frame of the panel with id null: nothing waits for it
	}
	pc, ok := c.takeCall(n)
	if !ok || pc.id == nil {
		return nil, nil
	}
	switch {
	case isRouteNotFound(m.Error):
		return rpc.AppendError(nil, pc.id, rpc.Errorf(rpc.CodeMethodNotFound, "method not found: the %s panel has no route %s", c.appLabel(), pc.method)), nil
	case m.Error != nil && string(m.Error) != "null":
		e := rpc.Errorf(rpc.CodeInternalError, "the %s panel's %s failed%s", c.appLabel(), pc.method, errorText(m.Error))
		e.Data = json.RawMessage(`{"wsrpc_error":` + string(m.Error) + `}`)
		return rpc.AppendError(nil, pc.id, e), nil
	}
	return rpc.AppendResult(nil, pc.id, m.Result, nil), nil // no result: undefined, null
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
		case m.Method == "$/cancelRequest":
			c.forgetCancelled(m.Params) // the peer has no cancel; its answer, if it comes, goes nowhere
			continue
		case m.IsNotification():
			continue
		case m.IsRequest():
			id := c.newCall(m.ID, m.Method)
			out = append([]byte(`{"id":`), strconv.Itoa(id)...)
			out = append(out, `,"method":`...)
			out = rpc.AppendString(out, m.Method)
			params := m.Params
			if params == nil {
				params = json.RawMessage("{}") // as wsrpc-aiohttp sends: the panel's routes read their params
			}
			out = append(append(out, `,"params":`...), params...)
			out = append(out, '}')
		case string(m.ID) == helloID:
			if m.Error != nil {
				c.hub.log.Warn("wsrpc connection refused", "remote", c.host, "instance", c.instance, "error", string(m.Error))
			}
			continue
		default:
			out = c.reply(m)
		}
		if err := c.writeInner(ctx, out); err != nil {
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

// writeInner writes one frame to the peer: the session's writer and the
// reading goroutine (probes, the answer to the panel's ping) take turns.
func (c *wsrpcConn) writeInner(ctx context.Context, frame []byte) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	return c.inner.Write(ctx, frame)
}

// newCall records a call to the peer and returns the id it goes with; id
// is the forwarded id (nil for a probe), copied so that the frame it came
// in is not kept.
func (c *wsrpcConn) newCall(id json.RawMessage, method string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.nextID
	c.nextID += 2
	if c.calls == nil {
		c.calls, c.byFID = map[int]pendingCall{}, map[string]int{}
	}
	c.calls[n] = pendingCall{id: bytes.Clone(id), method: method}
	if id != nil {
		c.byFID[string(id)] = n
	}
	return n
}

// takeCall removes and returns the call the peer's id n answers.
func (c *wsrpcConn) takeCall(n int) (pendingCall, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	pc, ok := c.calls[n]
	delete(c.calls, n)
	if ok && pc.id != nil {
		delete(c.byFID, string(pc.id))
	}
	return pc, ok
}

// forgetCancelled forgets the call a $/cancelRequest names (its caller
// gave up, or its timeout ran out), so that calls a hung panel never
// answers do not pile up.
func (c *wsrpcConn) forgetCancelled(params json.RawMessage) {
	var p struct {
		ID json.RawMessage `json:"id"`
	}
	if json.Unmarshal(params, &p) != nil {
		return
	}
	c.mu.Lock()
	n, ok := c.byFID[string(p.ID)]
	c.mu.Unlock()
	if ok {
		c.takeCall(n)
	}
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
