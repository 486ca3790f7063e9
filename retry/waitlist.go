package retry

import (
	"slices"
	"sync"
	"time"
)

// Waitlist holds items until their owner takes them (Wake, when an event
// may have satisfied them) or their wait runs out (expire is called).
// Nothing polls: items leave on events or on their own timer. Items are
// kept in the order given to Add, so Wake offers them in that order.
//
// The owner guards the Waitlist with its own lock, given to NewWaitlist:
// every method must be called with it held. When a wait runs out, the
// Waitlist takes that lock, and only if the item is still held by that very
// Add (not taken, removed or added again since) removes it and calls
// expire, with the lock held.
type Waitlist[T comparable] struct {
	mu    sync.Locker
	gen   uint64
	items map[T]*waiting[T]
	order []*waiting[T] // by order, then gen; removed entries are compacted lazily
	dead  int           // removed entries still in order
}

// waiting is one held item: its rank, its timer, and which Add made it.
type waiting[T comparable] struct {
	item    T
	order   uint64
	gen     uint64
	timer   *time.Timer
	removed bool
}

// NewWaitlist returns an empty Waitlist guarded by mu.
func NewWaitlist[T comparable](mu sync.Locker) *Waitlist[T] {
	return &Waitlist[T]{mu: mu, items: map[T]*waiting[T]{}}
}

// Add holds item for at most wait; expire(item) is called, with the lock
// held, when it runs out. order ranks the item: Wake offers items in
// ascending order (callers pass a sequence number). Adding an item already
// held restarts its wait and takes the new order.
func (w *Waitlist[T]) Add(item T, order uint64, wait time.Duration, expire func(T)) {
	w.Remove(item)
	w.gen++
	h := &waiting[T]{item: item, order: order, gen: w.gen}
	w.items[item] = h
	i := len(w.order)
	if i > 0 && w.order[i-1].order > order {
		i, _ = slices.BinarySearchFunc(w.order, order, func(e *waiting[T], o uint64) int {
			if e.order <= o {
				return -1
			}
			return 1
		})
	}
	w.order = slices.Insert(w.order, i, h)
	h.timer = time.AfterFunc(wait, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.items[item] == h {
			w.drop(h)
			expire(item)
		}
	})
}

// drop takes h off the list and stops its timer.
func (w *Waitlist[T]) drop(h *waiting[T]) {
	h.timer.Stop()
	h.removed = true
	delete(w.items, h.item)
	w.dead++
	if w.dead > 32 && w.dead > len(w.order)/2 {
		w.order = slices.DeleteFunc(w.order, func(e *waiting[T]) bool { return e.removed })
		w.dead = 0
	}
}

// Remove takes item off the list and stops its timer; it reports whether
// the item was held.
func (w *Waitlist[T]) Remove(item T) bool {
	h, ok := w.items[item]
	if ok {
		w.drop(h)
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

// Wake offers every held item to take, in ascending order; those it
// accepts leave the list. take must not call the Waitlist's methods.
func (w *Waitlist[T]) Wake(take func(T) bool) {
	for _, h := range w.order {
		if !h.removed && take(h.item) {
			w.drop(h)
		}
	}
}
