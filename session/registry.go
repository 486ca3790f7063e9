package session

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// registry is who is connected and what they offer: every session by id
// (reconnecting ones included), the helloed ones by app and instance, and
// the sessions offering each full method name. Guarded by Router.mu.
type registry struct {
	sessions map[string]*Session   // by session id
	byKey    map[string]*Session   // by app + "\x00" + instance, after hello
	offers   map[string][]*Session // full method name → sessions offering it
	apps     map[string]int        // helloed sessions by app
	// subscribers are the sessions with at least one topic, so that an
	// event costs what its subscribers cost, not a scan of every session.
	subscribers map[*Session]struct{}
	unhelloed   int // connections that have not said hello yet
	live        int // helloed sessions with a connection (not reconnecting)
}

func newRegistry() registry {
	return registry{
		sessions: map[string]*Session{},
		byKey:    map[string]*Session{},
		offers:   map[string][]*Session{},
		apps:     map[string]int{},

		subscribers: map[*Session]struct{}{},
	}
}

func sessionKey(app, instance string) string { return app + "\x00" + instance }

// add registers a new connection, not helloed yet.
func (g *registry) add(s *Session) {
	g.sessions[s.id] = s
	g.unhelloed++
}

// helloed counts s, which has just said its first hello, as a session.
func (g *registry) helloed(s *Session) {
	g.unhelloed--
	g.live++
}

// remove takes s out for good: it offers nothing and is found by nothing.
func (g *registry) remove(s *Session) {
	if _, ok := g.sessions[s.id]; !ok {
		return
	}
	delete(g.sessions, s.id)
	delete(g.subscribers, s)
	switch {
	case !s.helloed:
		g.unhelloed--
	case !s.reconnecting:
		g.live--
	}
	g.unname(s)
	g.setOffer(s, nil, nil)
}

// disconnected notes that s lost its connection and waits to be resumed.
func (g *registry) disconnected(s *Session) { g.live-- }

// name files s under its app and instance (set by hello), replacing the
// session filed there before.
func (g *registry) name(s *Session) {
	g.byKey[sessionKey(s.app, s.instance)] = s
	g.apps[s.app]++
}

// unname undoes name, if s was named.
func (g *registry) unname(s *Session) {
	if !s.helloed {
		return
	}
	if g.byKey[sessionKey(s.app, s.instance)] == s {
		delete(g.byKey, sessionKey(s.app, s.instance))
	}
	if g.apps[s.app]--; g.apps[s.app] <= 0 {
		delete(g.apps, s.app)
	}
}

// present reports whether a session of app (and instance, if not empty)
// has said hello and not left.
func (g *registry) present(app, instance string) bool {
	if instance != "" {
		return g.byKey[sessionKey(app, instance)] != nil
	}
	return g.apps[app] > 0
}

// instance returns the session of app and instance, if any.
func (g *registry) instance(app, instance string) *Session {
	return g.byKey[sessionKey(app, instance)]
}

// all returns every session, in no particular order.
func (g *registry) all() []*Session {
	list := make([]*Session, 0, len(g.sessions))
	for _, s := range g.sessions {
		list = append(list, s)
	}
	return list
}

// setOffer replaces what s offers.
func (g *registry) setOffer(s *Session, offer []string, methods map[string]string) {
	for _, full := range s.offer {
		g.offers[full] = slices.DeleteFunc(g.offers[full], func(o *Session) bool { return o == s })
		if len(g.offers[full]) == 0 {
			delete(g.offers, full)
		}
	}
	s.offer, s.methods = offer, methods
	for _, full := range offer {
		g.offers[full] = append(g.offers[full], s)
	}
}

// pick returns the healthy session that should take a call to full: the
// one named by target, else the one with the most recent inbound message,
// or nil.
func (g *registry) pick(full, target string) *Session {
	var best *Session
	for _, s := range g.offers[full] {
		if !s.healthy() || (target != "" && s.instance != target) {
			continue
		}
		if best == nil || s.lastInbound.Load() > best.lastInbound.Load() {
			best = s
		}
	}
	return best
}

// offered reports whether any session, healthy or not, offers full (the
// given instance, if any).
func (g *registry) offered(full, target string) bool {
	return slices.ContainsFunc(g.offers[full], func(s *Session) bool { return target == "" || s.instance == target })
}

// appPresent reports whether a healthy session of namespace ns (the given
// instance, if any) is connected: a session of that app, or one offering a
// method in its namespace.
func (g *registry) appPresent(ns, instance string) bool {
	for _, s := range g.sessions {
		if !s.helloed || !s.healthy() || (instance != "" && s.instance != instance) {
			continue
		}
		if s.app == ns {
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
// if given) but may not take calls now, e.g. `instance "ae-1" is busy`.
func (g *registry) unavailable(full, target string) []string {
	var states []string
	for _, s := range g.offers[full] {
		if !s.healthy() && (target == "" || s.instance == target) {
			states = append(states, fmt.Sprintf("instance %q is %s", s.instance, s.state()))
		}
	}
	slices.Sort(states)
	return states
}

// SessionInfo is what bridge.sessions and /api/sessions say of a session,
// and the data of the session.* events.
type SessionInfo struct {
	Session       string          `json:"session"`
	App           string          `json:"app"`
	AppLabel      string          `json:"app_label,omitempty"` // the app's name for people, from the catalog
	Kind          string          `json:"kind"`
	Instance      string          `json:"instance"`
	Boot          string          `json:"boot"`
	Label         string          `json:"label"`
	Version       string          `json:"version"`
	Methods       []string        `json:"methods"`
	State         State           `json:"state"`
	Reason        string          `json:"reason,omitempty"` // why it left (session.left only)
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
	appLabel := ""
	if r.opts.Catalog != nil {
		appLabel = r.opts.Catalog.AppLabel(s.app)
	}
	return SessionInfo{
		Session:       s.id,
		App:           s.app,
		AppLabel:      appLabel,
		Kind:          s.kind,
		Instance:      s.instance,
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
		Context:       r.contexts.get(s.app, s.instance),
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
	for _, s := range r.registry.sessions {
		if s.helloed && (app == "" || s.app == app) {
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
	st.Uptime = time.Since(r.started).Round(time.Second).String()
	st.Sessions = len(r.registry.sessions)
	st.InFlight = len(r.calls.byFID)
	return st
}
