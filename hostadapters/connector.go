package hostadapters

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dccbridge/dccbridge/retry"
	"github.com/dccbridge/dccbridge/rpc"
	"github.com/dccbridge/dccbridge/session"
)

// httpHost is a DCC's command server reached over HTTP, in its dialect
// (SkyHook, Unreal Remote Control). Its methods are called one at a time.
type httpHost interface {
	// kind is the session kind (session.KindSkyHook, …).
	kind() string
	// methods lists what the server offers; an error means it is down.
	methods(ctx context.Context) ([]string, error)
	// call runs method with params (a JSON object). It returns the
	// result, or the error the caller gets; a non-nil err means the server
	// could not be reached or dropped the request: the connection is gone.
	call(ctx context.Context, method string, params json.RawMessage) (json.RawMessage, *rpc.Error, error)
	// probe checks that the server answers.
	probe(ctx context.Context) error
}

// ConnectorOptions configure a Connector.
type ConnectorOptions struct {
	// Router is where the connector's session lives. Required.
	Router *session.Router
	// App is the app the server belongs to, from the catalog. Required.
	App *App
	// Addr is the server's host:port. Required.
	Addr string
	// Logger receives a line when the server comes and goes. Default:
	// slog.Default().
	Logger *slog.Logger
	// MaxResponse bounds a reply's size in bytes. Default 16 MiB.
	MaxResponse int64
	// Backoff paces the attempts to reach a server that is down. Default:
	// 500 ms doubling to 10 s.
	Backoff retry.Backoff
}

// Connector keeps a DCC's HTTP command server connected to the Router as
// a session, so that tools reach it like a panel (maya.export_abc): while
// the server answers, a session of its app (instance "<app>@<addr>")
// offers what the server lists, and calls become HTTP requests, one at a
// time. When the server goes, the session is reconnecting (its calls wait
// or fail as any session's would) and the connector tries again with
// backoff; when it is back, the same instance says hello and resumes.
type Connector struct {
	opts   ConnectorOptions
	host   httpHost
	log    *slog.Logger
	client *http.Client
}

// NewSkyHookConnector returns a connector to the SkyHook server at
// opts.Addr.
func NewSkyHookConnector(opts ConnectorOptions) *Connector {
	c := newConnector(opts)
	c.host = &skyhook{url: "http://" + opts.Addr + "/", client: c.client, limit: c.opts.MaxResponse}
	return c
}

// NewUnrealConnector returns a connector to Unreal's Remote Control API at
// opts.Addr.
func NewUnrealConnector(opts ConnectorOptions) *Connector {
	c := newConnector(opts)
	c.host = &unreal{base: "http://" + opts.Addr, client: c.client, limit: c.opts.MaxResponse}
	return c
}

func newConnector(opts ConnectorOptions) *Connector {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxResponse <= 0 {
		opts.MaxResponse = 16 << 20
	}
	return &Connector{opts: opts, log: opts.Logger, client: newHTTPClient()}
}

// newHTTPClient is the connectors' HTTP client: a short dial timeout, no
// overall timeout (a call's own deadline bounds it), no proxy, and no
// redirect followed: a command server has no reason to send one, and
// following it could make the bridge call something else (another
// machine, or a service on its own).
func newHTTPClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 3 * time.Second}).DialContext,
			MaxIdleConnsPerHost: 1,
			IdleConnTimeout:     30 * time.Second,
		},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			return fmt.Errorf("redirect to %s refused: the bridge follows no redirect from a command server", req.URL.Host)
		},
	}
}

// Instance is the instance name of the connector's session.
func (c *Connector) Instance() string { return c.opts.App.Name + "@" + c.opts.Addr }

// stableSession is how long a session must last for the next connection
// to be tried without backing off further.
const stableSession = 10 * time.Second

// Run keeps the server connected until ctx ends.
func (c *Connector) Run(ctx context.Context) {
	backoff := c.opts.Backoff
	down := false
	for ctx.Err() == nil {
		listCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		methods, err := c.host.methods(listCtx)
		cancel()
		if err != nil {
			if !down {
				c.log.Warn(c.opts.App.Label+" command server not answering; retrying", "app", c.opts.App.Name, "addr", c.opts.Addr, "kind", c.host.kind(), "error", err)
				down = true
			}
			select {
			case <-time.After(backoff.Next()):
			case <-ctx.Done():
			}
			continue
		}
		if down {
			c.log.Info(c.opts.App.Label+" command server back", "app", c.opts.App.Name, "addr", c.opts.Addr)
		}
		down = false
		conn := c.newConn(methods)
		stop := context.AfterFunc(ctx, func() { _ = conn.CloseNow() })
		began := time.Now()
		c.opts.Router.Serve(conn, session.Peer{Authorized: true, Remote: c.opts.Addr})
		stop()
		if ctx.Err() != nil {
			return
		}
		if conn.err() != nil {
			c.log.Warn(c.opts.App.Label+" command server gone", "app", c.opts.App.Name, "addr", c.opts.Addr, "error", conn.err())
			down = true
		}
		if time.Since(began) >= stableSession {
			backoff.Reset() // a session that lasted: the next try may come soon
		}
		select { // a server (or a bridge) that ends every session at once is not hammered
		case <-time.After(backoff.Next()):
		case <-ctx.Done():
		}
	}
}

