package session

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dccbridge/dccbridge/retry"
)

// State is what a session can do right now.
type State string

// Session states. Only connected sessions receive new calls; left appears
// only in the session.left event.
const (
	StateConnected    State = "connected"
	StateBusy         State = "busy"
	StateReconnecting State = "reconnecting"
	StateLeft         State = "left"
)

// The kinds of the sessions the bridge's own connectors hold for DCC
// command servers (package hostadapters); a session of either is a host.
const (
	KindSkyHook      = "skyhook"
	KindUnrealRemote = "unreal-remote"
)

// Peer describes a connection as the HTTP layer accepted it.
type Peer struct {
	// Authorized is true when no token is needed or the upgrade carried a
	// valid one; otherwise only bridge.hello with the token admits it.
	Authorized bool
	// Remote is the peer's address, for logs.
	Remote string
}

// identity is who a peer is: its app (namespace) and instance, empty
// before bridge.hello, and the JSON object that names it in meta.caller.
type identity struct {
	app      string
	instance string
	meta     []byte
}

// Session is one peer connection: a reader, a writer draining a bounded
// queue while it has frames, and a heartbeat timer. Its identity, offer and
// call bookkeeping are guarded by the Router's mutex; the queue, the close
// status and the atomics are safe for concurrent use on their own.
type Session struct {
	router      *Router
	conn        Conn
	id          string
	remote      string
	connectedAt time.Time
	seq         uint64 // the order it connected in
	queue       *outQueue

	// Guarded by router.mu.
	identity
	calls      caller // the calls it makes
	authorized bool
	helloed    bool
	kind       string
	boot       string
	label      string
	version    string
	replay     bool
	offer      []string          // full names, in the order offered
	methods    map[string]string // full name → name as offered
	topics     []string
	assigned   map[string]*call // calls forwarded to it (parked while reconnecting), by forwarded id
	answerMeta []byte           // the meta a reply from it carries
	gone       bool             // removed from the registry
	busy       bool             // calls in flight and silent for BusyAfter
	quiet      *retry.Silence   // armed while calls are in flight and it is not busy
	// reconnecting: the connection is gone and the session waits up to
	// ResumeWait (in Router.resuming) for its app and instance to say
	// hello again.
	reconnecting bool
	held         [][]byte // replies owed to it as a replay caller, held while it reconnects
	cancelled    []string // forwarded ids of its parked calls cancelled while it reconnects
	resumedBy    *Session // the session that took over after a resume

	peerClose     atomic.Int32 // the close code the peer sent, if any
	lastInbound   atomic.Int64 // unix nanoseconds of the last message read
	writing       atomic.Bool  // a write is under way
	rtt           atomic.Int64 // nanoseconds
	droppedEvents atomic.Int64
	ended         atomic.Bool           // the read loop has returned
	failure       atomic.Pointer[error] // what ended the session, when not the read

	// Owned by the queue's writer (one at a time).
	writeDeadline *time.Timer // closes the connection when a write takes longer than WriteTimeout
	writeTimedOut atomic.Bool

	closeMu     sync.Mutex
	closeCode   CloseCode
	closeReason string
}

// errClosedByBridge ends a session whose close the bridge asked for.
var errClosedByBridge = errors.New("closed by the bridge")

// run serves the session until its connection ends and returns what ended
// it: the first failure of a write or of the heartbeat, or the bridge's
// close (after which the read fails too, only as a consequence), else what
// ended the read. The read loop runs on the calling goroutine (Serve's);
// the writer runs only while there is something to write, and the
// heartbeat is a timer whose ping runs only while one is in flight: an
// idle session is one goroutine, blocked in a read.
func (s *Session) run() error {
	beat := s.startHeartbeat()
	readErr := s.readLoop()
	s.ended.Store(true)
	beat.Stop()
	s.queue.stop()
	if err := s.failure.Load(); err != nil {
		return *err
	}
	return readErr
}

// fail ends the session: it records err as what ended it, unless something
// did already, and closes the connection at once, which ends the read.
func (s *Session) fail(err error) {
	s.failure.CompareAndSwap(nil, &err)
	_ = s.conn.CloseNow()
}

