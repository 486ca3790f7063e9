package web

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"net/http"
	"strconv"
	"time"
)

// static holds the status page: index.html, app.js, style.css. Vanilla
// JavaScript and CSS, nothing fetched from elsewhere (studio networks are
// often offline).
//
//go:embed static
var static embed.FS

// staticFiles is static without its directory prefix.
var staticFiles, _ = fs.Sub(static, "static")

const (
	// sseKeepAlive is how often an idle /api/events stream gets a comment
	// line, so that proxies keep it and a dead client is noticed.
	sseKeepAlive = 15 * time.Second
	// sseWriteTimeout bounds one write to an /api/events stream; a client
	// that reads nothing for this long is dropped.
	sseWriteTimeout = 10 * time.Second
)

// pageCSP is the status page's Content-Security-Policy: its own script and
// style only, and connections to its own origin (the page shows labels and
// contexts peers chose; it renders them as text, and this is the belt to
// those braces).
const pageCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// handlePage serves the status page at GET /. When a token is needed and
// none (or a wrong one) was given it answers 401 with the same page, which
// holds no data: its script asks for the token once, keeps it in
// sessionStorage and sends it with every request it makes.
func (s *Server) handlePage(w http.ResponseWriter, r *http.Request) {
	fileLike, ok := s.checkHostOrigin(w, r)
	if !ok {
		return
	}
	code := http.StatusOK
	if a, wrong := s.tokenAccess(r, fileLike); wrong || !a.authorized {
		s.log.Debug("status page without a valid token: it will ask for one", "remote", r.RemoteAddr, "wrong", wrong)
		w.Header().Set("WWW-Authenticate", `Bearer realm="dccbridge"`)
		code = http.StatusUnauthorized
	}
	b, err := fs.ReadFile(staticFiles, "index.html")
	if err != nil {
		http.Error(w, "the status page is missing from this build", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(code)
	if r.Method != http.MethodHead {
		w.Write(b)
	}
}

// handleStatic serves the page's script and style under /static/; they
// hold no data and need no token.
func (s *Server) handleStatic(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	http.StripPrefix("/static", http.FileServerFS(staticFiles)).ServeHTTP(w, r)
}

// statusInfo is what GET /api/status says.
type statusInfo struct {
	Version      string       `json:"version"`
	Address      string       `json:"address"`
	Boot         string       `json:"boot"` // new at every start of the bridge
	Started      time.Time    `json:"started"`
	Now          time.Time    `json:"now"`
	UptimeMS     int64        `json:"uptime_ms"`
	Uptime       string       `json:"uptime"`
	Totals       statusTotals `json:"totals"`
	TokenInForce bool         `json:"token_in_force"`
}

// statusTotals are the bridge's counts: sessions now (those that said
// hello), calls in flight now, and calls, failed calls and resumes since
// the bridge started.
type statusTotals struct {
	Sessions int    `json:"sessions"`
	InFlight int    `json:"in_flight"`
	Calls    uint64 `json:"calls"`
	Errors   uint64 `json:"errors"`
	Resumes  uint64 `json:"resumes"`
}

func (s *Server) status() statusInfo {
	rt := s.opts.Router
	st := rt.Stats()
	started, now := st.Started, time.Now()
	version := s.opts.Version
	if version == "" {
		version = "dev"
	}
	return statusInfo{
		Version:  version,
		Address:  s.opts.Addr,
		Boot:     s.boot,
		Started:  started.UTC(),
		Now:      now.UTC(),
		UptimeMS: now.Sub(started).Milliseconds(),
		Uptime:   st.Uptime,
		Totals: statusTotals{
			Sessions: len(rt.Sessions()), // the rows of the sessions table
			InFlight: st.InFlight,
			Calls:    st.Calls,
			Errors:   st.Failed,
			Resumes:  st.Resumes,
		},
		TokenInForce: s.opts.TokenInForce,
	}
}

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, s.status())
}

func (s *Server) handleCalls(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, s.opts.Router.Calls())
}

// handleEvents streams the status page's event log as Server-Sent Events:
// first a "hello" event ({"boot","seq"}: the bridge's start id and the
// number of its last event), then the last events kept (at most 200),
// then each new one as it comes, every event a default ("message") event
// whose data is {"seq","topic","data","at"} and whose id is seq. The
// stream ends when the client goes, falls behind, or the server closes.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	replay, sub, ok := s.feed.subscribe()
	if !ok {
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	defer s.feed.unsubscribe(sub)
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{}) // a ReadTimeout would end the stream too
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx and kin: do not buffer the stream
	w.WriteHeader(http.StatusOK)

	bw := bufio.NewWriter(w)
	var last uint64
	if n := len(replay); n > 0 {
		last = replay[n-1].Seq
	}
	hello, _ := json.Marshal(map[string]any{"boot": s.boot, "seq": last})
	bw.WriteString("retry: 1000\nevent: hello\ndata: ")
	bw.Write(hello)
	bw.WriteString("\n\n")
	for _, ev := range replay {
		writeSSE(bw, ev)
	}
	// send writes what bw holds within sseWriteTimeout; a write deadline
	// per write also lifts any WriteTimeout of the http.Server, which would
	// otherwise end the stream.
	send := func() bool {
		_ = rc.SetWriteDeadline(time.Now().Add(sseWriteTimeout))
		return bw.Flush() == nil && rc.Flush() == nil
	}
	if !send() {
		return
	}
	keepAlive := time.NewTicker(sseKeepAlive)
	defer keepAlive.Stop()
	for {
		select {
		case ev, ok := <-sub.ch:
			if !ok {
				return
			}
			writeSSE(bw, ev)
			for more := true; more; { // send what else is queued in one write
				select {
				case ev, ok := <-sub.ch:
					if !ok {
						send()
						return
					}
					writeSSE(bw, ev)
				default:
					more = false
				}
			}
		case <-keepAlive.C:
			bw.WriteString(": keep-alive\n\n")
		case <-r.Context().Done():
			return
		}
		if !send() {
			return
		}
	}
}

// writeSSE writes ev as one server-sent event (its JSON has no newline:
// json.Marshal compacts the raw data).
func writeSSE(bw *bufio.Writer, ev feedEvent) {
	b, err := json.Marshal(ev)
	if err != nil || bytes.ContainsAny(b, "\r\n") {
		return
	}
	bw.WriteString("id: ")
	bw.WriteString(strconv.FormatUint(ev.Seq, 10))
	bw.WriteString("\ndata: ")
	bw.Write(b)
	bw.WriteString("\n\n")
}

// Close stops the Server's watch of the Router and ends the /api/events
// streams. Call it when the bridge stops, before http.Server.Shutdown
// (which waits for handlers, and a stream would hold it). Safe to call
// twice.
func (s *Server) Close() {
	s.feed.close()
}

// newBoot returns a random id for this start of the bridge.
func newBoot() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
