package session

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/coder/websocket"

	"github.com/dccbridge/dccbridge/retry"
)

// This file is DESIGN §4: what happens to calls when a session stalls
// (busy) or its connection drops (reconnecting), and when its instance says
// hello again (resume).

// state returns s's state; r.mu is held.
func (s *Session) state() State {
	switch {
	case s.reconnecting:
		return StateReconnecting
	case s.busy:
		return StateBusy
	}
	return StateConnected
}

// healthy reports whether s may be given new calls: connected, not busy,
// not reconnecting, and not being closed by the bridge (slow reader,
// protocol violation, bad token); r.mu is held.
func (s *Session) healthy() bool {
	code, _ := s.closeStatus()
	return !s.gone && code == 0 && s.state() == StateConnected
}

func stopTimer(t *retry.Timer) {
	if *t != nil {
		(*t).Stop()
		*t = nil
	}
}

// setState publishes session.state for s after a change; r.mu is held.
func (r *Router) setState(s *Session) {
	info := r.info(s)
	r.logLocked(slog.LevelInfo, "session state", "session", s.id, "app", info.App, "instance", info.Instance,
		"state", info.State, "in_flight", info.InFlight, "parked", info.Parked)
	r.publish(nil, "session.state", info)
}

// armBusy starts watching s for silence while it has calls in flight;
// r.mu is held.
func (r *Router) armBusy(s *Session) {
	if s.busyTimer == nil && !s.busy {
		s.busyTimer = r.clock.AfterFunc(r.opts.BusyAfter, func() { r.checkBusy(s) })
	}
}

// checkBusy marks s busy if it still has calls in flight and has sent
// nothing for BusyAfter, or looks again later.
func (r *Router) checkBusy(s *Session) {
	r.mu.Lock()
	defer r.unlock()
	s.busyTimer = nil
	if s.gone || s.reconnecting || s.busy || len(s.assigned) == 0 {
		return
	}
	quiet := r.clock.Now().Sub(time.Unix(0, s.lastInbound.Load()))
	if quiet < r.opts.BusyAfter {
		s.busyTimer = r.clock.AfterFunc(r.opts.BusyAfter-quiet, func() { r.checkBusy(s) })
		return
	}
	s.busy = true
	r.setState(s)
}

// heardFrom notes a message from s: a busy session is connected again;
// r.mu is held.
func (r *Router) heardFrom(s *Session) {
	if !s.busy {
		return
	}
	s.busy = false
	r.setState(s)
	if len(s.assigned) > 0 {
		r.armBusy(s)
	}
	r.wakeWaiting()
}

// connectionEnded settles s once its connection is gone. A session that
// said hello and did not leave for good (a normal closure, 1000, is
// leaving) waits for its instance to come back; any other leaves the
// registry.
func (r *Router) connectionEnded(s *Session) {
	r.mu.Lock()
	defer r.unlock()
	if s.gone || s.reconnecting {
		return // replaced, or already settled
	}
	if !s.helloed || r.closing || websocket.StatusCode(s.peerClose.Load()) == websocket.StatusNormalClosure {
		r.unregister(s, "left")
		return
	}
	r.suspend(s)
}

// suspend makes s reconnecting: calls not yet written to it go elsewhere
// or wait; written ones are parked if they may be re-sent (a replay client,
// or an idempotent call) and fail -32004 otherwise; its own calls stay
// alive if it is a replay caller (replies are held) and are cancelled
// otherwise. After ResumeWait it leaves for good. r.mu is held.
func (r *Router) suspend(s *Session) {
	s.reconnecting, s.busy = true, false
	stopTimer(&s.busyTimer)
	s.queue.retire()
	for _, f := range s.queue.close() {
		if f.reply && s.replay { // queued, never written: held for its return
			s.held = append(s.held, f.data)
		}
	}
	r.settleCallee(s, func(cl *call) bool { return s.replay || cl.idempotent },
		"dropped, and the call may not be re-sent (the client does not replay and the method is not idempotent),")
	if !s.replay {
		r.callerGone(&s.caller)
	}
	s.resumeTimer = r.clock.AfterFunc(r.opts.ResumeWait, func() {
		r.mu.Lock()
		defer r.unlock()
		if s.reconnecting {
			r.unregister(s, fmt.Sprintf("dropped and did not come back within the resume wait (%v)", r.opts.ResumeWait))
		}
	})
	r.setState(s)
}

// takeOver hands what g left to n, a new connection of the same app and
// instance that has just said hello (g reconnecting, or live and being
// replaced). With the same boot, g's parked calls are re-sent to n (to a
// replay client; idempotent calls to any) and, for a replay caller, g's
// calls and held replies move to n; otherwise parked calls fail -32004 and
// g's own calls are cancelled. It returns whether this was a resume, how
// many calls will be re-sent, and a function that sends the held replies
// and the re-sent calls, to be called once the hello result is queued.
// r.mu is held.
func (r *Router) takeOver(g, n *Session) (resumed bool, pending int, after func()) {
	if !g.reconnecting {
		g.closeAfterFlush(websocket.StatusCode(4001), "replaced")
		r.suspend(g)
	}
	stopTimer(&g.resumeTimer)
	sameBoot := g.boot == n.boot
	var resend []*call
	for fid, cl := range g.assigned {
		switch {
		case cl.idempotent || (sameBoot && n.replay):
			delete(g.assigned, fid)
			cl.callee = nil
			resend = append(resend, cl)
		case sameBoot:
			r.failMayHaveRun(cl, "came back without replay")
		default:
			r.failMayHaveRun(cl, "came back as a new boot (reloaded)")
		}
	}
	var held [][]byte
	if sameBoot && g.replay {
		for key, cl := range g.caller.inflight {
			cl.caller = &n.caller
			n.caller.inflight[key] = cl
			delete(g.caller.inflight, key)
		}
		held, g.resumedBy = g.held, n
	} else {
		r.callerGone(&g.caller)
	}
	g.held = nil
	g.reconnecting, g.gone = false, true
	delete(r.sessions, g.id)
	r.setOffer(g, nil, nil)
	r.tookOver(sameBoot, len(resend))
	var cancels []string
	if sameBoot {
		cancels = g.cancelled
	}
	return sameBoot, len(resend), func() {
		for _, f := range held {
			n.reply(f)
		}
		for _, fid := range cancels {
			n.send(cancelFrame(fid))
		}
		for _, cl := range resend {
			_, offered := n.methods[cl.method]
			switch {
			case offered:
				r.assign(cl, n)
			case cl.idempotent:
				r.dispatch(cl)
			default: // it may have run here: never run it elsewhere
				cl.callee = n
				r.failMayHaveRun(cl, "came back without offering "+cl.method)
			}
		}
	}
}
