package session

import (
	"crypto/subtle"
	"encoding/json"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/dccbridge/dccbridge/rpc"
)

// builtin answers a call in the bridge namespace; r.mu is held.
func (r *Router) builtin(c *caller, m *rpc.Message, out sink) {
	reply := func(result any, e *rpc.Error) {
		if m.IsNotification() {
			return
		}
		if e != nil {
			out.deliver(rpc.AppendError(nil, m.ID, e))
			return
		}
		b, err := json.Marshal(result)
		if err != nil {
			out.deliver(rpc.AppendError(nil, m.ID, rpc.Errorf(rpc.CodeInternalError, "Internal error: %v", err)))
			return
		}
		out.deliver(rpc.AppendResult(nil, m.ID, b, nil))
	}
	s := c.session
	name := m.Method[len("bridge."):]
	switch name {
	case "hello", "register", "unregister", "subscribe", "unsubscribe":
		if s == nil {
			reply(nil, rpc.Errorf(rpc.CodeMethodNotFound, "method not found: %s needs a websocket session (connect to /ws)", m.Method))
			return
		}
	}
	switch name {
	case "hello":
		if _, inBatch := out.(*batchReplies); inBatch {
			// Its result must precede any re-sent call; in a batch it
			// would wait for the other members.
			reply(nil, rpc.Errorf(rpc.CodeInvalidRequest, "Invalid Request: send bridge.hello alone, not in a batch"))
			return
		}
		r.hello(s, m, reply)
	case "register", "unregister":
		reply(r.register(s, m.Params, name == "register"))
	case "ping":
		reply(map[string]any{"pong": true, "time": time.Now().UTC().Format(time.RFC3339Nano)}, nil)
	case "sessions":
		var p struct {
			App string `json:"app"`
		}
		if e := decodeParams(m.Params, &p); e != nil {
			reply(nil, e)
			return
		}
		reply(r.sessionList(strings.ToLower(p.App)), nil)
	case "subscribe", "unsubscribe":
		reply(r.subscribe(s, m.Params, name == "subscribe"))
	case "publish":
		reply(r.publishCall(s, m.Params))
	case "context":
		r.contextCall(c, m, reply)
	default:
		reply(nil, rpc.Errorf(rpc.CodeMethodNotFound, "method not found: %s is not a bridge built-in (hello, register, unregister, ping, sessions, subscribe, unsubscribe, publish, context)", m.Method))
	}
}

// decodeParams decodes named params into v; absent params leave v as is.
func decodeParams(raw json.RawMessage, v any) *rpc.Error {
	if raw == nil {
		return nil
	}
	if raw[0] != '{' {
		return rpc.Errorf(rpc.CodeInvalidParams, "invalid params: give named params (an object)")
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return rpc.Errorf(rpc.CodeInvalidParams, "invalid params: %v", err)
	}
	return nil
}

type helloParams struct {
	App      string   `json:"app"`
	Kind     string   `json:"kind"`
	Instance string   `json:"instance"`
	Boot     string   `json:"boot"`
	Label    string   `json:"label"`
	Version  string   `json:"version"`
	Methods  []string `json:"methods"`
	Replay   bool     `json:"replay"`
	Token    string   `json:"token"`
}

