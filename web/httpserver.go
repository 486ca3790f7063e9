package web

import (
	"log/slog"
	"net/http"
	"time"
)

// The limits of the bridge's HTTP server, for every connection before it
// becomes a websocket (after the upgrade, the session's own limits apply).
const (
	// MaxHeaderBytes bounds a request's headers, upgrades included: ample
	// for real clients (a browser's cookies, a token); more gets 431.
	MaxHeaderBytes = 64 << 10
	// ReadHeaderTimeout is how long a request's headers may take to
	// arrive; then the connection is closed.
	ReadHeaderTimeout = 10 * time.Second
	// IdleTimeout closes a keep-alive connection that sends no new
	// request within it, and one that starts a request and goes silent.
	IdleTimeout = 60 * time.Second
)

// NewHTTPServer returns the http.Server the bridge serves h with: headers
// bounded in size and in time, idle keep-alive connections closed. It sets
// no read or write timeout for a whole request: a POST /rpc waits as long
// as its call may, and websockets leave the server when they are upgraded.
// log, if not nil, receives net/http's own errors at debug level.
func NewHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	srv := &http.Server{
		Handler:           h,
		MaxHeaderBytes:    MaxHeaderBytes,
		ReadHeaderTimeout: ReadHeaderTimeout,
		IdleTimeout:       IdleTimeout,
	}
	if log != nil {
		srv.ErrorLog = slog.NewLogLogger(log.Handler(), slog.LevelDebug)
	}
	return srv
}
