package hostadapters

import (
	"context"
	"encoding/json"
	"errors"
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

// newHTTPClient is the connectors' HTTP client: a short dial timeout (the
// servers are local), no overall timeout (a call's own deadline bounds
// it), and no redirect followed anywhere but loopback.
func newHTTPClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 3 * time.Second}).DialContext,
			MaxIdleConnsPerHost: 1,
			IdleConnTimeout:     30 * time.Second,
		},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if ip := net.ParseIP(req.URL.Hostname()); (ip == nil || !ip.IsLoopback()) && req.URL.Hostname() != "localhost" {
				return fmt.Errorf("redirect to %s refused: the bridge follows redirects on loopback only", req.URL.Host)
			}
			if len(via) >= 3 {
				return errors.New("too many redirects")
			}
			return nil
		},
	}
}

// Instance is the instance name of the connector's session.
func (c *Connector) Instance() string { return c.opts.App.Name + "@" + c.opts.Addr }

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
		backoff.Reset()
		if down {
			c.log.Info(c.opts.App.Label+" command server back", "app", c.opts.App.Name, "addr", c.opts.Addr)
		}
		down = false
		conn := c.newConn(methods)
		stop := context.AfterFunc(ctx, func() { _ = conn.CloseNow() })
		c.opts.Router.Serve(conn, session.Peer{Authorized: true, Remote: c.opts.Addr})
		stop()
		if conn.err() != nil && ctx.Err() == nil {
			c.log.Warn(c.opts.App.Label+" command server gone", "app", c.opts.App.Name, "addr", c.opts.Addr, "error", conn.err())
			down = true
		}
		select { // a server that ends every session at once is not hammered
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
	hc := &httpConn{
		host:  c.host,
		inbox: make(chan []byte, 64),
		work:  make(chan pendingHTTPCall, 64),
		done:  make(chan struct{}),
	}
	hc.inbox <- rpc.AppendRequest(nil, json.RawMessage(helloID), "bridge.hello", hello, nil)
	go hc.serveCalls()
	return hc
}

// httpConn is one connection to an HTTP command server as a session.Conn.
// Calls go to a worker that runs them one at a time, in order; their
// replies come back through Read.
type httpConn struct {
	host  httpHost
	inbox chan []byte
	work  chan pendingHTTPCall
	busy  atomic.Bool // a call is running: the server is alive, and a probe would wait behind it

	once    sync.Once
	done    chan struct{}
	mu      sync.Mutex
	failure error // what ended the connection, nil when closed by the bridge
}

type pendingHTTPCall struct {
	id      json.RawMessage
	method  string
	params  json.RawMessage
	timeout time.Duration
}

func (h *httpConn) Read(ctx context.Context) ([]byte, error) {
	select {
	case m := <-h.inbox:
		return m, nil
	default:
	}
	select {
	case m := <-h.inbox:
		return m, nil
	case <-h.done:
		return nil, fmt.Errorf("read: %w", cmpErr(h.err(), net.ErrClosed))
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Write takes what the session core writes: calls go to the worker (array
// params are refused at once: the servers take keyword arguments);
// notifications ($/cancelRequest: a running function cannot be stopped)
// and the reply to the connector's hello go nowhere.
func (h *httpConn) Write(ctx context.Context, msg []byte) error {
	items, _ := rpc.Decode(msg)
	for _, it := range items {
		m := it.Msg
		switch {
		case m == nil || m.IsNotification():
		case m.IsRequest():
			if m.Params != nil && m.Params[0] != '{' {
				h.reply(rpc.AppendError(nil, m.ID, rpc.Errorf(rpc.CodeInvalidParams, "invalid params: %s takes named parameters (an object), not an array", m.Method)))
				continue
			}
			var meta struct {
				TimeoutMS float64 `json:"timeout_ms"`
			}
			_ = json.Unmarshal(m.Meta, &meta)
			call := pendingHTTPCall{id: m.ID, method: m.Method, params: m.Params, timeout: time.Duration(meta.TimeoutMS * float64(time.Millisecond))}
			select {
			case h.work <- call:
			case <-h.done:
				return net.ErrClosed
			}
		}
	}
	return nil
}

// serveCalls runs the calls one at a time until the connection ends.
func (h *httpConn) serveCalls() {
	for {
		select {
		case <-h.done:
			return
		case call := <-h.work:
			h.busy.Store(true)
			ctx, cancel := context.Background(), context.CancelFunc(func() {})
			if call.timeout > 0 {
				ctx, cancel = context.WithTimeout(ctx, call.timeout)
			}
			result, rpcErr, err := h.host.call(ctx, call.method, call.params)
			timedOut := ctx.Err() != nil
			cancel()
			h.busy.Store(false)
			switch {
			case timedOut:
				// The bridge has answered the caller -32002 already; the
				// server may still be running it.
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
}

// reply queues a reply for Read.
func (h *httpConn) reply(frame []byte) {
	select {
	case h.inbox <- frame:
	case <-h.done:
	}
}

// Ping probes the server, unless a call is running: the server runs one
// request at a time, so a probe would wait behind it, and a running call
// says it is there.
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
func (h *httpConn) end(err error) {
	h.once.Do(func() {
		h.mu.Lock()
		h.failure = err
		h.mu.Unlock()
		close(h.done)
	})
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
