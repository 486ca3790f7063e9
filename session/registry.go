package session

import (
	"cmp"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"time"
)

// pick returns the healthy session that should take a call to full: the one
// named by target, else the one with the most recent inbound message, or
// nil; r.mu is held.
func (r *Router) pick(full, target string) *Session {
	var best *Session
	for _, s := range r.offers[full] {
		if !s.healthy() || (target != "" && s.caller.instance != target) {
			continue
		}
		if best == nil || s.lastInbound.Load() > best.lastInbound.Load() {
			best = s
		}
	}
	return best
}

// offered reports whether any session, healthy or not, offers full (the
// given instance, if any); r.mu is held.
func (r *Router) offered(full, target string) bool {
	return slices.ContainsFunc(r.offers[full], func(s *Session) bool { return target == "" || s.caller.instance == target })
}

// appPresent reports whether a healthy session of namespace ns (the given
// instance, if any) is connected: a session of that app, or one offering a
// method in its namespace; r.mu is held.
func (r *Router) appPresent(ns, instance string) bool {
	for _, s := range r.sessions {
		if !s.helloed || !s.healthy() || (instance != "" && s.caller.instance != instance) {
			continue
		}
		if s.caller.app == ns {
			return true
		}
		for _, full := range s.offer {
			if n, _, _ := splitMethod(full); n == ns {
				return true
			}
		}
	}
	return false
}

// unavailable describes the sessions that offer full (as instance target,
// if given) but may not take calls now, e.g. `instance "ae-1" is busy`;
// r.mu is held.
func (r *Router) unavailable(full, target string) []string {
	var states []string
	for _, s := range r.offers[full] {
		if !s.healthy() && (target == "" || s.caller.instance == target) {
			states = append(states, fmt.Sprintf("instance %q is %s", s.caller.instance, s.state()))
		}
	}
	slices.Sort(states)
	return states
}

// setOffer replaces what s offers; r.mu is held.
func (r *Router) setOffer(s *Session, offer []string, methods map[string]string) {
	for _, full := range s.offer {
		r.offers[full] = slices.DeleteFunc(r.offers[full], func(o *Session) bool { return o == s })
		if len(r.offers[full]) == 0 {
			delete(r.offers, full)
		}
	}
	s.offer, s.methods = offer, methods
	for _, full := range offer {
		r.offers[full] = append(r.offers[full], s)
	}
}

func sessionKey(app, instance string) string { return app + "\x00" + instance }

// unregister takes s out of the registry for good and settles its calls:
// those it made are cancelled at their hosts, and those forwarded to it and
// written fail -32004 saying why (e.g. "dropped"); r.mu is held. Safe to
// call twice.
func (r *Router) unregister(s *Session, why string) {
	if s.gone {
		return
	}
	s.gone, s.reconnecting, s.busy = true, false, false
	stopTimer(&s.busyTimer)
	stopTimer(&s.resumeTimer)
	delete(r.sessions, s.id)
	if s.helloed && r.byKey[sessionKey(s.caller.app, s.caller.instance)] == s {
		delete(r.byKey, sessionKey(s.caller.app, s.caller.instance))
	}
	r.setOffer(s, nil, nil)
	s.queue.retire() // its writer may still run: it writes none of its calls from now on
	r.settleCallee(s, func(*call) bool { return false }, why)
	r.callerGone(&s.caller)
	s.held = nil
	if s.helloed {
		r.logLocked(slog.LevelInfo, "session left", "session", s.id, "app", s.caller.app, "instance", s.caller.instance, "why", why)
		r.publish(nil, "session.left", r.info(s))
	}
}

// SessionInfo is what bridge.sessions and /api/sessions say of a session.
type SessionInfo struct {
	Session       string          `json:"session"`
	App           string          `json:"app"`
	Kind          string          `json:"kind"`
	Instance      string          `json:"instance"`
	Boot          string          `json:"boot"`
	Label         string          `json:"label"`
	Version       string          `json:"version"`
	Methods       []string        `json:"methods"`
	State         State           `json:"state"`
	Remote        string          `json:"remote"`
	ConnectedAt   time.Time       `json:"connected_at"`
	LastSeen      time.Time       `json:"last_seen"`
	RTTMS         float64         `json:"rtt_ms"`
	InFlight      int             `json:"in_flight"`
	Parked        int             `json:"parked"`
	DroppedEvents int64           `json:"dropped_events"`
	Context       json.RawMessage `json:"context"`
}

// info describes s; r.mu is held.
func (r *Router) info(s *Session) SessionInfo {
	rtt := float64(s.rtt.Load()) / float64(time.Millisecond)
	parked := 0
	if s.reconnecting {
		parked = len(s.assigned)
	}
	return SessionInfo{
		Session:       s.id,
		App:           s.caller.app,
		Kind:          s.kind,
		Instance:      s.caller.instance,
		Boot:          s.boot,
		Label:         s.label,
		Version:       s.version,
		Methods:       append([]string{}, s.offer...),
		State:         s.state(),
		Remote:        s.remote,
		ConnectedAt:   s.connectedAt.UTC(),
		LastSeen:      time.Unix(0, s.lastInbound.Load()).UTC(),
		RTTMS:         float64(int64(rtt*1000)) / 1000,
		InFlight:      len(s.assigned) - parked,
		Parked:        parked,
		DroppedEvents: s.droppedEvents.Load(),
		Context:       r.contextFor(s.caller.app, s.caller.instance),
	}
}

// Sessions lists the sessions that have said hello, ordered by app, then
// instance.
func (r *Router) Sessions() []SessionInfo {
	r.mu.Lock()
	defer r.unlock()
	return r.sessionList("")
}

// sessionList lists the helloed sessions, of app only if app is not empty;
// r.mu is held.
func (r *Router) sessionList(app string) []SessionInfo {
	list := []SessionInfo{}
	for _, s := range r.sessions {
		if s.helloed && (app == "" || s.caller.app == app) {
			list = append(list, r.info(s))
		}
	}
	slices.SortFunc(list, func(a, b SessionInfo) int {
		return cmp.Or(cmp.Compare(a.App, b.App), cmp.Compare(a.Instance, b.Instance), cmp.Compare(a.Session, b.Session))
	})
	return list
}

// Stats are the router's running totals.
type Stats struct {
	Started  time.Time `json:"started"`
	Uptime   string    `json:"uptime"`
	Sessions int       `json:"sessions"`  // reconnecting ones included
	InFlight int       `json:"in_flight"` // calls
	Calls    uint64    `json:"calls"`
	Failed   uint64    `json:"failed"`
	Resumes  uint64    `json:"resumes"` // hellos that resumed a session of the same boot
}

// Stats returns the running totals.
func (r *Router) Stats() Stats {
	r.mu.Lock()
	defer r.unlock()
	st := r.stats
	st.Started = r.started
	st.Uptime = r.clock.Now().Sub(r.started).Round(time.Second).String()
	st.Sessions = len(r.sessions)
	st.InFlight = len(r.calls)
	return st
}
