package session

import (
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/dccbridge/dccbridge/rpc"
)

// Events: sessions subscribe to topics and get bridge.event notifications;
// in-process observers (the status page) Watch every event. The bridge's
// own topics are session.joined, session.left, session.state,
// bridge.call.failed and context.changed.

// topicMatches reports whether topic matches pattern: the same topic, a
// prefix ending in ".*" ("session.*" matches "session.joined"), or "*".
func topicMatches(pattern, topic string) bool {
	if prefix, ok := strings.CutSuffix(pattern, "*"); ok && (prefix == "" || strings.HasSuffix(prefix, ".")) {
		return strings.HasPrefix(topic, prefix)
	}
	return pattern == topic
}

// subscribe adds (or removes) topic patterns of s; r.mu is held.
func (r *Router) subscribe(s *Session, raw json.RawMessage, add bool) (any, *rpc.Error) {
	var p struct {
		Topics []string `json:"topics"`
	}
	if e := decodeParams(raw, &p); e != nil {
		return nil, e
	}
	if len(p.Topics) == 0 {
		return nil, rpc.Errorf(rpc.CodeInvalidParams, `invalid params: "topics" must list at least one topic, e.g. ["session.*", "context.changed"]`)
	}
	for _, t := range p.Topics {
		if t == "" || (strings.Contains(t, "*") && !topicMatches(t, t+"x")) {
			return nil, rpc.Errorf(rpc.CodeInvalidParams, "invalid params: topic %q: use an exact topic or a prefix ending in .*", t)
		}
		if add && !slices.Contains(s.topics, t) {
			s.topics = append(s.topics, t)
		}
		if !add {
			s.topics = slices.DeleteFunc(s.topics, func(x string) bool { return x == t })
		}
	}
	if len(s.topics) > 0 {
		r.registry.subscribers[s] = struct{}{}
	} else {
		delete(r.registry.subscribers, s)
	}
	return map[string]any{"topics": append([]string{}, s.topics...)}, nil
}

// publishCall handles bridge.publish from s (nil for POST /rpc); r.mu is held.
func (r *Router) publishCall(s *Session, raw json.RawMessage) (any, *rpc.Error) {
	var p struct {
		Topic string          `json:"topic"`
		Data  json.RawMessage `json:"data"`
	}
	if e := decodeParams(raw, &p); e != nil {
		return nil, e
	}
	switch {
	case p.Topic == "" || strings.Contains(p.Topic, "*"):
		return nil, rpc.Errorf(rpc.CodeInvalidParams, `invalid params: "topic" must be a topic name without wildcards`)
	case strings.HasPrefix(p.Topic, "session.") || strings.HasPrefix(p.Topic, "bridge.") || p.Topic == "context.changed":
		// context.changed too: panels trust it as the stored context, which
		// only bridge.context changes.
		return nil, rpc.Errorf(rpc.CodeInvalidParams, "invalid params: topic %q is the bridge's own (session.*, bridge.*, context.changed; push context with bridge.context)", p.Topic)
	}
	return map[string]int{"delivered": r.publish(s, p.Topic, p.Data)}, nil
}

// publish sends bridge.event to every session subscribed to topic except
// from, and returns how many got it. An event that does not fit a session's
// queue, or is for a busy session, is dropped for it and counted. r.mu is
// held.
func (r *Router) publish(from *Session, topic string, data any) int {
	at := time.Now()
	raw, ok := data.(json.RawMessage)
	if !ok || raw == nil {
		raw, _ = json.Marshal(data)
	}
	r.notifyWatchers(topic, raw, at)
	var frame []byte
	delivered := 0
	for s := range r.registry.subscribers {
		if s == from || !slices.ContainsFunc(s.topics, func(p string) bool { return topicMatches(p, topic) }) {
			continue
		}
		if s.busy { // nothing new is written to a busy session
			s.dropEvent()
			continue
		}
		if frame == nil {
			frame = eventFrame(topic, raw, at)
		}
		if s.push(outFrame{data: frame}, classEvent) {
			delivered++
		}
	}
	return delivered
}

func eventFrame(topic string, raw json.RawMessage, at time.Time) []byte {
	params := append([]byte(`{"topic":`), rpc.AppendString(nil, topic)...)
	params = append(append(params, `,"data":`...), raw...)
	params = append(append(params, `,"at":`...), rpc.AppendString(nil, at.UTC().Format("2006-01-02T15:04:05.000Z07:00"))...)
	return rpc.AppendRequest(nil, nil, "bridge.event", append(params, '}'), nil)
}

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
