// Package session holds the bridge's live state: one Session per websocket
// connection, the registry of who is connected and what they offer, and the
// router of calls between them (pending calls, forwarded ids, targeting,
// replies, cancel, progress, events and context).
//
// All of it is owned by a Router and guarded by its one mutex, which is
// never held across I/O: frames go to bounded per-session queues that each
// session's writer drains.
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

	"github.com/coder/websocket"

	"github.com/dccbridge/dccbridge/retry"
	"github.com/dccbridge/dccbridge/rpc"
)

// Router is the bridge's core: the registry of sessions and the calls in
// flight between them. Its methods are safe for concurrent use.
type Router struct {
	opts    Options
	log     *slog.Logger
	clock   retry.Clock
	prefix  string // random per Router, so forwarded ids are never reused across restarts
	started time.Time
	metrics *Metrics

	mu       sync.Mutex
	seq      uint64
	closing  bool
	sessions map[string]*Session    // by session id
	byKey    map[string]*Session    // by app + "\x00" + instance, after hello
	offers   map[string][]*Session  // full method name → sessions offering it
	calls    map[string]*call       // by forwarded id
	waiting  *retry.Waitlist[*call] // calls waiting for a session that offers their method
	contexts map[string]json.RawMessage
	stats    Stats
	logs     []logLine // written by unlock, after r.mu is released
	watchers []*watcher

	wg sync.WaitGroup // sessions being served
}

// New returns a Router with opts (zero fields take their defaults).
func New(opts Options) *Router {
	opts = opts.withDefaults()
	r := &Router{
		opts:     opts,
		log:      opts.Logger,
		clock:    opts.Clock,
		prefix:   randomPrefix(),
		started:  opts.Clock.Now(),
		metrics:  opts.Metrics,
		sessions: map[string]*Session{},
		byKey:    map[string]*Session{},
		offers:   map[string][]*Session{},
		calls:    map[string]*call{},
		contexts: map[string]json.RawMessage{},
	}
	r.waiting = retry.NewWaitlist[*call](opts.Clock, routerLock{r})
	return r
}

// routerLock is r.mu as a sync.Locker whose Unlock also writes the log
// lines made under it.
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

// logLine is a log record made while r.mu is held.
type logLine struct {
	level slog.Level
	msg   string
	args  []any
}

// logLocked logs once r.mu is released, so no lock is held across the
// logger's I/O; r.mu is held.
func (r *Router) logLocked(level slog.Level, msg string, args ...any) {
	if r.log.Enabled(context.Background(), level) {
		r.logs = append(r.logs, logLine{level, msg, args})
	}
}

// unlock releases r.mu, then writes the log lines made while it was held.
func (r *Router) unlock() {
	logs := r.logs
	r.logs = nil
	r.mu.Unlock()
	for _, l := range logs {
		r.log.Log(context.Background(), l.level, l.msg, l.args...)
	}
}

// nextID returns a new id with the given kind letter; r.mu must be held.
func (r *Router) nextID(kind string) string {
	r.seq++
	return kind + "-" + r.prefix + "-" + strconv.FormatUint(r.seq, 36)
}

// Serve runs a session on an accepted websocket connection until it ends.
// It owns conn from now on.
func (r *Router) Serve(conn *websocket.Conn, p Peer) {
	s := &Session{
		router:      r,
		conn:        conn,
		remote:      p.Remote,
		connectedAt: r.clock.Now(),
		queue:       newOutQueue(r.opts.QueueLimit),
		authorized:  p.Authorized,
		assigned:    map[string]*call{},
	}
	s.caller.session = s
	s.caller.inflight = map[string]*call{}
	s.lastInbound.Store(s.connectedAt.UnixNano())
	ctx, drop := context.WithCancel(context.Background())
	defer drop()
	s.drop = drop

	r.mu.Lock()
	switch {
	case r.closing:
		r.unlock()
		_ = conn.Close(websocket.StatusGoingAway, "the bridge is shutting down")
		return
	case r.connected() >= r.opts.MaxSessions:
		r.unlock()
		r.log.Warn("session refused: too many sessions", "remote", p.Remote, "max_sessions", r.opts.MaxSessions)
		_ = conn.Close(websocket.StatusTryAgainLater, "too many sessions (max "+strconv.Itoa(r.opts.MaxSessions)+")")
		return
	}
	s.id = r.nextID("s")
	s.caller.label = `{"session":` + strconv.Quote(s.id) + `}`
	r.sessions[s.id] = s
	r.wg.Add(1)
	r.unlock()
	defer r.wg.Done()

	r.log.Debug("session connected", "session", s.id, "remote", p.Remote)
	err := s.run(ctx)
	r.connectionEnded(s)
	code, reason := s.closeStatus()
	if code == 0 {
		_ = conn.CloseNow()
	}
	r.mu.Lock()
	app, instance := s.caller.app, s.caller.instance
	r.unlock()
	r.log.Info("session ended", "session", s.id, "app", app, "instance", instance, "remote", s.remote,
		"duration", r.clock.Now().Sub(s.connectedAt).Round(time.Millisecond), "close_code", int(code), "close_reason", reason, "cause", err)
}

