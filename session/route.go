package session

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/dccbridge/dccbridge/rpc"
)

// route forwards a call from c to a session that offers its method, or
// makes it wait for one; r.mu is held.
func (r *Router) route(c *caller, m *rpc.Message, out sink) {
	fail := func(e *rpc.Error) {
		r.callRejected(m, e.Code)
		if !m.IsNotification() {
			out.deliver(rpc.AppendError(nil, m.ID, e))
		}
	}
	ns, full, ok := splitMethod(m.Method)
	if !ok {
		fail(rpc.Errorf(rpc.CodeMethodNotFound, "method %q not found: routed methods are named app.method", m.Method).
			WithData(map[string]any{"method": m.Method}))
		return
	}
	meta, err := parseMeta(m.Meta)
	if err != nil {
		fail(err)
		return
	}
	if r.closing {
		fail(rpc.ErrShuttingDown.WithData(map[string]any{"app": ns, "method": full}))
		return
	}
	if m.IsNotification() {
		if s := r.registry.pick(full, meta.Target); s != nil {
			s.send(rpc.AppendRequest(nil, nil, s.methods[full], m.Params, appendForwardMeta(nil, c, nil)))
		}
		return
	}
	if _, dup := c.inflight[string(m.ID)]; dup {
		fail(rpc.Errorf(rpc.CodeInvalidRequest, "Invalid Request: id %s is already in flight from you; use a new id per call", m.ID))
		return
	}
	if len(c.inflight) >= r.opts.MaxInFlight {
		fail(rpc.Errorf(rpc.CodeOverloaded, "overloaded: you have %d calls in flight (the most allowed); wait for replies", len(c.inflight)).
			WithData(map[string]any{"app": ns, "method": full}))
		return
	}
	known, catalogued := r.catalogMethod(ns, full)
	cl := &call{
		id:         m.ID,
		method:     full,
		app:        ns,
		params:     m.Params,
		caller:     c,
		out:        out,
		target:     meta.Target,
		catalogued: catalogued,
		idempotent: known.Idempotent,
		timeout:    msDuration(meta.TimeoutMS, cmp.Or(known.Timeout, r.opts.DefaultTimeout)),
		wait:       msDuration(meta.WaitMS, r.opts.DefaultWait),
	}
	if meta.Idempotent != nil {
		cl.idempotent = *meta.Idempotent
	}
	c.inflight[string(m.ID)] = cl
	r.start(cl)
}

// catalogMethod returns what the catalog knows of method full of app ns.
func (r *Router) catalogMethod(ns, full string) (MethodInfo, bool) {
	if r.opts.Catalog == nil {
		return MethodInfo{}, false
	}
	return r.opts.Catalog.Method(ns, full[len(ns)+1:])
}

// start registers cl and sends it on its way; r.mu is held.
func (r *Router) start(cl *call) {
	cl.seq, cl.fid = r.next("c")
	cl.started = time.Now()
	r.calls.byFID[cl.fid] = cl
	r.stats.Calls++
	cl.labels = r.labelsFor(cl.app, cl.method)
	cl.timer = time.AfterFunc(cl.timeout, func() { r.expire(cl) })
	r.dispatch(cl)
}

// dispatch sends cl to a healthy session that offers its method, or, when
// there is none, answers -32601 (the app is there but nothing offers the
// method) or makes it wait up to cl.wait (for a busy or reconnecting
// session that offers it, too); r.mu is held.
func (r *Router) dispatch(cl *call) {
	if s := r.registry.pick(cl.method, cl.target); s != nil {
		r.assign(cl, s)
		return
	}
	if !cl.catalogued && !r.registry.offered(cl.method, cl.target) && r.registry.appPresent(cl.app, cl.target) {
		who := cl.app
		if cl.target != "" {
			who += " instance " + strconv.Quote(cl.target)
		}
		r.finish(cl, rpc.Errorf(rpc.CodeMethodNotFound, "method not found: %s is connected but does not offer %s", who, cl.method).
			WithData(cl.errorData()))
		return
	}
	cl.state.Store(callWaiting)
	r.calls.waiting.Add(cl, cl.seq, cl.wait, func(cl *call) {
		d := cl.errorData()
		d["waited_ms"] = cl.wait.Milliseconds()
		msg := fmt.Sprintf("no healthy session offers %s (waited %v)", cl.method, cl.wait)
		if states := r.registry.unavailable(cl.method, cl.target); len(states) > 0 {
			d["unavailable"] = states
			msg += ": " + strings.Join(states, ", ")
		}
		r.finish(cl, rpc.Errorf(rpc.CodeNoSession, "%s", msg).WithData(d))
	})
}

// wakeWaiting dispatches, in the order they were made, the waiting calls
// that a session can now take; r.mu is held.
func (r *Router) wakeWaiting() {
	r.calls.waiting.Wake(func(cl *call) bool {
		s := r.registry.pick(cl.method, cl.target)
		if s != nil {
			r.assign(cl, s)
		}
		return s != nil
	})
}

