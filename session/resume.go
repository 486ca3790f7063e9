package session

import (
	"fmt"
	"log/slog"

	"github.com/dccbridge/dccbridge/rpc"
)

// This file is what happens to calls when a session stalls (busy), when
// its connection drops (reconnecting, calls parked), when its instance says
// hello again (resume: re-sent calls, held replies), and when it leaves for
// good.

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
	if !s.busy {
		s.quiet.Arm()
	}
}

// becameBusy marks s busy: it has calls in flight and has sent nothing for
// BusyAfter. Called by s.quiet with r.mu held.
func (r *Router) becameBusy(s *Session) {
	if s.gone || s.reconnecting || s.busy || len(s.assigned) == 0 {
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
// leaving) waits for its instance to come back, unless it is a tool with
// nothing to come back to (no methods offered, no replay: its calls were
// cancelled), so that a dropped `bridge call` leaves no ghost. Any other
// leaves.
func (r *Router) connectionEnded(s *Session) {
	r.mu.Lock()
	defer r.unlock()
	if s.gone || s.reconnecting {
		return // replaced, or already settled
	}
	switch {
	case !s.helloed || r.closing || CloseCode(s.peerClose.Load()) == CloseNormal:
		r.leave(s, "left")
		return
	case s.kind == "tool" && !s.replay && len(s.offer) == 0:
		r.leave(s, "dropped, with nothing to resume (a tool that offers no methods and does not replay)")
		return
	}
	r.suspend(s)
}

// disconnect settles what s had when its connection went (or is being
// replaced): replies never written to it are held if it is a replay
// caller; calls not yet written to it go elsewhere or wait; written ones
// stay parked if they may be re-sent (a replay callee, or an idempotent
// call) and fail -32004 otherwise; its own calls stay alive if it is a
// replay caller and are cancelled otherwise. r.mu is held, and s is not
// healthy any more.
func (r *Router) disconnect(s *Session) {
	s.busy = false
	s.quiet.Stop()
	s.queue.retire()
	s.holdUnwritten(s.queue.close())
	r.settleCallee(s, func(cl *call) bool { return s.replay || cl.idempotent },
		"dropped (it does not replay and the call is not idempotent, so it is not re-sent)")
	if !s.replay {
		r.callerGone(&s.calls)
	}
}

// suspend makes s reconnecting until its instance says hello again or
// ResumeWait passes, when it leaves for good; r.mu is held.
func (r *Router) suspend(s *Session) {
	s.reconnecting = true
	r.registry.disconnected(s)
	r.disconnect(s)
	if r.resuming.Len() >= r.opts.MaxReconnecting {
		if oldest, ok := r.resuming.First(); ok {
			r.leave(oldest, fmt.Sprintf("closed for good to make room: too many reconnecting sessions (max %d)", r.opts.MaxReconnecting))
		}
	}
	r.seq++ // the order it dropped in: the oldest drop leaves first
	r.resuming.Add(s, r.seq, r.opts.ResumeWait, func(s *Session) {
		r.leave(s, fmt.Sprintf("dropped and did not come back within the resume wait (%v)", r.opts.ResumeWait))
	})
	r.setState(s)
}

// leave takes s out of the registry for good and settles its calls: those
// it made are cancelled at their hosts, and those forwarded to it and
// written fail -32004 saying why (e.g. "left"); r.mu is held. Safe to call
// twice.
func (r *Router) leave(s *Session, why string) {
	if s.gone {
		return
	}
	left := r.info(s) // before it offers nothing
	r.registry.remove(s)
	s.gone, s.reconnecting, s.busy = true, false, false
	s.quiet.Stop()
	r.greeting.Remove(s)
	r.resuming.Remove(s)
	s.queue.retire() // its writer may still run: it writes none of its calls from now on
	r.settleCallee(s, func(*call) bool { return false }, why)
	r.callerGone(&s.calls)
	s.held = nil
	if s.helloed {
		r.logLocked(slog.LevelInfo, "session left", "session", s.id, "app", s.app, "instance", s.instance, "why", why)
		r.announceLeft(left, why)
	}
}

// announceLeft publishes session.left for a session described by info (as
// it was before it left), saying why; r.mu is held.
func (r *Router) announceLeft(info SessionInfo, why string) {
	info.State, info.Reason = StateLeft, why
	r.publish(nil, "session.left", info)
}

// takeOver hands what prev left to next, a new connection of the same app
// and instance that has just said hello offering methods (prev
// reconnecting, or live and being replaced: then prev is closed with
// 4001). With the same boot, prev's parked calls are re-sent to next (to a
// replay client; idempotent calls to any) in the order they were made, and,
// for a replay caller, prev's calls and held replies move to next;
// otherwise parked calls fail -32004 and prev's own calls are cancelled.
// prev leaves (session.left says who took over). It returns whether this
// was a resume, how many calls will be re-sent to next, and a function
// that sends the held replies, the cancels and the re-sent calls, to be
// called once the hello result is queued. r.mu is held.
func (r *Router) takeOver(prev, next *Session, methods map[string]string) (resumed bool, pending int, after func()) {
	why := "resumed by session " + next.id
	if !prev.reconnecting {
		why = "replaced by session " + next.id + " of the same instance"
		prev.closeAfterFlush(CloseReplaced, "replaced")
		r.disconnect(prev)
	}
	left := r.info(prev)
	r.resuming.Remove(prev)
	sameBoot := prev.boot == next.boot
	var resend []*call
	for _, cl := range callsInOrder(prev.assigned) {
		switch {
		case cl.idempotent || (sameBoot && next.replay):
			delete(prev.assigned, cl.fid)
			cl.callee = nil
			resend = append(resend, cl)
			if _, offered := methods[cl.method]; offered {
				pending++
			}
		case sameBoot:
			r.failMayHaveRun(cl, "came back without replay")
		default:
			r.failMayHaveRun(cl, "came back as a new boot (reloaded)")
		}
	}
	var held [][]byte
	var cancels []string
	if sameBoot && prev.replay {
		for _, cl := range callsInOrder(prev.calls.inflight) {
			key := string(cl.id)
			if dup := next.calls.inflight[key]; dup != nil {
				// Sent before this hello with the id of a call still in
				// flight from the earlier connection: the newer is refused.
				r.cancelAtCallee(dup)
				r.finish(dup, rpc.Errorf(rpc.CodeInvalidRequest, "Invalid Request: id %s is already in flight from your previous connection; use a new id per call", cl.id))
			}
			cl.caller = &next.calls
			next.calls.inflight[key] = cl
			delete(prev.calls.inflight, key)
		}
		held, prev.resumedBy = prev.held, next
	} else {
		r.callerGone(&prev.calls)
	}
	if sameBoot {
		cancels = prev.cancelled
	}
	prev.held, prev.cancelled = nil, nil
	r.registry.remove(prev)
	prev.gone, prev.reconnecting = true, false
	r.tookOver(sameBoot, len(resend))
	r.announceLeft(left, why)
	return sameBoot, pending, func() {
		for _, f := range held {
			next.reply(f)
		}
		for _, fid := range cancels {
			next.sendCancel(fid)
		}
		for _, cl := range resend {
			_, offered := next.methods[cl.method]
			switch {
			case offered:
				r.assign(cl, next)
			case cl.idempotent:
				r.dispatch(cl)
			default: // it may have run here: never run it elsewhere
				cl.callee = next
				r.failMayHaveRun(cl, "came back without offering "+cl.method)
			}
		}
	}
}
