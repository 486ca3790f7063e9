package session

import (
	"cmp"
	"encoding/json"
	"slices"
	"time"

	"github.com/coder/websocket"
)

// healthy reports whether s may be given new calls; r.mu is held.
// A session the bridge is closing (slow reader, protocol violation, bad
// token) takes nothing new.
func (s *Session) healthy() bool {
	code, _ := s.closeStatus()
	return !s.gone && code == 0 && s.state() == StateConnected
}

// state returns s's state; r.mu is held. Until the resume work lands a
// session is connected for as long as it is registered.
func (s *Session) state() State { return StateConnected }

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

// remove takes s out of the registry and settles its calls, both those it
// made and those forwarded to it. Safe to call twice.
func (r *Router) remove(s *Session) {
	r.mu.Lock()
	defer r.unlock()
	r.unregister(s)
}

// unregister is remove with r.mu held.
func (r *Router) unregister(s *Session) {
	if s.gone {
		return
	}
	s.gone = true
	delete(r.sessions, s.id)
	if s.helloed && r.byKey[sessionKey(s.caller.app, s.caller.instance)] == s {
		delete(r.byKey, sessionKey(s.caller.app, s.caller.instance))
	}
	r.setOffer(s, nil, nil)
	s.queue.retire() // its writer may still run (a replaced session): it writes none of its calls from now on
	code, _ := s.closeStatus()
	r.calleeGone(s, code == websocket.StatusPolicyViolation)
	r.callerGone(&s.caller)
	if s.helloed {
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
		InFlight:      len(s.assigned),
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
	Sessions int    `json:"sessions"`
	Calls    uint64 `json:"calls"`
	Failed   uint64 `json:"failed"`
	Uptime   string `json:"uptime"`
}

// Stats returns the running totals.
func (r *Router) Stats() Stats {
	r.mu.Lock()
	defer r.unlock()
	st := r.stats
	st.Sessions = len(r.sessions)
	st.Uptime = time.Since(r.started).Round(time.Second).String()
	return st
}