// newConn returns the session.Conn of one connection to the server:
// hello first, then the replies to the calls its writer takes.
func (c *Connector) newConn(methods []string) *httpConn {
	hello, _ := json.Marshal(map[string]any{
		"app": c.opts.App.Name, "kind": c.host.kind(), "instance": c.Instance(),
		"label":   c.opts.App.Label + " (" + c.host.kind() + " " + c.opts.Addr + ")",
		"version": c.host.kind(), "methods": methods, "replay": false,
	})
	ctx, cancel := context.WithCancel(context.Background())
	hc := &httpConn{
		host:     c.host,
		ctx:      ctx,
		stop:     cancel,
		wake:     make(chan struct{}, 1),
		workWake: make(chan struct{}, 1),
		done:     make(chan struct{}),
	}
	hc.inbox = append(hc.inbox, rpc.AppendRequest(nil, json.RawMessage(helloID), "bridge.hello", hello, nil))
	go hc.serveCalls()
	return hc
}

// defaultCallTimeout bounds a call whose meta carries no timeout (the
// session core always gives one).
const defaultCallTimeout = 10 * time.Minute

// httpConn is one connection to an HTTP command server as a session.Conn.
// Calls wait in a queue for a worker that runs them one at a time, in
// order, each until its deadline (counted from its arrival); their replies
// come back through Read. Write never blocks. A call whose caller gave up
// ($/cancelRequest: cancelled, timed out, gone) is taken out of the queue,
// or abandoned if it runs. When the server goes, the calls still queued
// are answered "not run" before the connection ends.
type httpConn struct {
	host     httpHost
	ctx      context.Context // ends with the connection: a running request is abandoned
	stop     context.CancelFunc
	wake     chan struct{} // a reply is in the inbox
	workWake chan struct{} // a call is in the queue
	done     chan struct{}
	busy     atomic.Bool // a call is running: the server is alive, and a probe would wait behind it

	mu      sync.Mutex
	inbox   [][]byte
	queue   []*pendingHTTPCall
	running *pendingHTTPCall
	ended   bool
	failure error // what ended the connection, nil when closed by the bridge
}

type pendingHTTPCall struct {
	id       json.RawMessage
	method   string
	params   json.RawMessage
	deadline time.Time
	cancel   context.CancelFunc // set while it runs
}