// connected counts the sessions with a live connection: reconnecting ones
// wait for theirs and do not count against MaxSessions; r.mu is held.
func (r *Router) connected() int {
	n := 0
	for _, s := range r.sessions {
		if !s.reconnecting {
			n++
		}
	}
	return n
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
// or ctx is done.
func (r *Router) Shutdown(ctx context.Context) error {
	r.mu.Lock()
	r.closing = true
	for _, c := range r.calls {
		r.finish(c, rpc.ErrShuttingDown.WithData(c.errorData()))
	}
	sessions := make([]*Session, 0, len(r.sessions))
	for _, s := range r.sessions {
		sessions = append(sessions, s)
	}
	r.unlock()

	for _, s := range sessions {
		s.closeAfterFlush(websocket.StatusGoingAway, "the bridge is shutting down")
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
	// Drop the rest. Not conn.CloseNow: while a close handshake is under
	// way it waits for it (up to coder/websocket's 5 s). Ending a session's
	// context closes its connection at once (coder/websocket closes a
	// connection whose read or write context ends).
	for _, s := range sessions {
		s.drop()
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
		b := &batchReplies{out: out}
		for _, it := range items {
			if it.Err != nil || (it.Msg.IsRequest() && !it.Msg.IsNotification()) {
				b.expected++
			}
		}
		out = b
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
		r.handleItem(&s.caller, it, out)
	}
}

// HandleHTTP answers the JSON-RPC message body of a POST /rpc request. It
// returns the reply, or nil when nothing needs one (only notifications).
// When ctx ends first, the calls still in flight are cancelled at their
// hosts and HandleHTTP returns nil.
func (r *Router) HandleHTTP(ctx context.Context, body []byte, remote string) []byte {
	items, batch := rpc.Decode(body)
	replies := make(chanSink, 1)
	out := sink(replies)
	expected := 0
	for _, it := range items {
		if it.Err != nil || (it.Msg.IsRequest() && !it.Msg.IsNotification()) {
			expected++
		}
	}
	if batch {
		out = &batchReplies{out: replies, expected: expected}
	}
	c := &caller{app: "http", label: `{"app":"http"}`, inflight: map[string]*call{}}
	r.mu.Lock()
	for _, it := range items {
		r.handleItem(c, it, out)
	}
	r.unlock()
	if expected == 0 {
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
		reply(rpc.Errorf(rpc.CodeUnauthorized, "unauthorized: say bridge.hello with the bridge's token first (`bridge token` prints it)"))
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
		r.builtin(c, m, out)
	default:
		r.route(c, m, out)
	}
}

// isBuiltin reports whether method is in the bridge namespace (case-folded,
// as every namespace is).
func isBuiltin(method string) bool {
	return len(method) > len("bridge.") && strings.EqualFold(method[:len("bridge.")], "bridge.")
}

// sessionSink delivers a reply to a session's queue.
type sessionSink struct{ s *Session }

func (k sessionSink) deliver(frame []byte) { k.s.reply(frame) }

// reply sends a reply owed to s as a caller: to the session that resumed
// it, held while it reconnects, else queued; r.mu is held.
func (s *Session) reply(frame []byte) {
	for s.resumedBy != nil {
		s = s.resumedBy
	}
	if s.reconnecting {
		s.held = append(s.held, frame)
		return
	}
	if !s.push(outFrame{data: frame, reply: true}, classReply) && s.replay {
		s.held = append(s.held, frame) // its queue is full or closing: kept for its return
	}
}

// send queues a reply or control frame for s; a full queue makes s a slow
// reader, which is closed with 1008.
func (s *Session) send(frame []byte) bool {
	return s.push(outFrame{data: frame}, classReply)
}

func (s *Session) push(f outFrame, class frameClass) bool {
	switch s.queue.push(f, class) {
	case pushed:
		return true
	case pushFull:
		s.router.slowReader(s)
	case pushDropped:
		if class == classEvent {
			s.droppedEvents.Add(1)
			s.router.metrics.droppedEvents.Inc()
		}
	}
	return false
}

// slowReader closes s with 1008 because its queue is full. Its calls not yet
// written fail with -32003 when the session is removed.
func (r *Router) slowReader(s *Session) {
	r.logLocked(slog.LevelWarn, "slow reader closed", "session", s.id, "queue_limit", r.opts.QueueLimit)
	discarded := s.abort(websocket.StatusPolicyViolation, "slow reader: outbound queue full")
	r.slowReaderClosed(len(discarded))
	for _, f := range discarded {
		switch {
		case f.call != nil:
			f.call.markWithdrawn()
		case f.reply && s.replay: // never written: held for its return
			s.held = append(s.held, f.data)
		}
	}
}
