// Package web is the bridge's HTTP face: the websocket endpoint (/ws), POST
// /rpc, the status page (/) and its data (/api/sessions, /api/calls,
// /api/status, /api/events), /healthz and /readyz, each behind the Host,
// Origin and token checks described in docs/protocol.md (Security).
package web

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
	"golang.org/x/sync/semaphore"

	"github.com/dccbridge/dccbridge/hostadapters"
	"github.com/dccbridge/dccbridge/rpc"
	"github.com/dccbridge/dccbridge/session"
)

// Options configure a Server. Router is required; other zero fields take
// the defaults their comments give.
type Options struct {
	// Router serves sessions and calls.
	Router *session.Router
	// Logger receives refusals. Default: slog.Default().
	Logger *slog.Logger
	// Addr is the address the bridge listens on (host:port); its host is
	// admitted by the Host check besides loopback names.
	Addr string
	// Token is the bridge's token; empty means none is configured.
	Token string
	// TokenInForce requires the token of every client (docs/protocol.md,
	// Security). When false, the token only admits null and file:// origins.
	TokenInForce bool
	// AllowOrigins are origin patterns admitted besides the bridge's own;
	// "null" admits null and file:// origins without a token.
	AllowOrigins []string
	// MaxMessage is the largest message read, in bytes. Default 16 MiB.
	MaxMessage int64
	// MaxRPCBytes bounds the POST /rpc bodies held at once, in bytes: a
	// body is held from its read until its reply is sent. A request that
	// would cross it gets 503 with Retry-After. Default 4 × MaxMessage.
	MaxRPCBytes int64
	// Version is shown on the status page. Default: "dev".
	Version string
	// TokenHint says where the bridge's token is to be found, for the
	// refusals that ask for it: the token it was started with, or the
	// default file's. Default: "`bridge token` prints it".
	TokenHint string
	// Shutdown, when set, is what POST /admin/shutdown (`bridge stop`)
	// calls: the bridge's graceful shutdown, started without waiting.
	// Default: none (the endpoint answers 404).
	Shutdown func()
	// Dialects decides each websocket connection's dialect and translates
	// a wsrpc panel's or client's (package hostadapters). Default: none,
	// every connection speaks JSON-RPC 2.0.
	Dialects *hostadapters.WSRPC
}

// Server is the bridge's http.Handler. Safe for concurrent use.
type Server struct {
	opts      Options
	log       *slog.Logger
	mux       *http.ServeMux
	bindHost  string
	allowNull bool
	feed      *feed               // the status page's event log (status.go)
	rpcBytes  *semaphore.Weighted // memory of the POST /rpc bodies held, bounded by MaxRPCBytes
	boot      string              // new at every New: tells the page the bridge restarted
}

// New returns a Server for opts. It starts one goroutine that watches the
// Router for the status page's event log; Close stops it.
func New(opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxMessage <= 0 {
		opts.MaxMessage = 16 << 20
	}
	if opts.MaxRPCBytes <= 0 {
		opts.MaxRPCBytes = 4 * opts.MaxMessage
	}
	s := &Server{opts: opts, log: opts.Logger, mux: http.NewServeMux(), rpcBytes: semaphore.NewWeighted(opts.MaxRPCBytes)}
	s.bindHost, _, _ = net.SplitHostPort(opts.Addr)
	s.allowNull = slices.Contains(opts.AllowOrigins, "null")
	s.boot = newBoot()
	s.feed = newFeed(opts.Router)
	s.mux.HandleFunc("/ws", s.handleWS)
	s.mux.HandleFunc("/ws/", s.handleWS)
	s.mux.HandleFunc("/rpc", s.handleRPC)
	s.mux.HandleFunc("GET /api/sessions", s.guard(s.handleSessions))
	s.mux.HandleFunc("GET /healthz", s.open(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(IdentityHeader, s.version())
		io.WriteString(w, "ok\n")
	}))
	s.mux.HandleFunc("POST /admin/shutdown", s.guard(s.handleShutdown))
	s.mux.HandleFunc("GET /api/token-hint", s.open(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"hint": s.tokenHint()})
	}))
	s.mux.HandleFunc("GET /readyz", s.open(s.handleReady))
	s.mux.HandleFunc("GET /metrics", s.guard(metricsHandler(opts.Router, s.log)))
	s.mux.HandleFunc("/sdk/", s.open(s.handleSDK))
	s.mux.HandleFunc("GET /{$}", s.handlePage) // the status page; its own token check (status.go)
	s.mux.HandleFunc("GET /static/", s.open(s.handleStatic))
	s.mux.HandleFunc("GET /api/status", s.guard(s.handleStatus))
	s.mux.HandleFunc("GET /api/calls", s.guard(s.handleCalls))
	s.mux.HandleFunc("GET /api/events", s.guard(s.handleEvents))
	s.mux.HandleFunc("/", s.open(http.NotFound)) // unknown paths pass the Host and Origin checks first
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// open wraps a handler that needs no token (but still the Host and Origin checks).
func (s *Server) open(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if _, ok := s.check(w, r, true); ok {
			h(w, r)
		}
	}
}

