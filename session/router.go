package session

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/dccbridge/dccbridge/retry"
	"github.com/dccbridge/dccbridge/rpc"
)

// Router is the bridge's core. It owns the registry of sessions, the table
// of calls in flight, the sessions waiting to be resumed, the stored
// contexts and the event watchers, all guarded by its one mutex, which is
// never held across I/O: frames go to bounded per-session queues that each
// session's writer drains, and log lines made under the lock are written
// after it is released. Its exported methods are safe for concurrent use.
type Router struct {
	opts    Options
	log     *slog.Logger
	prefix  string // random per Router, so forwarded ids are never reused across restarts
	started time.Time
	metrics *Metrics

	mu       sync.Mutex
	seq      uint64
	closing  bool
	registry registry                  // who is connected and what they offer (registry.go)
	calls    callTable                 // calls in flight (calls.go)
	greeting *retry.Waitlist[*Session] // connections not helloed yet, until HelloTimeout
	resuming *retry.Waitlist[*Session] // reconnecting sessions, until ResumeWait (resume.go)
	contexts contextStore              // pushed contexts (context.go)
	labels   labelSet                  // metric label values in use (metrics.go)
	watchers []*watcher                // Watch channels (events.go)
	stats    Stats
	logs     []logLine // made while mu is held; unlock hands them to logOut
	logOut   *logWriter

	wg sync.WaitGroup // sessions being served
}

// New returns a Router with opts (zero fields take their defaults).
func New(opts Options) *Router {
	opts = opts.withDefaults()
	r := &Router{
		opts:     opts,
		log:      opts.Logger,
		prefix:   randomPrefix(),
		started:  time.Now(),
		metrics:  opts.Metrics,
		registry: newRegistry(),
		contexts: newContextStore(opts.ContextRetention, opts.MaxContexts),
		labels:   newLabelSet(opts.MaxLabelValues),
		logOut:   newLogWriter(opts.Logger),
	}
	r.calls = newCallTable(routerLock{r})
	r.greeting = retry.NewWaitlist[*Session](routerLock{r})
	r.resuming = retry.NewWaitlist[*Session](routerLock{r})
	return r
}

// routerLock is r.mu as a sync.Locker whose Unlock also writes the log
// lines made under it; the retry timers take the lock through it.
type routerLock struct{ r *Router }

func (l routerLock) Lock()   { l.r.mu.Lock() }
func (l routerLock) Unlock() { l.r.unlock() }

func randomPrefix() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz234567"
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[b[i]%32]
	}
	return string(b)
}

// logLocked logs once r.mu is released, so no lock is held across the
// logger's I/O; r.mu is held.
func (r *Router) logLocked(level slog.Level, msg string, args ...any) {
	if r.log.Enabled(context.Background(), level) {
		r.logs = append(r.logs, logLine{level, msg, args})
	}
}

// unlock releases r.mu, then queues the log lines made while it was held.
func (r *Router) unlock() {
	logs := r.logs
	r.logs = nil
	r.mu.Unlock()
	r.logOut.add(logs...)
}

// logNow logs without r.mu held, in order with the lines logged under it.
func (r *Router) logNow(level slog.Level, msg string, args ...any) {
	if r.log.Enabled(context.Background(), level) {
		r.logOut.add(logLine{level, msg, args})
	}
}

// next returns a new sequence number and an id with the given kind letter
// made of it; r.mu is held.
func (r *Router) next(kind string) (uint64, string) {
	r.seq++
	var b strings.Builder // one allocation
	b.Grow(len(kind) + len(r.prefix) + 16)
	b.WriteString(kind)
	b.WriteByte('-')
	b.WriteString(r.prefix)
	b.WriteByte('-')
	var digits [16]byte
	b.Write(strconv.AppendUint(digits[:0], r.seq, 36))
	return r.seq, b.String()
}