// hello identifies s: app, instance, boot, what it offers; it resumes or
// replaces an earlier session of the same instance. r.mu is held.
func (r *Router) hello(s *Session, m *rpc.Message, reply func(any, *rpc.Error)) {
	var p helloParams
	if e := decodeParams(m.Params, &p); e != nil {
		reply(nil, e)
		return
	}
	if code, _ := s.closeStatus(); code != 0 {
		reply(nil, rpc.Errorf(rpc.CodeOverloaded, "overloaded: this connection is being closed; connect again"))
		return
	}
	if !s.authorized {
		if r.opts.Token == "" || subtle.ConstantTimeCompare([]byte(p.Token), []byte(r.opts.Token)) != 1 {
			r.logLocked(slog.LevelWarn, "hello refused: bad or missing token", "session", s.id, "remote", s.remote, "app", p.App)
			reply(nil, rpc.Errorf(rpc.CodeUnauthorized, "unauthorized: bad or missing token (%s)", r.tokenHint()))
			s.closeAfterFlush(ClosePolicyViolation, "unauthorized")
			return
		}
		s.authorized = true
	}
	app := strings.ToLower(p.App)
	switch {
	case app == "":
		reply(nil, rpc.Errorf(rpc.CodeInvalidParams, `invalid params: "app" is required (e.g. "aftereffects")`))
		return
	case app == "bridge" || strings.ContainsAny(app, ". $"):
		reply(nil, rpc.Errorf(rpc.CodeInvalidParams, `invalid params: "app" %q is reserved or contains '.', '$' or a space`, p.App))
		return
	}
	switch p.Kind {
	case "":
		p.Kind = "host"
	case "host", "tool", KindSkyHook, KindUnrealRemote:
	default:
		reply(nil, rpc.Errorf(rpc.CodeInvalidParams, `invalid params: "kind" must be "host" or "tool", not %q`, p.Kind))
		return
	}
	offer, methods, e := parseOffer(app, p.Methods)
	if e != nil {
		reply(nil, e)
		return
	}
	if p.Instance == "" {
		_, p.Instance = r.next("i")
	}
	if !s.helloed && r.registry.instance(app, p.Instance) == nil && r.registry.live >= r.opts.MaxSessions {
		// A new instance beyond the cap; one that resumes or replaces its
		// own session is always let in.
		msg := "too many sessions (max " + strconv.Itoa(r.opts.MaxSessions) + ")"
		r.logLocked(slog.LevelWarn, "hello refused: "+msg, "session", s.id, "remote", s.remote, "app", app)
		reply(nil, rpc.Errorf(rpc.CodeOverloaded, "overloaded: %s; try again later", msg))
		s.closeAfterFlush(CloseTryAgainLater, msg)
		return
	}
	if s.helloed {
		r.registry.unname(s)
		r.registry.setOffer(s, nil, nil)
	}
	s.boot, s.replay = p.Boot, p.Replay
	resumed, pending, afterReply := false, 0, func() {}
	if old := r.registry.instance(app, p.Instance); old != nil && old != s {
		msg := "instance back on a new connection"
		if !old.reconnecting {
			msg = "session replaced by a new connection of the same instance"
		}
		r.logLocked(slog.LevelInfo, msg, "app", app, "instance", p.Instance, "old", old.id, "new", s.id,
			"old_state", old.state(), "same_boot", old.boot == p.Boot)
		resumed, pending, afterReply = r.takeOver(old, s, methods)
	}
	// s takes its identity and offer only now, so that nothing the old
	// connection had is sent here before the hello result.
	if !s.helloed {
		r.greeting.Remove(s)
		r.registry.helloed(s)
	}
	s.helloed = true
	s.app, s.instance = app, p.Instance
	s.identity.meta = []byte(`{"app":` + strconv.Quote(app) + `,"instance":` + strconv.Quote(p.Instance) + `}`)
	s.answerMeta = []byte(`{"app":` + strconv.Quote(app) + `,"instance":` + strconv.Quote(p.Instance) + `,"session":` + strconv.Quote(s.id) + `}`)
	s.kind, s.label, s.version = p.Kind, p.Label, p.Version
	r.registry.setOffer(s, offer, methods)
	r.registry.name(s)
	r.logLocked(slog.LevelInfo, "session joined", "session", s.id, "app", app, "kind", p.Kind, "instance", p.Instance,
		"label", p.Label, "version", p.Version, "methods", len(offer), "remote", s.remote, "resumed", resumed, "pending", pending)
	reply(map[string]any{
		"session":      s.id,
		"bridge":       r.opts.Version,
		"heartbeat_ms": r.opts.HeartbeatInterval.Milliseconds(),
		"resumed":      resumed,
		"pending":      pending,
		"instance":     p.Instance,
		"context":      r.contexts.get(app, p.Instance),
	}, nil)
	afterReply()
	r.publish(nil, "session.joined", r.info(s))
	r.wakeWaiting()
}

// parseOffer turns method names as offered into full names: a plain name
// is app.name; a dotted name is a full name whose namespace is case-folded.
func parseOffer(app string, names []string) (offer []string, methods map[string]string, e *rpc.Error) {
	methods = make(map[string]string, len(names))
	for _, name := range names {
		full := app + "." + name
		if strings.Contains(name, ".") {
			var ok bool
			if _, full, ok = splitMethod(name); !ok {
				return nil, nil, rpc.Errorf(rpc.CodeInvalidParams, "invalid params: method %q has an empty namespace or name", name)
			}
		}
		if name == "" || strings.HasPrefix(full, "bridge.") || strings.HasPrefix(name, "$") {
			return nil, nil, rpc.Errorf(rpc.CodeInvalidParams, "invalid params: method %q is empty or reserved (bridge.*, $/*)", name)
		}
		if _, dup := methods[full]; !dup {
			offer = append(offer, full)
		}
		methods[full] = name
	}
	return offer, methods, nil
}

// register adds to (or, with add false, removes from) what s offers;
// r.mu is held.
func (r *Router) register(s *Session, raw json.RawMessage, add bool) (any, *rpc.Error) {
	var p struct {
		Methods []string `json:"methods"`
	}
	if e := decodeParams(raw, &p); e != nil {
		return nil, e
	}
	if !s.helloed {
		return nil, rpc.Errorf(rpc.CodeInvalidParams, "invalid params: say bridge.hello (with your app) before registering methods")
	}
	offer, methods, e := parseOffer(s.app, p.Methods)
	if e != nil {
		return nil, e
	}
	newOffer := []string{}
	newMethods := map[string]string{}
	for _, full := range s.offer {
		if _, listed := methods[full]; add || !listed {
			newOffer = append(newOffer, full)
			newMethods[full] = s.methods[full]
		}
	}
	if add {
		for _, full := range offer {
			if _, had := newMethods[full]; !had {
				newOffer = append(newOffer, full)
			}
			newMethods[full] = methods[full]
		}
	}
	r.registry.setOffer(s, newOffer, newMethods)
	if add {
		r.wakeWaiting()
	}
	return map[string]any{"methods": newOffer}, nil
}
