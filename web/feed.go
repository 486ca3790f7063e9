package web

import (
	"encoding/json"
	"strings"
	"sync"
	"time"

	"github.com/dccbridge/dccbridge/session"
)

const (
	// feedSize is how many events the status page's log replays.
	feedSize = 200
	// feedWatchBuffer is the buffer of the feed's Router.Watch channel.
	feedWatchBuffer = 1024
	// feedSubBuffer is the buffer of one live subscriber; a subscriber that
	// falls this far behind is dropped (its EventSource reconnects and gets
	// the replay).
	feedSubBuffer = 256
)

// feedEvent is one event of the status page's log, numbered in the order
// the feed received it.
type feedEvent struct {
	Seq   uint64          `json:"seq"`
	Topic string          `json:"topic"`
	Data  json.RawMessage `json:"data"`
	At    time.Time       `json:"at"`
}

// feedSub is one live subscriber (an /api/events stream). Its channel is
// closed by the feed when the subscriber falls behind or the feed closes.
type feedSub struct {
	ch chan feedEvent
}

// feed keeps the last feedSize events of the kinds the status page shows
// (session.*, bridge.*, context.changed) and hands new ones to its live
// subscribers. One goroutine, started by newFeed and ended by close, reads
// the Router.Watch channel. Safe for concurrent use.
type feed struct {
	stop func()        // ends the Watch; its channel closes
	done chan struct{} // closed when the reading goroutine has returned

	mu     sync.Mutex
	ring   []feedEvent // the last feedSize events, oldest first from head
	head   int         // index of the oldest event once the ring is full
	seq    uint64
	subs   map[*feedSub]struct{}
	closed bool
}

// newFeed starts watching r.
func newFeed(r *session.Router) *feed {
	events, stop := r.Watch(feedWatchBuffer)
	f := &feed{stop: stop, done: make(chan struct{}), ring: make([]feedEvent, 0, feedSize), subs: map[*feedSub]struct{}{}}
	go func() {
		defer close(f.done)
		for ev := range events {
			if shown(ev.Topic) {
				f.add(ev)
			}
		}
	}()
	return f
}

// maxFeedData is the largest event data the feed keeps; larger data is
// replaced by {"truncated": true, "bytes": n}.
const maxFeedData = 64 << 10

// truncated keeps the small members of an object's data (app, instance,
// …) and marks it truncated; other data becomes only the marker.
func truncated(data json.RawMessage) json.RawMessage {
	kept := map[string]any{}
	var members map[string]json.RawMessage
	if json.Unmarshal(data, &members) == nil {
		for k, v := range members {
			if len(v) <= 1024 {
				kept[k] = v
			}
		}
	}
	kept["truncated"], kept["bytes"] = true, len(data)
	out, _ := json.Marshal(kept)
	return out
}

// shown reports whether the status page's log shows events of topic: the
// bridge's own and context changes, not what peers publish to each other.
func shown(topic string) bool {
	return strings.HasPrefix(topic, "session.") || strings.HasPrefix(topic, "bridge.") || topic == "context.changed"
}

// add records ev and hands it to the live subscribers; a subscriber whose
// buffer is full is dropped.
func (f *feed) add(ev session.Event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	data := ev.Data
	if len(data) > maxFeedData { // a huge context must not fill the ring and every page
		data = truncated(data)
	}
	fe := feedEvent{Seq: f.seq, Topic: ev.Topic, Data: data, At: ev.At.UTC()}
	if len(f.ring) < feedSize {
		f.ring = append(f.ring, fe)
	} else {
		f.ring[f.head] = fe
		f.head = (f.head + 1) % feedSize
	}
	for sub := range f.subs {
		select {
		case sub.ch <- fe:
		default:
			delete(f.subs, sub)
			close(sub.ch)
		}
	}
}

func (f *feed) recentLocked() []feedEvent {
	out := make([]feedEvent, 0, len(f.ring))
	out = append(out, f.ring[f.head:]...)
	return append(out, f.ring[:f.head]...)
}

// subscribe returns the events kept and a subscriber that receives every
// later one, with neither gap nor repeat; ok is false once the feed is
// closed. The caller must unsubscribe.
func (f *feed) subscribe() (replay []feedEvent, sub *feedSub, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, nil, false
	}
	sub = &feedSub{ch: make(chan feedEvent, feedSubBuffer)}
	f.subs[sub] = struct{}{}
	return f.recentLocked(), sub, true
}

// unsubscribe forgets sub; safe after the feed dropped it.
func (f *feed) unsubscribe(sub *feedSub) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.subs[sub]; ok {
		delete(f.subs, sub)
		close(sub.ch)
	}
}

// close stops watching, waits for the reading goroutine, and ends every
// subscriber (their streams return). Safe to call twice.
func (f *feed) close() {
	f.stop()
	<-f.done
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	for sub := range f.subs {
		delete(f.subs, sub)
		close(sub.ch)
	}
}