// Serve runs a session on conn until the connection ends, reading on the
// calling goroutine; run it on a goroutine of its own (web does, so that
// its HTTP handler returns and nothing of the upgrade request is kept). It
// owns conn from now on.
func (r *Router) Serve(conn Conn, p Peer) {
	s := &Session{
		router:      r,
		conn:        conn,
		remote:      p.Remote,
		connectedAt: time.Now(),
		authorized:  p.Authorized,
		assigned:    map[string]*call{},
	}
	s.calls = caller{who: &s.identity, session: s, inflight: map[string]*call{}}
	s.quiet = retry.NewSilence(routerLock{r}, r.opts.BusyAfter,
		func() time.Time { return time.Unix(0, s.lastInbound.Load()) },
		func() { r.becameBusy(s) })
	s.queue = newOutQueue(r.opts.QueueBytes, s.writeFrames)
	s.lastInbound.Store(s.connectedAt.UnixNano())

	r.mu.Lock()
	if r.closing {
		r.unlock()
		_ = conn.Close(CloseGoingAway, "the bridge is shutting down")
		return
	}
	if r.registry.unhelloed >= r.opts.MaxUnhelloed {
		// Make room: the connection that has waited longest without a
		// hello goes, so that silent connections never lock panels out.
		if oldest, ok := r.greeting.First(); ok {
			r.greeting.Remove(oldest)
			r.notGreeted(oldest, CloseTryAgainLater, "closed to make room: too many connections without bridge.hello (max "+strconv.Itoa(r.opts.MaxUnhelloed)+")")
		}
	}
	s.seq, s.id = r.next("s")
	s.identity.meta = []byte(`{"session":` + strconv.Quote(s.id) + `}`)
	r.registry.add(s)
	r.greeting.Add(s, s.seq, r.opts.HelloTimeout, func(s *Session) {
		r.notGreeted(s, ClosePolicyViolation, "no bridge.hello within "+r.opts.HelloTimeout.String())
	})
	r.wg.Add(1)
	r.unlock()
	defer r.wg.Done()

	r.logNow(slog.LevelDebug, "session connected", "session", s.id, "remote", p.Remote)
	err := s.run()
	r.connectionEnded(s)
	code, reason := s.closeStatus()
	if code == 0 {
		_ = conn.CloseNow()
	}
	r.mu.Lock()
	app, instance := s.app, s.instance
	r.unlock()
	r.logNow(slog.LevelInfo, "session ended", "session", s.id, "app", app, "instance", instance, "remote", s.remote,
		"duration", time.Since(s.connectedAt).Round(time.Millisecond), "close_code", int(code), "close_reason", reason, "cause", err)
}

// notGreeted closes s, which has not said hello, with code and reason;
// r.mu is held. What is queued for it (replies to its calls) is written
// first.
func (r *Router) notGreeted(s *Session, code CloseCode, reason string) {
	r.logLocked(slog.LevelInfo, "connection closed before bridge.hello", "session", s.id, "remote", s.remote, "reason", reason)
	s.closeAfterFlush(code, reason)
}

// Ready reports whether the router takes new sessions and calls.
func (r *Router) Ready() bool {
	r.mu.Lock()
	defer r.unlock()
	return !r.closing
}

