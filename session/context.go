package session

import (
	"encoding/json"
	"strings"

	"github.com/dccbridge/dccbridge/rpc"
)

// contextFor returns the stored context of app's instance, else of app,
// else {}; r.mu is held.
func (r *Router) contextFor(app, instance string) json.RawMessage {
	if c, ok := r.contexts[sessionKey(app, instance)]; ok {
		return c
	}
	if c, ok := r.contexts[app]; ok {
		return c
	}
	return json.RawMessage("{}")
}

// contextTaker is one host session's answer to set_context.
type contextTaker struct {
	Session  string          `json:"session"`
	Instance string          `json:"instance"`
	OK       bool            `json:"ok"`
	Error    json.RawMessage `json:"error,omitempty"`
}

// contextCall handles bridge.context (DESIGN §3.7): without "context" it
// reads the stored context; with it, it stores it, calls set_context on
// every matching host session that offers it, publishes context.changed,
// and replies once every host has answered; r.mu is held.
func (r *Router) contextCall(c *caller, m *rpc.Message, out sink, reply func(any, *rpc.Error)) {
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
		reply(map[string]any{"app": app, "instance": p.Target, "context": r.contextFor(app, p.Target)}, nil)
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
	if p.Target == "" {
		// The app's context replaces what its instances were given before.
		for key := range r.contexts {
			if strings.HasPrefix(key, sessionKey(app, "")) {
				delete(r.contexts, key)
			}
		}
		r.contexts[app] = p.Context
	} else {
		r.contexts[sessionKey(app, p.Target)] = p.Context
	}
	r.publish(c.session, "context.changed", map[string]any{"app": app, "instance": p.Target, "context": p.Context})

	full := app + ".set_context"
	var hosts []*Session
	for _, s := range r.offers[full] {
		// A busy host is included: its set_context waits until it is free.
		if (s.healthy() || s.state() == StateBusy) && s.kind == "host" && s.caller.app == app && (p.Target == "" || s.caller.instance == p.Target) {
			hosts = append(hosts, s)
		}
	}
	result := struct {
		App      string          `json:"app"`
		Instance string          `json:"instance,omitempty"`
		Context  json.RawMessage `json:"context"`
		Sessions []contextTaker  `json:"sessions"`
	}{App: app, Instance: p.Target, Context: p.Context, Sessions: make([]contextTaker, len(hosts))}
	if len(hosts) == 0 {
		reply(result, nil)
		return
	}
	left := len(hosts)
	for i, s := range hosts {
		result.Sessions[i] = contextTaker{Session: s.id, Instance: s.caller.instance}
		cl := &call{
			fid:     r.nextID("c"),
			method:  full,
			app:     app,
			params:  p.Context,
			by:      c,
			target:  s.caller.instance,
			timeout: msDuration(meta.TimeoutMS, r.opts.ContextTimeout),
			wait:    msDuration(meta.TimeoutMS, r.opts.ContextTimeout),
			started: r.clock.Now(),
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
		}
		r.start(cl) // to s (the session of app with that instance), now or when it is free
	}
}
