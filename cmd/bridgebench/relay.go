package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// relay is the floor the bridge is compared with: a two-hop websocket relay
// that forwards bytes and nothing else. The host connects at /host, tools at
// /tool?prefix=<p>. Each tool message goes to the host unchanged; each host
// message goes back unchanged to the tool whose prefix starts its id.
//
// Routing replies without rewriting anything: every tool connection picks
// a distinct id prefix (tool N sends ids "tN-<seq>") and announces it in the
// query string. The host echoes ids verbatim and writes the id member
// first, so the relay finds the route with one bytes.Index for `"id":"` at
// the head of the reply and a scan to the '-' — no JSON decoding, no
// per-call state, no copy beyond the read buffer. A real router does more
// (it must decode the envelope and rewrite ids so that callers cannot
// collide); that extra work is exactly what the benchmark shows.
//
// Each connection has one reader goroutine that writes straight to the
// destination connection (coder/websocket serializes concurrent writes), so
// there is no queue and no goroutine per message. A relay is safe for
// concurrent use by its HTTP handlers.
type relay struct {
	log       *slog.Logger
	readLimit int64

	host      atomic.Pointer[websocket.Conn] // the current host, nil until one connects
	hostOnce  sync.Once
	hostReady chan struct{} // closed when the first host connects

	mu    sync.RWMutex
	tools map[string]*websocket.Conn // by id prefix

	unroutable atomic.Int64 // host messages whose tool was not found
}

// newRelay returns a relay with no peers.
func newRelay(log *slog.Logger, readLimit int64) *relay {
	return &relay{
		log:       log,
		readLimit: readLimit,
		hostReady: make(chan struct{}),
		tools:     make(map[string]*websocket.Conn),
	}
}

// handler returns the relay's routes: /host, /tool and /healthz.
func (rl *relay) handler(ctx context.Context) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /host", func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		rl.serveHost(ctx, c)
	})
	mux.HandleFunc("GET /tool", func(w http.ResponseWriter, r *http.Request) {
		prefix := r.URL.Query().Get("prefix")
		if prefix == "" {
			http.Error(w, "missing ?prefix=", http.StatusBadRequest)
			return
		}
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		rl.serveTool(ctx, c, prefix)
	})
	return mux
}

// serveHost makes c the host and forwards its messages to the tools until
// c fails or ctx ends.
func (rl *relay) serveHost(ctx context.Context, c *websocket.Conn) {
	defer c.CloseNow()
	c.SetReadLimit(rl.readLimit)
	if old := rl.host.Swap(c); old != nil {
		old.Close(websocket.StatusGoingAway, "replaced")
	}
	rl.hostOnce.Do(func() { close(rl.hostReady) })
	defer rl.host.CompareAndSwap(c, nil)

	var buf bytes.Buffer
	for {
		typ, msg, err := readMessage(ctx, c, &buf)
		if err != nil {
			return
		}
		prefix, ok := routePrefix(msg)
		if !ok {
			rl.unroutable.Add(1)
			continue
		}
		rl.mu.RLock()
		tool := rl.tools[string(prefix)] // no allocation for a map index
		rl.mu.RUnlock()
		if tool == nil {
			rl.unroutable.Add(1)
			continue
		}
		tool.Write(ctx, typ, msg) // a failed tool is cleaned up by its own reader
	}
}

// serveTool registers c under prefix and forwards its messages to the
// current host until c fails or ctx ends. It waits for the first host.
func (rl *relay) serveTool(ctx context.Context, c *websocket.Conn, prefix string) {
	defer c.CloseNow()
	c.SetReadLimit(rl.readLimit)
	rl.mu.Lock()
	rl.tools[prefix] = c
	rl.mu.Unlock()
	defer func() {
		rl.mu.Lock()
		if rl.tools[prefix] == c {
			delete(rl.tools, prefix)
		}
		rl.mu.Unlock()
	}()

	select {
	case <-rl.hostReady:
	case <-ctx.Done():
		return
	}
	var buf bytes.Buffer
	for {
		typ, msg, err := readMessage(ctx, c, &buf)
		if err != nil {
			return
		}
		host := rl.host.Load()
		if host == nil {
			rl.unroutable.Add(1)
			continue
		}
		host.Write(ctx, typ, msg) // a failed host is cleaned up by its own reader
	}
}

// idMarker is what routePrefix looks for: the id member with a string value.
const idMarker = `"id":"`

// routePrefix returns the tool prefix of a reply's id: the bytes between
// `"id":"` and the first '-'. It relies on the bench host writing compact
// JSON with the id before the result, so the first match is the envelope's.
func routePrefix(msg []byte) ([]byte, bool) {
	i := bytes.Index(msg, []byte(idMarker))
	if i < 0 {
		return nil, false
	}
	rest := msg[i+len(idMarker):]
	j := bytes.IndexByte(rest[:min(len(rest), 32)], '-')
	if j <= 0 {
		return nil, false
	}
	return rest[:j], true
}

// relayConfig configures the relay subcommand.
type relayConfig struct {
	Addr      string // 127.0.0.1:port
	ReadLimit int64
}

// runRelay serves the relay on cfg.Addr until ctx ends.
func runRelay(ctx context.Context, log *slog.Logger, cfg relayConfig) error {
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("relay: %w", err)
	}
	rl := newRelay(log, cfg.ReadLimit)
	srv := &http.Server{
		Handler:           rl.handler(ctx),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("relay: %w", err)
	case <-ctx.Done():
	}
	// Shutdown does not close hijacked websocket connections; their readers
	// end with ctx, and the process exits right after.
	shutCtx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("relay: shutdown: %w", err)
	}
	if n := rl.unroutable.Load(); n > 0 {
		log.Warn("relay dropped unroutable messages", "count", n)
	}
	return nil
}