// Shutdown fails every call in flight with -32006, closes every session
// with 1001 in parallel, waits up to Options.CloseBudget for their close
// handshakes, then drops the rest, and returns when all sessions have ended
// or ctx is done, with their log lines written.
func (r *Router) Shutdown(ctx context.Context) error {
	defer r.logOut.wait()
	r.mu.Lock()
	r.closing = true
	for _, cl := range r.calls.inOrder() {
		r.finish(cl, rpc.ErrShuttingDown.WithData(cl.errorData()))
	}
	var sessions []*Session
	for _, s := range r.registry.all() {
		if s.reconnecting { // no connection to close: it leaves now
			r.leave(s, "the bridge is shutting down")
			continue
		}
		sessions = append(sessions, s)
	}
	r.unlock()

	for _, s := range sessions {
		s.closeAfterFlush(CloseGoingAway, "the bridge is shutting down")
	}
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	budget := time.NewTimer(r.opts.CloseBudget)
	defer budget.Stop()
	select {
	case <-done:
		return nil
	case <-budget.C:
	case <-ctx.Done():
	}
	// Drop the rest: a close handshake under way ends too.
	for _, s := range sessions {
		go s.conn.CloseNow()
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// handleFrame handles one text message from s.
func (r *Router) handleFrame(s *Session, data []byte) {
	items, batch := rpc.Decode(data)
	out := sink(sessionSink{s})
	if batch {
		out = newBatchReplies(out, items)
	}
	r.mu.Lock()
	defer r.unlock()
	if s.gone {
		// Replaced by a new connection of its instance: its connection is
		// closing, and what it still sends (a stale hello would replace the
		// live connection back) is dropped.
		r.logLocked(slog.LevelDebug, "message dropped: the session has left the registry", "session", s.id)
		return
	}
	r.heardFrom(s)
	for _, it := range items {
		r.handleItem(&s.calls, it, out)
	}
}

// HTTPCaller is who sent a POST /rpc request: its address and its
// User-Agent, which callees see in meta.caller and the status page shows.
type HTTPCaller struct {
	Remote    string
	UserAgent string
}

// identity is the caller's identity: app "http", instance its address.
func (h HTTPCaller) identity() *identity {
	meta := map[string]string{"app": "http", "instance": h.Remote}
	if h.UserAgent != "" {
		meta["user_agent"] = truncate(h.UserAgent, 200)
	}
	b, _ := json.Marshal(meta)
	return &identity{app: "http", instance: h.Remote, meta: b}
}

// truncate cuts s to at most n bytes, on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// HandleHTTP answers the JSON-RPC message body of a POST /rpc request. It
// returns the reply, or nil when nothing needs one (only notifications).
// When ctx ends first, the calls still in flight are cancelled at their
// hosts and HandleHTTP returns nil.
func (r *Router) HandleHTTP(ctx context.Context, body []byte, from HTTPCaller) []byte {
	items, batch := rpc.Decode(body)
	replies := make(chanSink, 1)
	out := sink(replies)
	if batch {
		out = newBatchReplies(replies, items)
	}
	c := &caller{who: from.identity(), inflight: map[string]*call{}}
	r.mu.Lock()
	for _, it := range items {
		r.handleItem(c, it, out)
	}
	r.unlock()
	if expectedReplies(items) == 0 {
		return nil
	}
	select {
	case frame := <-replies:
		return frame
	case <-ctx.Done():
		r.mu.Lock()
		r.callerGone(c)
		r.unlock()
		return nil
	}
}

// handleItem handles one decoded message from caller c; r.mu is held.
func (r *Router) handleItem(c *caller, it rpc.Item, out sink) {
	if it.Err != nil {
		out.deliver(rpc.AppendError(nil, it.ID, it.Err))
		return
	}
	m := it.Msg
	s := c.session
	if m.IsResponse() {
		if s != nil {
			r.handleResponse(s, m)
		}
		return
	}
	reply := func(e *rpc.Error) {
		if !m.IsNotification() {
			out.deliver(rpc.AppendError(nil, m.ID, e))
		}
	}
	builtin := isBuiltin(m.Method)
	if s != nil && !s.authorized && !(builtin && m.Method[len("bridge."):] == "hello") {
		r.callRejected(m, rpc.CodeUnauthorized)
		reply(rpc.Errorf(rpc.CodeUnauthorized, "unauthorized: say bridge.hello with the bridge's token first (%s)", r.tokenHint()))
		return
	}
	switch {
	case strings.HasPrefix(m.Method, "$/") && !m.IsNotification():
		reply(rpc.Errorf(rpc.CodeInvalidRequest, "Invalid Request: %s must be sent as a notification (no id)", m.Method))
	case m.Method == "$/cancelRequest":
		r.cancelRequest(c, m)
	case m.Method == "$/progress":
		if s != nil {
			r.progress(s, m)
		}
	case builtin:
		// bridge.* methods decode and encode with encoding/json, whose
		// recursion would grow a session's stack for good.
		onFreshStack(func() { r.builtin(c, m, out) })
	default:
		r.route(c, m, out)
	}
}

// settleUnwritten settles frames the writer of s took from its queue but
// never wrote, after the queue was closed (see Session.holdUnwritten).
func (r *Router) settleUnwritten(s *Session, frames []outFrame) {
	r.mu.Lock()
	defer r.unlock()
	s.holdUnwritten(frames)
}

// tokenHint says where the bridge's token is (Options.TokenHint).
func (r *Router) tokenHint() string {
	if r.opts.TokenHint != "" {
		return r.opts.TokenHint
	}
	return "`bridge token` prints it"
}

// isBuiltin reports whether method is in the bridge namespace (case-folded,
// as every namespace is).
func isBuiltin(method string) bool {
	return len(method) > len("bridge.") && strings.EqualFold(method[:len("bridge.")], "bridge.")
}

// slowReader closes s with 1008 because its queue is full; r.mu is held.
// Its calls not yet written fail with -32003 when the session is settled;
// replies owed to it as a replay caller are held for its return.
func (r *Router) slowReader(s *Session) {
	r.logLocked(slog.LevelWarn, "slow reader closed", "session", s.id, "queue_bytes", r.opts.QueueBytes)
	discarded := s.abort(ClosePolicyViolation, "slow reader: outbound queue full")
	r.slowReaderClosed(len(discarded))
	for _, f := range discarded {
		if f.call != nil {
			f.call.markWithdrawn()
		}
	}
	s.holdUnwritten(discarded)
}