// guard wraps a handler that needs the token when one is needed.
func (s *Server) guard(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		a, ok := s.check(w, r, false)
		if !ok {
			return
		}
		if !a.authorized {
			s.refuse(w, r, http.StatusUnauthorized, "unauthorized: a token is needed (Authorization: Bearer <token> or ?token=; "+s.tokenHint()+")")
			return
		}
		h(w, r)
	}
}

func (s *Server) handleWS(w http.ResponseWriter, r *http.Request) {
	a, ok := s.check(w, r, false)
	if !ok {
		return
	}
	conn, err := acceptWS(w, r, &websocket.AcceptOptions{
		InsecureSkipVerify: true, // the Origin was checked above (docs/protocol.md, Security)
	})
	if err != nil {
		s.log.Debug("websocket upgrade failed", "remote", r.RemoteAddr, "error", err)
		return
	}
	conn.ws.SetReadLimit(s.opts.MaxMessage)
	// The session runs on a goroutine of its own and the handler returns:
	// nothing of the upgrade request (net/http's request and response,
	// the handler's stack) is kept for the session's life.
	peer := session.Peer{Authorized: a.authorized, Remote: r.RemoteAddr}
	var sc session.Conn = conn
	if s.opts.Dialects != nil {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		app := r.URL.Query().Get("app")
		if la, ok := r.Context().Value(listenerAppKey{}).(string); ok && app == "" {
			app = la
		}
		sc = s.opts.Dialects.Wrap(conn, hostadapters.Hint{App: app, RemoteHost: host})
	}
	go s.opts.Router.Serve(sc, peer)
}

// tokenHint says where the token is to be found (Options.TokenHint).
func (s *Server) tokenHint() string {
	if s.opts.TokenHint != "" {
		return s.opts.TokenHint
	}
	return "`bridge token` prints it"
}

// IdentityHeader is set on /healthz with the bridge's version, so that a
// launcher tells a bridge from another program answering on its port.
const IdentityHeader = "Dccbridge-Version"

func (s *Server) version() string {
	if s.opts.Version == "" {
		return "dev"
	}
	return s.opts.Version
}

// handleShutdown starts the bridge's graceful shutdown (`bridge stop`).
// guard has checked the token where one is needed; without a token in
// force, only loopback callers may stop the bridge.
func (s *Server) handleShutdown(w http.ResponseWriter, r *http.Request) {
	if s.opts.Shutdown == nil {
		http.NotFound(w, r)
		return
	}
	if r.Header.Get("Origin") != "" {
		// A browser sends an Origin with every POST: a page (even one the
		// Origin check admits, a null origin with --allow-origin null)
		// must not stop the bridge. bridge stop sends none.
		s.refuse(w, r, http.StatusForbidden, "forbidden: the bridge is not stopped from a web page")
		return
	}
	if t, _ := requestToken(r); s.opts.Token != "" && !s.tokenValid(t) {
		// The token even where it is not in force (the default file's):
		// bridge stop always has it, another local program may not.
		s.refuse(w, r, http.StatusUnauthorized, "unauthorized: stopping the bridge needs its token ("+s.tokenHint()+")")
		return
	}
	if host, _, _ := net.SplitHostPort(r.RemoteAddr); !s.opts.TokenInForce && !net.ParseIP(host).IsLoopback() {
		s.refuse(w, r, http.StatusForbidden, "forbidden: without a token in force, only this machine may stop the bridge")
		return
	}
	s.log.Info("shutdown asked for over HTTP (bridge stop)", "remote", r.RemoteAddr)
	w.WriteHeader(http.StatusAccepted)
	io.WriteString(w, "shutting down\n")
	go s.opts.Shutdown()
}