// readLoop reads until the connection ends.
func (s *Session) readLoop() error {
	for {
		data, err := s.conn.Read(context.Background())
		if err != nil {
			if v, ok := errors.AsType[*Violation](err); ok {
				s.closeAfterFlush(v.Code, v.Reason)
				continue
			}
			s.peerClose.Store(int32(peerCloseCode(err)))
			return err
		}
		s.lastInbound.Store(time.Now().UnixNano())
		s.router.metrics.received.Add(float64(len(data)))
		s.router.handleFrame(s, data)
	}
}

// writeFrames is the queue's writer: it writes what is queued, one frame
// at a time, until the queue says to end. When a write fails, or the queue
// is closed under it, the frame it was on and those after it are settled
// like frames never taken from the queue: replies owed to a replay caller
// are held for its return, cancels kept for its instance's. Writes take no
// context of their own (a cancellable one costs a timer per message): a
// write that does not finish within WriteTimeout closes the connection
// (one timer per session, reset per write).
func (s *Session) writeFrames() {
	for {
		frames, next := s.queue.take()
		for i, f := range frames {
			switch s.queue.claim(f) {
			case claimSkip:
				s.queue.done(f)
				continue
			case claimClosed:
				s.router.settleUnwritten(s, frames[i:])
				s.closeConn()
				s.fail(errClosedByBridge)
				return
			}
			if err := s.write(f.data); err != nil {
				if !s.queue.giveBack(frames[i:]) {
					s.router.settleUnwritten(s, frames[i:])
				}
				s.fail(err)
				return
			}
			s.queue.done(f)
			s.router.metrics.sent.Add(float64(len(f.data)))
		}
		switch next {
		case takeEnd:
			return
		case takeClose:
			s.closeConn()
			s.fail(errClosedByBridge)
			return
		}
	}
}

// write writes one message within WriteTimeout. Only the queue's writer
// calls it, one writer at a time.
func (s *Session) write(msg []byte) error {
	timeout := s.router.opts.WriteTimeout
	if s.writeDeadline == nil {
		s.writeDeadline = time.AfterFunc(timeout, func() {
			s.writeTimedOut.Store(true)
			_ = s.conn.CloseNow()
		})
	} else {
		s.writeDeadline.Reset(timeout)
	}
	s.writing.Store(true)
	err := s.conn.Write(context.Background(), msg)
	s.writeDeadline.Stop()
	s.writing.Store(false)
	switch {
	case err == nil:
		return nil
	case s.writeTimedOut.Load():
		return fmt.Errorf("write timed out after %v (the peer is not reading): %w", timeout, err)
	}
	return fmt.Errorf("write: %w", err)
}

// startHeartbeat pings the peer every HeartbeatInterval from a timer, and
// ends the session when the peer is gone: no pong and nothing received
// within HeartbeatTimeout. A ping is not a verdict while a long write
// holds the connection (the write timeout decides then) or while a
// message from the peer is arriving. Stop the returned timer when the
// session ends.
func (s *Session) startHeartbeat() *time.Timer {
	interval, timeout := s.router.opts.HeartbeatInterval, s.router.opts.HeartbeatTimeout
	var t *time.Timer
	var mu sync.Mutex // t is set before the first tick can read it
	mu.Lock()
	defer mu.Unlock()
	t = time.AfterFunc(interval, func() {
		if err := s.ping(timeout); err != nil {
			s.fail(err)
			return
		}
		if !s.ended.Load() {
			mu.Lock()
			t.Reset(interval)
			mu.Unlock()
		}
	})
	return t
}

