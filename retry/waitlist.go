package retry

import "time"

// Waitlist holds items until their owner takes them (Wake, when a registry
// event may have satisfied them) or their wait runs out (expire is called).
// Nothing polls: items leave on events or on their own timer.
//
// A Waitlist is not safe for concurrent use: its owner guards it with its
// own lock. expire runs in a timer goroutine, so it must take that lock and
// then call Remove, which reports whether the item was still waiting (it may
// have been taken in the meantime).
type Waitlist[T comparable] struct {
	clock Clock
	items map[T]Timer
}

// NewWaitlist returns an empty Waitlist timed by clock (nil: RealClock).
func NewWaitlist[T comparable](clock Clock) *Waitlist[T] {
	if clock == nil {
		clock = RealClock{}
	}
	return &Waitlist[T]{clock: clock, items: map[T]Timer{}}
}

// Add holds item for at most wait; expire(item) is called when it runs out.
// Adding an item already held restarts its wait.
func (w *Waitlist[T]) Add(item T, wait time.Duration, expire func(T)) {
	if t, ok := w.items[item]; ok {
		t.Stop()
	}
	w.items[item] = w.clock.AfterFunc(wait, func() { expire(item) })
}

// Remove takes item off the list and stops its timer; it reports whether
// the item was held.
func (w *Waitlist[T]) Remove(item T) bool {
	t, ok := w.items[item]
	if ok {
		t.Stop()
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
	for item, t := range w.items {
		if take(item) {
			t.Stop()
			delete(w.items, item)
		}
	}
}