// assign writes cl to s's queue; r.mu is held.
func (r *Router) assign(cl *call, s *Session) {
	cl.callee = s
	cl.attempt++
	cl.state.Store(callQueued)
	s.assigned[cl.fid] = cl
	r.armBusy(s)
	// The id and meta are built on the stack, the frame in one allocation.
	var meta []byte
	var metaBuf [192]byte
	if from := cmp.Or(cl.caller, cl.by); from != nil {
		meta = appendForwardMeta(metaBuf[:0], from, cl)
	}
	var idBuf [48]byte
	id := append(append(append(idBuf[:0], '"'), cl.fid...), '"') // forwarded ids need no escapes
	method := s.methods[cl.method]
	frame := make([]byte, 0, rpc.RequestSize(id, method, cl.params, meta))
	frame = rpc.AppendRequest(frame, id, method, cl.params, meta)
	s.push(outFrame{data: frame, call: cl}, classMustDeliver)
}

// appendForwardMeta appends the meta a callee receives: who called, how
// long is left, which attempt this is (cl nil for a notification).
func appendForwardMeta(b []byte, c *caller, cl *call) []byte {
	b = append(b, `{"caller":`...)
	b = append(b, c.who.meta...)
	if cl != nil {
		left := max(cl.timeout-time.Since(cl.started), 0)
		b = append(b, `,"timeout_ms":`...)
		b = strconv.AppendInt(b, left.Milliseconds(), 10)
		b = append(b, `,"attempt":`...)
		b = strconv.AppendInt(b, int64(cl.attempt), 10)
	}
	return append(b, '}')
}

// handleResponse takes a callee's reply to a forwarded call; r.mu is held.
// Replies to unknown or finished calls, and from anyone but the callee, are
// dropped.
func (r *Router) handleResponse(s *Session, m *rpc.Message) {
	fid, ok := forwardedID(m.ID)
	cl := r.calls.byFID[string(fid)]
	if !ok || cl == nil || cl.callee != s {
		r.logLocked(slog.LevelDebug, "reply dropped: no such call in flight to this session", "session", s.id, "id", string(m.ID))
		return
	}
	r.complete(cl)
	r.callAnswered(cl, m.Result != nil)
	body := m.Result
	if body == nil {
		body = m.Error
	}
	frame := make([]byte, 0, rpc.ResponseSize(cl.id, body, s.answerMeta))
	if m.Result != nil {
		frame = rpc.AppendResult(frame, cl.id, m.Result, s.answerMeta)
	} else {
		r.stats.Failed++
		var e rpc.Error
		_ = json.Unmarshal(m.Error, &e) // validated by rpc.Decode
		r.callFailed(cl, e.Code, e.Message)
		frame = rpc.AppendRawError(frame, cl.id, m.Error, s.answerMeta)
	}
	cl.out.deliver(frame)
}

// complete removes cl from every index and stops its timers; r.mu is held.
func (r *Router) complete(cl *call) {
	delete(r.calls.byFID, cl.fid)
	r.calls.waiting.Remove(cl)
	if cl.caller != nil {
		delete(cl.caller.inflight, string(cl.id))
	}
	if cl.callee != nil {
		delete(cl.callee.assigned, cl.fid)
	}
	cl.timer.Stop()
}

// finish ends cl with an error for its caller; r.mu is held.
func (r *Router) finish(cl *call, e *rpc.Error) {
	if _, ok := r.calls.byFID[cl.fid]; !ok {
		return
	}
	r.complete(cl)
	r.callEnded(cl, outcomeOf(e.Code))
	r.stats.Failed++
	r.callFailed(cl, e.Code, e.Message)
	cl.out.deliver(rpc.AppendError(nil, cl.id, e))
}

// callFailed logs a failed call and publishes bridge.call.failed; r.mu is
// held.
func (r *Router) callFailed(cl *call, code int64, message string) {
	d := cl.errorData()
	d["code"], d["message"] = code, message
	d["duration_ms"] = time.Since(cl.started).Milliseconds()
	if c := cl.caller; c != nil {
		d["caller"] = map[string]string{"app": c.who.app, "instance": c.who.instance}
	}
	r.logLocked(slog.LevelInfo, "call failed", "app", cl.app, "instance", d["instance"], "method", cl.method,
		"code", code, "error", message, "duration", time.Since(cl.started).Round(time.Millisecond))
	r.publish(nil, "bridge.call.failed", d)
}

// cancelAtCallee tells the callee to stop cl, if cl was written to it;
// r.mu is held.
func (r *Router) cancelAtCallee(cl *call) {
	switch {
	case cl.callee == nil || cl.markWithdrawn():
		// never sent
	case cl.callee.reconnecting: // parked: told when it comes back
		cl.callee.cancelled = append(cl.callee.cancelled, cl.fid)
	default:
		cl.callee.sendCancel(cl.fid)
	}
}