// listenerAppKey is the request context key of the app a listener serves.
type listenerAppKey struct{}

// ForApp returns the Server as the handler of a listener that serves app:
// its websocket connections are taken for app's (a wsrpc panel that says
// nothing after a reconnect is known by its port), unless their URL names
// another with ?app=.
func (s *Server) ForApp(app string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), listenerAppKey{}, app)))
	})
}

func (s *Server) handleRPC(w http.ResponseWriter, r *http.Request) {
	a, ok := s.check(w, r, false)
	if !ok {
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST a JSON-RPC 2.0 message with Content-Type: application/json", http.StatusMethodNotAllowed)
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		http.Error(w, "Content-Type must be application/json", http.StatusUnsupportedMediaType)
		return
	}
	if !a.authorized {
		s.refuse(w, r, http.StatusUnauthorized, "unauthorized: a token is needed (Authorization: Bearer <token>; "+s.tokenHint()+")")
		return
	}
	const tooBigMsg = "message too big (the limit is --max-message)"
	if r.ContentLength > s.opts.MaxMessage {
		http.Error(w, tooBigMsg, http.StatusRequestEntityTooLarge)
		return
	}
	body, held, err := s.readRPCBody(w, r)
	defer s.rpcBytes.Release(held)
	if err != nil {
		var tooBig *http.MaxBytesError
		switch {
		case errors.Is(err, errRPCBusy):
			w.Header().Set("Retry-After", "1")
			http.Error(w, "busy: too many POST /rpc bytes held at once (the limit is 4 × --max-message); retry shortly", http.StatusServiceUnavailable)
		case errors.As(err, &tooBig):
			http.Error(w, tooBigMsg, http.StatusRequestEntityTooLarge)
		default:
			http.Error(w, "reading the body: "+err.Error(), http.StatusBadRequest)
		}
		return
	}
	if !utf8.Valid(body) {
		// Nothing invalid is forwarded; the parse error's id is null.
		w.Header().Set("Content-Type", "application/json")
		w.Write(rpc.AppendError(nil, nil, rpc.Errorf(rpc.CodeParseError, "Parse error: the body is not valid UTF-8")))
		return
	}
	reply := s.opts.Router.HandleHTTP(r.Context(), body, session.HTTPCaller{Remote: r.RemoteAddr, UserAgent: r.UserAgent()})
	if reply == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(reply)
}

func (s *Server) handleSessions(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, s.opts.Router.Sessions())
}

func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	if !s.opts.Router.Ready() {
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	io.WriteString(w, "ready\n")
}

// rpcBodyTimeout bounds the read of a POST /rpc body: a client that
// announces a body and goes silent lets go of what it holds.
const rpcBodyTimeout = 30 * time.Second

// errRPCBusy: the POST /rpc bodies held at once reached MaxRPCBytes.
var errRPCBusy = errors.New("POST /rpc bodies at their bound")

// readRPCBody reads r's body, at most MaxMessage bytes within
// rpcBodyTimeout, counting the memory it takes against MaxRPCBytes as the
// bytes arrive (a body announced but not sent holds nothing). It returns
// the body and the bytes held, which the caller releases once the reply is
// sent (the params stay in use while the call runs), on error too.
func (s *Server) readRPCBody(w http.ResponseWriter, r *http.Request) (body []byte, held int64, err error) {
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(rpcBodyTimeout))
	// Cleared after: net/http watches the connection while the call runs,
	// to cancel it if the client goes away.
	defer func() { _ = rc.SetReadDeadline(time.Time{}) }()
	src := http.MaxBytesReader(w, r.Body, s.opts.MaxMessage)
	for {
		if len(body) == cap(body) {
			grow := min(max(cap(body), 4<<10), 1<<20)
			if !s.rpcBytes.TryAcquire(int64(grow)) {
				return nil, held, errRPCBusy
			}
			held += int64(grow)
			body = slices.Grow(body, grow)
		}
		n, err := src.Read(body[len(body):cap(body)])
		body = body[:len(body)+n]
		switch {
		case err == io.EOF:
			return body, held, nil
		case err != nil:
			return nil, held, err
		}
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