func (h *httpConn) Read(ctx context.Context) ([]byte, error) {
	for {
		h.mu.Lock()
		if len(h.inbox) > 0 {
			m := h.inbox[0]
			h.inbox = h.inbox[1:]
			h.mu.Unlock()
			return m, nil
		}
		ended, failure := h.ended, h.failure
		h.mu.Unlock()
		if ended {
			return nil, fmt.Errorf("read: %w", cmpErr(failure, net.ErrClosed))
		}
		select {
		case <-h.wake:
		case <-h.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Write takes what the session core writes: calls go to the queue (array
// params are refused at once: the servers take keyword arguments); a
// $/cancelRequest takes its call out of the queue or abandons it; other
// notifications and the reply to the connector's hello go nowhere.
func (h *httpConn) Write(ctx context.Context, msg []byte) error {
	items, _ := rpc.Decode(msg)
	for _, it := range items {
		m := it.Msg
		switch {
		case m == nil:
		case m.Method == "$/cancelRequest":
			var p struct {
				ID json.RawMessage `json:"id"`
			}
			if json.Unmarshal(m.Params, &p) == nil {
				h.forget(p.ID)
			}
		case m.IsNotification():
		case m.IsRequest():
			if m.Params != nil && m.Params[0] != '{' {
				h.reply(rpc.AppendError(nil, m.ID, rpc.Errorf(rpc.CodeInvalidParams, "invalid params: %s takes named parameters (an object), not an array", m.Method)))
				continue
			}
			var meta struct {
				TimeoutMS *float64 `json:"timeout_ms"`
			}
			_ = json.Unmarshal(m.Meta, &meta)
			timeout := defaultCallTimeout
			if meta.TimeoutMS != nil {
				timeout = time.Duration(*meta.TimeoutMS * float64(time.Millisecond)) // 0: its time is up already
			}
			call := &pendingHTTPCall{id: bytes.Clone(m.ID), method: m.Method, params: bytes.Clone(m.Params), deadline: time.Now().Add(timeout)}
			h.mu.Lock()
			if h.ended {
				h.mu.Unlock()
				return net.ErrClosed
			}
			h.queue = append(h.queue, call)
			h.mu.Unlock()
			signal(h.workWake)
		}
	}
	return nil
}

// forget takes the call of forwarded id fid out of the queue, or abandons
// it if it runs (the server may finish it; nobody waits for it).
func (h *httpConn) forget(fid json.RawMessage) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, c := range h.queue {
		if bytes.Equal(c.id, fid) {
			h.queue = append(h.queue[:i], h.queue[i+1:]...)
			return
		}
	}
	if h.running != nil && bytes.Equal(h.running.id, fid) && h.running.cancel != nil {
		h.running.cancel()
	}
}

// serveCalls runs the calls one at a time until the connection ends.
func (h *httpConn) serveCalls() {
	for {
		h.mu.Lock()
		if h.ended {
			h.mu.Unlock()
			return
		}
		var call *pendingHTTPCall
		if len(h.queue) > 0 {
			call, h.queue = h.queue[0], h.queue[1:]
		}
		if call == nil {
			h.mu.Unlock()
			select {
			case <-h.workWake:
			case <-h.done:
			}
			continue
		}
		if !time.Now().Before(call.deadline) {
			h.mu.Unlock()
			continue // its caller has been answered -32002 already: it is not run
		}
		ctx, cancel := context.WithDeadline(h.ctx, call.deadline)
		call.cancel = cancel
		h.running = call
		h.mu.Unlock()

		h.busy.Store(true)
		result, rpcErr, err := h.host.call(ctx, call.method, call.params)
		abandoned := ctx.Err() != nil // timed out, cancelled, or the connection ended
		cancel()
		h.busy.Store(false)
		h.mu.Lock()
		h.running = nil
		h.mu.Unlock()
		switch {
		case abandoned:
			// Its caller has its answer (-32002, cancelled, or the
			// connection's end); the server may still be running it.
		case err != nil:
			h.end(err)
			return
		case rpcErr != nil:
			h.reply(rpc.AppendError(nil, call.id, rpcErr))
		default:
			h.reply(rpc.AppendResult(nil, call.id, result, nil))
		}
	}
}

// reply queues a reply for Read.
func (h *httpConn) reply(frame []byte) {
	h.mu.Lock()
	if !h.ended {
		h.inbox = append(h.inbox, frame)
	}
	h.mu.Unlock()
	signal(h.wake)
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Ping probes the server, unless a call is running: the server runs one
// request at a time, so a probe would wait behind it, and a running call
// says it is there (it has a deadline).
func (h *httpConn) Ping(ctx context.Context) error {
	if h.busy.Load() {
		return nil
	}
	if err := h.host.probe(ctx); err != nil {
		if h.busy.Load() {
			return fmt.Errorf("%w (a call started meanwhile: %v)", session.ErrReceiving, err)
		}
		return fmt.Errorf("%w: %v", session.ErrNoPong, err)
	}
	return nil
}

func (h *httpConn) Close(session.CloseCode, string) error { h.end(nil); return nil }

func (h *httpConn) CloseNow() error { h.end(nil); return nil }

// end ends the connection once; err is why, nil when the bridge closed it.
// When the server went (err not nil), the calls still queued are answered
// first: they were never run, so their callers may try again.
func (h *httpConn) end(err error) {
	h.mu.Lock()
	if h.ended {
		h.mu.Unlock()
		return
	}
	if err != nil {
		for _, c := range h.queue {
			e := rpc.Errorf(rpc.CodeCalleeGone, "%s was not run: the command server went away before its turn (%v)", c.method, err)
			e.Data = json.RawMessage(`{"may_have_run":false}`)
			h.inbox = append(h.inbox, rpc.AppendError(nil, c.id, e))
		}
	}
	h.queue = nil
	h.ended, h.failure = true, err
	h.mu.Unlock()
	h.stop()
	close(h.done)
	signal(h.wake)
}

func (h *httpConn) err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.failure
}

func cmpErr(err, def error) error {
	if err != nil {
		return err
	}
	return def
}

// statusData is the data member of an error an HTTP server gave.
func statusData(status int, extra map[string]any) json.RawMessage {
	m := map[string]any{"http_status": status}
	for k, v := range extra {
		m[k] = v
	}
	b, _ := json.Marshal(m)
	return b
}
