package retry

import (
	"slices"
	"sync"
	"time"
)

// Waitlist holds items until their owner takes them (Wake, when an event may
// have satisfied them) or their wait runs out (expire is called). Nothing
// polls: items leave on events or on their own timer.
//
// Items are ranked by the order given to Add, and Wake offers them in
// ascending order (items of equal order in the order they were added), so
// that calls leave in the order they were made.
//
// The owner guards the Waitlist with its own lock, given to NewWaitlist:
// every method must be called with it held. When a wait runs out, the
// Waitlist's timer takes that lock, and only if the item is still held by
// that very Add (not removed, taken by Wake, or added again since) removes
// it and calls expire, with the lock held.
type Waitlist[T comparable] struct {
	mu   sync.Locker
	gen  uint64 // counts Adds; an entry's gen tells a stale timer from its own
	held map[T]*entry[T]
	// queue is every held item's entry sorted by (order, gen), and entries
	// no longer held (gone) not yet swept out: Remove and expiry mark an
	// entry gone in O(1) and sweep when gone entries are half the queue;
	// Wake sweeps them all in the pass it makes anyway.
	queue []*entry[T]
	gone  int
}

// entry is one Add of an item.
type entry[T comparable] struct {
	item  T // zero once gone, so the queue does not keep it alive
	order uint64
	gen   uint64
	timer *time.Timer
	gone  bool
}

// NewWaitlist returns an empty Waitlist guarded by mu.
func NewWaitlist[T comparable](mu sync.Locker) *Waitlist[T] {
	return &Waitlist[T]{mu: mu, held: map[T]*entry[T]{}}
}

// Add holds item for at most wait; expire(item) is called, with the lock
// held and the item already off the list, when the wait runs out (only if
// the item is still held by this very Add: not removed, taken by Wake, or
// added again since). order ranks the item: Wake offers items in ascending
// order, and items of equal order in the order they were added. Adding an
// item already held restarts its wait and takes the new order. The lock is
// held.
func (w *Waitlist[T]) Add(item T, order uint64, wait time.Duration, expire func(T)) {
	if e, ok := w.held[item]; ok {
		w.release(e)
	}
	w.gen++
	e := &entry[T]{item: item, order: order, gen: w.gen}
	w.held[item] = e
	// e.gen is the largest yet, so e goes after every entry of its order:
	// at the end, for callers passing a growing sequence number.
	if n := len(w.queue); n == 0 || w.queue[n-1].order <= order {
		w.queue = append(w.queue, e)
	} else {
		i, _ := slices.BinarySearchFunc(w.queue, order, func(q *entry[T], order uint64) int {
			if q.order <= order {
				return -1
			}
			return 1
		})
		w.queue = slices.Insert(w.queue, i, e)
	}
	gen := e.gen
	// The callback takes the lock the caller holds, so it sees e.timer set.
	e.timer = time.AfterFunc(wait, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		if e, ok := w.held[item]; ok && e.gen == gen {
			w.release(e)
			w.tidy()
			expire(item)
		}
	})
	w.tidy()
}

// Remove takes item off the list and stops its timer; it reports whether
// the item was held. The lock is held.
func (w *Waitlist[T]) Remove(item T) bool {
	e, ok := w.held[item]
	if ok {
		w.release(e)
		w.tidy()
	}
	return ok
}

// Has reports whether item is held. The lock is held.
func (w *Waitlist[T]) Has(item T) bool {
	_, ok := w.held[item]
	return ok
}

// Len returns how many items are held. The lock is held.
func (w *Waitlist[T]) Len() int { return len(w.held) }

// First returns the held item that comes first in order (the oldest, for
// callers passing a growing sequence number), without taking it; ok is
// false when none is held. The lock is held.
func (w *Waitlist[T]) First() (item T, ok bool) {
	i := 0
	for i < len(w.queue) && w.queue[i].gone {
		i++
	}
	// Gone entries at the front are dropped for good: each is skipped once.
	w.queue, w.gone = w.queue[i:], w.gone-i
	if len(w.queue) == 0 {
		return item, false
	}
	return w.queue[0].item, true
}

// Wake offers the held items to take in ascending order; those it accepts
// leave the list and their timers are stopped, the others stay as they
// were. take must not call the Waitlist's methods. The lock is held.
func (w *Waitlist[T]) Wake(take func(T) bool) {
	// The queue does not change under take: taken entries are only marked
	// gone, and swept once the pass is over.
	for _, e := range w.queue {
		if !e.gone && take(e.item) {
			w.release(e)
		}
	}
	w.sweep()
}

// release takes e's item off the list and stops its timer, leaving e in the
// queue, marked gone.
func (w *Waitlist[T]) release(e *entry[T]) {
	e.timer.Stop()
	delete(w.held, e.item)
	var zero T
	e.item, e.gone = zero, true
	w.gone++
}

// tidy sweeps the queue when at least half of it is gone, so that sweeping
// costs O(1) per release, amortized.
func (w *Waitlist[T]) tidy() {
	if 2*w.gone >= len(w.queue) {
		w.sweep()
	}
}

// sweep drops the gone entries from the queue, keeping its order.
func (w *Waitlist[T]) sweep() {
	if w.gone == 0 {
		return
	}
	w.queue = slices.DeleteFunc(w.queue, func(e *entry[T]) bool { return e.gone })
	w.gone = 0
}
