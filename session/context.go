package session

import (
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/dccbridge/dccbridge/rpc"
)

// contextStore keeps the contexts pushed with bridge.context, per app and
// per app instance. It is bounded: a context is forgotten once it has not
// been pushed for the retention and no session of its app (or instance) is
// connected, and beyond max entries the oldest of those without a session
// go first. Guarded by Router.mu.
type contextStore struct {
	entries   map[string]*storedContext // by app, or sessionKey(app, instance)
	retention time.Duration
	max       int
}

type storedContext struct {
	app, instance string
	value         json.RawMessage
	pushed        time.Time
}

func newContextStore(retention time.Duration, max int) contextStore {
	return contextStore{entries: map[string]*storedContext{}, retention: retention, max: max}
}

func contextKey(app, instance string) string {
	if instance == "" {
		return app
	}
	return sessionKey(app, instance)
}

// get returns the stored context of app's instance, else of app, else {}.
func (cs *contextStore) get(app, instance string) json.RawMessage {
	if c, ok := cs.entries[sessionKey(app, instance)]; ok {
		return c.value
	}
	if c, ok := cs.entries[app]; ok {
		return c.value
	}
	return json.RawMessage("{}")
}

// set stores value for app (instance empty: the whole app, replacing what
// its instances were given) and forgets what is stale; present tells
// whether a session of an app or instance is connected.
func (cs *contextStore) set(app, instance string, value json.RawMessage, present func(app, instance string) bool) {
	now := time.Now()
	cs.entries[contextKey(app, instance)] = &storedContext{app: app, instance: instance, value: value, pushed: now}
	var idle []string // those with no session, not yet stale
	for key, c := range cs.entries {
		switch {
		case instance == "" && c.app == app && c.instance != "":
			delete(cs.entries, key) // the app's context replaces its instances'
		case present(c.app, c.instance):
		case now.Sub(c.pushed) >= cs.retention:
			delete(cs.entries, key)
		default:
			idle = append(idle, key)
		}
	}
	if over := len(cs.entries) - cs.max; over > 0 {
		slices.SortFunc(idle, func(a, b string) int { return cs.entries[a].pushed.Compare(cs.entries[b].pushed) })
		for _, key := range idle[:min(over, len(idle))] {
			delete(cs.entries, key)
		}
	}
}

// ContextResult is the result of bridge.context when it pushes a context:
// the context stored, and each host session's answer to set_context.
type ContextResult struct {
	App      string          `json:"app"`
	Instance string          `json:"instance,omitempty"`
	Context  json.RawMessage `json:"context"`
	Sessions []ContextTaker  `json:"sessions"`
}

// ContextTaker is one host session's answer to set_context.
type ContextTaker struct {
	Session  string          `json:"session"`
	Instance string          `json:"instance"`
	OK       bool            `json:"ok"`
	Error    json.RawMessage `json:"error,omitempty"`
}

// contextCall handles bridge.context: without "context" it reads the
// stored context; with it, it stores it, calls set_context on every
// matching host session that offers it, publishes context.changed, and
// replies once every host has answered; r.mu is held.
func (r *Router) contextCall(c *caller, m *rpc.Message, reply func(any, *rpc.Error)) {
	var p struct {
		App     string          `json:"app"`
		Target  string          `json:"target"`
		Context json.RawMessage `json:"context"`
	}
	if e := decodeParams(m.Params, &p); e != nil {
		reply(nil, e)
		return
	}
	app := strings.ToLower(p.App)
	if app == "" {
		reply(nil, rpc.Errorf(rpc.CodeInvalidParams, `invalid params: "app" is required`))
		return
	}
	if p.Context == nil || string(p.Context) == "null" {
		reply(map[string]any{"app": app, "instance": p.Target, "context": r.contexts.get(app, p.Target)}, nil)
		return
	}
	if p.Context[0] != '{' {
		reply(nil, rpc.Errorf(rpc.CodeInvalidParams, `invalid params: "context" must be an object, e.g. {"project":"P","folder":"/shots/sh010","task":"comp"}`))
		return
	}
	meta, e := parseMeta(m.Meta)
	if e != nil {
		reply(nil, e)
		return
	}
	r.contexts.set(app, p.Target, p.Context, r.registry.present)
	r.publish(c.session, "context.changed", map[string]any{"app": app, "instance": p.Target, "context": p.Context})

	full := app + ".set_context"
	var hosts []*Session
	for _, s := range r.registry.offers[full] {
		// A busy host is included: its set_context waits until it is free.
		if (s.healthy() || s.state() == StateBusy) && s.kind == "host" && s.app == app && (p.Target == "" || s.instance == p.Target) {
			hosts = append(hosts, s)
		}
	}
	result := ContextResult{App: app, Instance: p.Target, Context: p.Context, Sessions: make([]ContextTaker, len(hosts))}
	if len(hosts) == 0 {
		reply(result, nil)
		return
	}
	left := len(hosts)
	timeout := msDuration(meta.TimeoutMS, r.opts.ContextTimeout)
	for i, s := range hosts {
		result.Sessions[i] = ContextTaker{Session: s.id, Instance: s.instance}
		r.start(&call{
			method:  full,
			app:     app,
			params:  p.Context,
			by:      c,
			target:  s.instance,
			timeout: timeout,
			wait:    timeout,
			out: sinkFunc(func(frame []byte) {
				items, _ := rpc.Decode(frame)
				if msg := items[0].Msg; msg != nil && msg.Result != nil {
					result.Sessions[i].OK = true
				} else if msg != nil {
					result.Sessions[i].Error = msg.Error
				}
				if left--; left == 0 {
					reply(result, nil)
				}
			}),
		}) // to s (the session of app with that instance), now or when it is free
	}
}