// ping probes the peer once; it returns an error when the peer is gone.
func (s *Session) ping(timeout time.Duration) error {
	if s.writing.Load() || s.ended.Load() {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	start := time.Now()
	err := s.conn.Ping(ctx)
	cancel()
	switch {
	case err == nil:
		s.rtt.Store(int64(time.Since(start)))
	case s.ended.Load(), errors.Is(err, ErrReceiving), s.writing.Load():
		// Ending anyway; or alive: busy sending us a message, or the ping
		// waited behind our own long write.
	case errors.Is(err, ErrNoPong):
		return fmt.Errorf("no pong within %v and nothing received: %w", timeout, err)
	default:
		return fmt.Errorf("ping failed: %w", err)
	}
	return nil
}

// setClose records the close code and reason once; it reports whether this
// call set them.
func (s *Session) setClose(code CloseCode, reason string) bool {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closeCode != 0 {
		return false
	}
	s.closeCode, s.closeReason = code, reason
	return true
}

// closeStatus returns the recorded close code and reason (0 if none).
func (s *Session) closeStatus() (CloseCode, string) {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	return s.closeCode, s.closeReason
}

// closeAfterFlush closes the session with code once the frames queued so far
// are written. It does not block.
func (s *Session) closeAfterFlush(code CloseCode, reason string) {
	if s.setClose(code, reason) {
		s.queue.flush()
	}
}

// abort closes the session with code at once, discarding what is queued, and
// returns the discarded frames. It does not block: the close handshake runs
// in its own goroutine and gives up after the transport's own timeout.
func (s *Session) abort(code CloseCode, reason string) []outFrame {
	if !s.setClose(code, reason) {
		return nil
	}
	dropped := s.queue.close()
	go s.closeConn()
	return dropped
}

// closeConn does the close handshake with the recorded code.
func (s *Session) closeConn() {
	code, reason := s.closeStatus()
	if code == 0 {
		code, reason = CloseNormal, ""
	}
	_ = s.conn.Close(code, reason)
}

// state returns s's state; router.mu is held.
func (s *Session) state() State {
	switch {
	case s.gone:
		return StateLeft
	case s.reconnecting:
		return StateReconnecting
	case s.busy:
		return StateBusy
	}
	return StateConnected
}

// healthy reports whether s may be given new calls: connected, not busy,
// not reconnecting, and not being closed by the bridge (slow reader,
// protocol violation, bad token); router.mu is held.
func (s *Session) healthy() bool {
	code, _ := s.closeStatus()
	return code == 0 && s.state() == StateConnected
}

// reply sends a reply owed to s as a caller: to the session that resumed
// it, held while it reconnects, else queued; router.mu is held.
func (s *Session) reply(frame []byte) {
	for s.resumedBy != nil {
		s = s.resumedBy
	}
	if s.reconnecting {
		s.held = append(s.held, frame)
		return
	}
	if !s.push(outFrame{data: frame, reply: true}, classMustDeliver) && s.replay {
		s.held = append(s.held, frame) // its queue is full or closing: kept for its return
	}
}

// send queues a control frame ($/progress) or a forwarded notification for
// s; a full queue makes s a slow reader, which is closed with 1008. Replies
// go through reply, cancels through sendCancel, so that they are kept when
// they cannot be written. router.mu is held.
func (s *Session) send(frame []byte) bool {
	return s.push(outFrame{data: frame}, classMustDeliver)
}

// sendCancel queues the $/cancelRequest of forwarded id fid for s;
// router.mu is held.
func (s *Session) sendCancel(fid string) {
	s.push(outFrame{data: cancelFrame(fid), cancel: fid}, classMustDeliver)
}

// push queues f; router.mu is held.
func (s *Session) push(f outFrame, class frameClass) bool {
	switch s.queue.push(f, class) {
	case pushed:
		return true
	case pushFull:
		s.router.slowReader(s)
	case pushDropped:
		if class == classEvent {
			s.dropEvent()
		}
	}
	return false
}

// dropEvent counts an event not delivered to s.
func (s *Session) dropEvent() {
	s.droppedEvents.Add(1)
	s.router.metrics.droppedEvents.Inc()
}

// holdUnwritten keeps what must not be lost among frames never written to
// s: replies owed to it as a replay caller (held for its return, or sent
// to the session that has resumed it) and cancels of calls it was running
// (told to its instance when it is back). router.mu is held.
func (s *Session) holdUnwritten(frames []outFrame) {
	for _, f := range frames {
		switch {
		case f.reply && s.replay:
			if s.resumedBy != nil {
				s.reply(f.data)
			} else {
				s.held = append(s.held, f.data)
			}
		case f.cancel != "":
			if s.resumedBy != nil {
				s.resumedBy.sendCancel(f.cancel)
			} else {
				s.cancelled = append(s.cancelled, f.cancel)
			}
		}
	}
}