// cancelFrame is the $/cancelRequest a callee gets for a forwarded id.
func cancelFrame(fid string) []byte {
	params := append(append([]byte(`{"id":`), rpc.AppendString(nil, fid)...), '}')
	return rpc.AppendRequest(nil, nil, "$/cancelRequest", params, nil)
}

// expire ends cl with -32002 when its timeout runs out.
func (r *Router) expire(cl *call) {
	r.mu.Lock()
	defer r.unlock()
	if _, ok := r.calls.byFID[cl.fid]; !ok {
		return
	}
	r.cancelAtCallee(cl)
	d := cl.errorData()
	d["timeout_ms"] = cl.timeout.Milliseconds()
	r.finish(cl, rpc.Errorf(rpc.CodeTimeout, "call timed out after %v", cl.timeout).WithData(d))
}

// cancelRequest handles $/cancelRequest {"id": <caller's id>} from c;
// r.mu is held. Unknown ids are ignored.
func (r *Router) cancelRequest(c *caller, m *rpc.Message) {
	var p struct {
		ID json.RawMessage `json:"id"`
	}
	if json.Unmarshal(m.Params, &p) != nil || p.ID == nil {
		return
	}
	cl := c.inflight[string(p.ID)]
	if cl == nil {
		return
	}
	r.cancelAtCallee(cl)
	r.finish(cl, rpc.Errorf(rpc.CodeCancelled, "cancelled by the caller").WithData(cl.errorData()))
}

// progress forwards $/progress {"id": <forwarded id>, "value": …} from the
// callee to the caller with the caller's id; r.mu is held.
func (r *Router) progress(s *Session, m *rpc.Message) {
	var p struct {
		ID    json.RawMessage `json:"id"`
		Value json.RawMessage `json:"value"`
	}
	if json.Unmarshal(m.Params, &p) != nil {
		return
	}
	fid, ok := forwardedID(p.ID)
	cl := r.calls.byFID[string(fid)]
	if !ok || cl == nil || cl.callee != s {
		return
	}
	cl.progress = lastProgress(p.Value)
	if cl.caller == nil || cl.caller.session == nil {
		return
	}
	params := append(append([]byte(`{"id":`), cl.id...), `,"value":`...)
	if p.Value == nil {
		params = append(params, "null"...)
	}
	params = append(append(params, p.Value...), '}')
	cl.caller.session.send(rpc.AppendRequest(nil, nil, "$/progress", params, nil))
}

// callerGone cancels every call c still has in flight, at its host too;
// r.mu is held.
func (r *Router) callerGone(c *caller) {
	for _, cl := range callsInOrder(c.inflight) {
		r.cancelAtCallee(cl)
		r.complete(cl)
		r.callEnded(cl, "cancelled")
	}
}

// settleCallee settles, in the order they were made, the calls forwarded
// to s, whose connection is gone: those never written go to another
// session or wait (or fail -32003 when s was closed as a slow reader);
// written ones stay parked when park says so, else fail -32004 with
// may_have_run, saying why. r.mu is held.
func (r *Router) settleCallee(s *Session, park func(*call) bool, why string) {
	code, _ := s.closeStatus()
	slow := code == ClosePolicyViolation
	for _, cl := range callsInOrder(s.assigned) {
		switch {
		case cl.markWithdrawn():
			if slow {
				r.finish(cl, rpc.Errorf(rpc.CodeOverloaded, "overloaded: %s instance %q was closed as a slow reader before the call was delivered", cl.app, s.instance).WithData(cl.errorData()))
				continue
			}
			delete(s.assigned, cl.fid)
			cl.callee = nil
			r.dispatch(cl)
		case !park(cl):
			r.failMayHaveRun(cl, why)
		}
	}
}

// failMayHaveRun ends a call that was written to its callee with -32004,
// may_have_run true; r.mu is held.
func (r *Router) failMayHaveRun(cl *call, why string) {
	d := cl.errorData()
	d["may_have_run"] = true
	r.finish(cl, rpc.Errorf(rpc.CodeCalleeGone, "%s instance %q %s while running %s: it may have run", cl.app, d["instance"], why, cl.method).WithData(d))
}

// maxShownProgress bounds the progress value the calls list keeps of a
// call, in bytes.
const maxShownProgress = 256

// lastProgress is what the calls list shows of a progress value: a copy,
// or its size when it is large.
func lastProgress(v json.RawMessage) json.RawMessage {
	if v == nil {
		return json.RawMessage("null")
	}
	if len(v) > maxShownProgress {
		return json.RawMessage(strconv.Quote("(" + strconv.Itoa(len(v)) + " bytes)"))
	}
	return bytes.Clone(v)
}
