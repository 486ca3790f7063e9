package retry

import (
	"sync"
	"time"
)

// Waitlist holds items until their owner takes them (Wake, when a registry
// event may have satisfied them) or their wait runs out (expire is called).
// Nothing polls: items leave on events or on their own timer.
//
// The owner guards the Waitlist with its own lock, given to NewWaitlist:
// every method must be called with it held. When a wait runs out, the
// Waitlist takes that lock, and only if the item is still held by that very
// wait (not taken, removed or added again since) removes it and calls
// expire, with the lock held.
type Waitlist[T comparable] struct {
	clock Clock
	mu    sync.Locker
	gen   uint64
	items map[T]waiting
}

// waiting is one held item: its timer, and which Add made it.
type waiting struct {
	timer Timer
	gen   uint64
}

// NewWaitlist returns an empty Waitlist timed by clock (nil: RealClock) and
// guarded by mu.
func NewWaitlist[T comparable](clock Clock, mu sync.Locker) *Waitlist[T] {
	if clock == nil {
		clock = RealClock{}
	}
	return &Waitlist[T]{clock: clock, mu: mu, items: map[T]waiting{}}
}

// Add holds item for at most wait; expire(item) is called, with the lock
// held, when it runs out. Adding an item already held restarts its wait.
func (w *Waitlist[T]) Add(item T, wait time.Duration, expire func(T)) {
	w.Remove(item)
	w.gen++
	gen := w.gen
	w.items[item] = waiting{gen: gen, timer: w.clock.AfterFunc(wait, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		if h, ok := w.items[item]; ok && h.gen == gen {
			delete(w.items, item)
			expire(item)
		}
	})}
}

// Remove takes item off the list and stops its timer; it reports whether
// the item was held.
func (w *Waitlist[T]) Remove(item T) bool {
	h, ok := w.items[item]
	if ok {
		h.timer.Stop()
		delete(w.items, item)
	}
	return ok
}

// Has reports whether item is held.
func (w *Waitlist[T]) Has(item T) bool {
	_, ok := w.items[item]
	return ok
}

// Len returns how many items are held.
func (w *Waitlist[T]) Len() int { return len(w.items) }

// Wake offers every held item to take; those it accepts leave the list.
// take must not call the Waitlist's methods.
func (w *Waitlist[T]) Wake(take func(T) bool) {
	for item, h := range w.items {
		if take(item) {
			h.timer.Stop()
			delete(w.items, item)
		}
	}
}
