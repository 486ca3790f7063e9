package session

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/sync/errgroup"

	"github.com/dccbridge/dccbridge/retry"
)

// State is what a session can do right now.
type State string

// Session states. Only connected sessions receive new calls.
const (
	StateConnected    State = "connected"
	StateBusy         State = "busy"
	StateReconnecting State = "reconnecting"
)

// Peer describes a connection as the HTTP layer accepted it.
type Peer struct {
	// Authorized is true when no token is needed or the upgrade carried a
	// valid one; otherwise only bridge.hello with the token admits it.
	Authorized bool
	// Remote is the peer's address, for logs.
	Remote string
}

// Session is one websocket connection: a reader, a writer draining a bounded
// queue, and a heartbeat, joined by an errgroup. Its identity and offer are
// guarded by the Router's mutex; the queue and the counters are safe for
// concurrent use on their own.
type Session struct {
	router      *Router
	conn        *websocket.Conn
	id          string
	remote      string
	connectedAt time.Time
	queue       *outQueue
	drop        context.CancelFunc // ends run at once, dropping the connection

	// Guarded by router.mu.
	caller     caller
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
	assigned   map[string]*call // calls forwarded to this session (parked while reconnecting), by forwarded id
	answerMeta []byte           // the meta a reply from this session carries
	gone       bool             // removed from the registry
	busy       bool             // calls in flight and silent for BusyAfter
	busyTimer  retry.Timer      // armed while calls are in flight and the session is not busy
	// reconnecting: the connection is gone and the session waits up to
	// ResumeWait for its app and instance to say hello again.
	reconnecting bool
	resumeTimer  retry.Timer
	held         [][]byte // replies for this replay caller, held while it reconnects
	cancelled    []string // forwarded ids of parked calls cancelled while it reconnects
	resumedBy    *Session // the session that took over after a resume

	peerClose     atomic.Int32 // the close code the peer sent, if any
	lastInbound   atomic.Int64 // unix nanoseconds
	rtt           atomic.Int64 // nanoseconds
	droppedEvents atomic.Int64

	closeMu     sync.Mutex
	closeCode   websocket.StatusCode
	closeReason string
}

// errClosedByBridge ends a session whose close the bridge asked for.
var errClosedByBridge = errors.New("closed by the bridge")

// run serves the session until its connection ends.
func (s *Session) run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.readLoop(ctx) })
	g.Go(func() error { return s.writeLoop(ctx) })
	g.Go(func() error { return s.heartbeat(ctx) })
	return g.Wait()
}

func (s *Session) readLoop(ctx context.Context) error {
	for {
		typ, data, err := s.conn.Read(ctx)
		if err != nil {
			s.peerClose.Store(int32(websocket.CloseStatus(err)))
			return fmt.Errorf("read: %w", err)
		}
		s.lastInbound.Store(s.router.clock.Now().UnixNano())
		s.router.metrics.received.Add(float64(len(data)))
		if typ != websocket.MessageText {
			s.closeAfterFlush(websocket.StatusUnsupportedData, "binary messages are not accepted: send JSON-RPC as text")
			continue
		}
		s.router.handleFrame(s, data)
	}
}

func (s *Session) writeLoop(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.queue.wake:
		}
		frames, last := s.queue.take()
		for _, f := range frames {
			if !s.queue.claim(f) {
				continue // withdrawn while queued, or moved to another session
			}
			wctx, cancel := context.WithTimeout(ctx, s.router.opts.WriteTimeout)
			err := s.conn.Write(wctx, websocket.MessageText, f.data)
			cancel()
			if err != nil {
				return fmt.Errorf("write: %w", err)
			}
			s.router.metrics.sent.Add(float64(len(f.data)))
		}
		if last {
			s.closeConn()
			return errClosedByBridge
		}
	}
}

func (s *Session) heartbeat(ctx context.Context) error {
	t := time.NewTicker(s.router.opts.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, s.router.opts.HeartbeatTimeout)
		start := time.Now()
		err := s.conn.Ping(pctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("no pong within %v: %w", s.router.opts.HeartbeatTimeout, err)
		}
		s.rtt.Store(int64(time.Since(start)))
	}
}

// setClose records the close code and reason once; it reports whether this
// call set them.
func (s *Session) setClose(code websocket.StatusCode, reason string) bool {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closeCode != 0 {
		return false
	}
	s.closeCode, s.closeReason = code, reason
	return true
}

// closeStatus returns the recorded close code and reason (0 if none).
func (s *Session) closeStatus() (websocket.StatusCode, string) {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	return s.closeCode, s.closeReason
}

// closeAfterFlush closes the session with code once the frames queued so far
// are written. It does not block.
func (s *Session) closeAfterFlush(code websocket.StatusCode, reason string) {
	if s.setClose(code, reason) {
		s.queue.flush()
	}
}

// abort closes the session with code at once, discarding what is queued, and
// returns the discarded frames. It does not block: the close handshake runs
// in its own goroutine and gives up after coder/websocket's own timeout.
func (s *Session) abort(code websocket.StatusCode, reason string) []outFrame {
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
		code, reason = websocket.StatusNormalClosure, ""
	}
	_ = s.conn.Close(code, reason)
}
