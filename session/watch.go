package session

import (
	"encoding/json"
	"slices"
	"time"
)

// Event is an event as a watcher sees it: the bridge's own (session.joined,
// session.left, session.state, bridge.call.failed), context.changed, and
// what peers publish.
type Event struct {
	Topic string          `json:"topic"`
	Data  json.RawMessage `json:"data"`
	At    time.Time       `json:"at"`
}

// watcher is one Watch channel.
type watcher struct {
	ch      chan Event
	dropped int
}

// Watch returns a channel that receives every event published from now on,
// and a function that stops it (safe to call twice). An event that does
// not fit the channel's buffer is dropped for this watcher, never waited
// for. Safe for concurrent use.
func (r *Router) Watch(buffer int) (events <-chan Event, stop func()) {
	w := &watcher{ch: make(chan Event, buffer)}
	r.mu.Lock()
	r.watchers = append(r.watchers, w)
	r.unlock()
	return w.ch, func() {
		r.mu.Lock()
		defer r.unlock()
		if i := slices.Index(r.watchers, w); i >= 0 {
			r.watchers = slices.Delete(r.watchers, i, i+1)
			close(w.ch)
		}
	}
}

// notifyWatchers hands an event to every watcher; r.mu is held.
func (r *Router) notifyWatchers(topic string, data json.RawMessage, at time.Time) {
	for _, w := range r.watchers {
		select {
		case w.ch <- Event{Topic: topic, Data: data, At: at}:
		default:
			w.dropped++
		}
	}
}

// CallInfo describes a call in flight.
type CallInfo struct {
	ID       string    `json:"id"` // the forwarded id
	Method   string    `json:"method"`
	App      string    `json:"app"`
	Caller   string    `json:"caller"`           // app/instance of the caller, "http", or "bridge"
	Target   string    `json:"target,omitempty"` // meta.target
	Callee   string    `json:"callee,omitempty"` // the instance it was sent to
	State    string    `json:"state"`            // waiting, queued, written, parked
	Attempt  int       `json:"attempt"`
	Started  time.Time `json:"started"`
	AgeMS    int64     `json:"age_ms"`
	Timeout  int64     `json:"timeout_ms"`
	Deadline time.Time `json:"deadline"`
}

// Calls lists the calls in flight, oldest first.
func (r *Router) Calls() []CallInfo {
	r.mu.Lock()
	defer r.unlock()
	now := r.clock.Now()
	list := make([]CallInfo, 0, len(r.calls))
	for _, cl := range r.calls {
		ci := CallInfo{
			ID: cl.fid, Method: cl.method, App: cl.app, Target: cl.target, Attempt: cl.attempt,
			Started: cl.started.UTC(), AgeMS: now.Sub(cl.started).Milliseconds(),
			Timeout: cl.timeout.Milliseconds(), Deadline: cl.started.Add(cl.timeout).UTC(),
			Caller: "bridge", State: "waiting",
		}
		if c := cl.caller; c != nil {
			ci.Caller = c.app
			if c.instance != "" {
				ci.Caller += "/" + c.instance
			}
		}
		if s := cl.callee; s != nil {
			ci.Callee = s.caller.instance
			switch {
			case s.reconnecting:
				ci.State = "parked"
			case cl.written():
				ci.State = "written"
			default:
				ci.State = "queued"
			}
		}
		list = append(list, ci)
	}
	slices.SortFunc(list, func(a, b CallInfo) int { return a.Started.Compare(b.Started) })
	return list
}
