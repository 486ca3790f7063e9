package retry

import (
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// locker is the owner's lock; TryLock lets a callback check that it is held.
type locker interface {
	sync.Locker
	TryLock() bool
}

// chanLock is a mutex made of a channel, so that a goroutine waiting for it
// is durably blocked in a synctest bubble (one waiting on a sync.Mutex is
// not) and time can pass while it waits. waiters counts the goroutines in
// Lock.
type chanLock struct {
	ch      chan struct{}
	waiters atomic.Int32
}

func newChanLock() *chanLock { return &chanLock{ch: make(chan struct{}, 1)} }

func (l *chanLock) Lock() {
	l.waiters.Add(1)
	l.ch <- struct{}{}
	l.waiters.Add(-1)
}

func (l *chanLock) TryLock() bool {
	select {
	case l.ch <- struct{}{}:
		return true
	default:
		return false
	}
}

func (l *chanLock) Unlock() {
	select {
	case <-l.ch:
	default:
		panic("chanLock: Unlock of unlocked lock")
	}
}

// owner guards a Waitlist the way the doc comment asks: one lock, given to
// NewWaitlist and held around every call. It records what expired, when,
// and what expire saw: expire runs with the lock held and the item already
// gone, so it neither locks nor calls Remove.
type owner struct {
	mu       locker
	w        *Waitlist[string]
	seq      uint64 // the order of the next add, as the bridge numbers calls
	expired  []string
	at       []time.Time
	unlocked []string // items whose expire ran without the lock held
	present  []string // items still on the list inside their expire
}

// newOwner returns an owner guarded by mu.
func newOwner(mu locker) *owner {
	o := &owner{mu: mu}
	o.w = NewWaitlist[string](o.mu)
	return o
}

func (o *owner) expire(item string) {
	if o.mu.TryLock() {
		o.mu.Unlock()
		o.unlocked = append(o.unlocked, item)
		return // the records below are guarded by o.mu
	}
	o.expired = append(o.expired, item)
	o.at = append(o.at, time.Now())
	if o.w.Has(item) {
		o.present = append(o.present, item)
	}
}

// addLocked adds item with the next sequence number; o.mu is held.
func (o *owner) addLocked(item string, wait time.Duration) {
	o.seq++
	o.w.Add(item, o.seq, wait, o.expire)
}

func (o *owner) add(item string, wait time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.addLocked(item, wait)
}

func (o *owner) remove(item string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.w.Remove(item)
}

func (o *owner) has(item string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.w.Has(item)
}

func (o *owner) len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.w.Len()
}

// wake runs Wake, taking the items accept accepts; it returns what was
// offered and what was taken, in the order offered.
func (o *owner) wake(accept func(string) bool) (offered, taken []string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.w.Wake(func(item string) bool {
		offered = append(offered, item)
		if accept(item) {
			taken = append(taken, item)
			return true
		}
		return false
	})
	return offered, taken
}

func (o *owner) expiredItems() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.expired)
}

// checkExpireSaw fails t if an expire ran without the lock or found its
// item still on the list.
func (o *owner) checkExpireSaw(t *testing.T) {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.unlocked) != 0 {
		t.Errorf("expire ran without the owner's lock for %v", o.unlocked)
	}
	if len(o.present) != 0 {
		t.Errorf("expire found %v still held; the Waitlist must remove it first", o.present)
	}
}

func TestWaitlistExpires(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := newOwner(&sync.Mutex{})
		start := time.Now()
		o.add("a", 10*time.Second)

		time.Sleep(10*time.Second - time.Nanosecond)
		synctest.Wait()
		if got := o.expiredItems(); len(got) != 0 {
			t.Fatalf("expired %v before the wait ran out", got)
		}
		if !o.has("a") {
			t.Fatal(`Has("a") = false before expiry`)
		}

		time.Sleep(time.Nanosecond)
		synctest.Wait()
		if got := o.expiredItems(); !slices.Equal(got, []string{"a"}) {
			t.Fatalf("expired %v, want [a]", got)
		}
		if got := o.at[0].Sub(start); got != 10*time.Second {
			t.Errorf("expired after %v, want 10s", got)
		}
		if o.has("a") || o.len() != 0 {
			t.Errorf("after expiry: Has = %v, Len = %d; want false, 0", o.has("a"), o.len())
		}

		time.Sleep(time.Hour)
		synctest.Wait()
		if got := o.expiredItems(); len(got) != 1 {
			t.Errorf("expired %v, want exactly one call", got)
		}
		o.checkExpireSaw(t)
	})
}

// expire runs with the owner's lock held (its TryLock fails) and the item
// already off the list, for every item, however their waits interleave.
func TestWaitlistExpireHoldsLock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := newOwner(newChanLock())
		items := []string{"a", "b", "c", "d", "e"}
		for i, item := range items {
			o.add(item, time.Duration(len(items)-i)*time.Second) // e first
		}
		o.add("f", 3*time.Second) // expires with c
		time.Sleep(time.Minute)
		synctest.Wait()
		got := o.expiredItems()
		if len(got) != 6 {
			t.Fatalf("expired %v, want all six", got)
		}
		o.checkExpireSaw(t)
	})
}

func TestWaitlistRemoveBeforeExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := newOwner(&sync.Mutex{})
		o.add("a", 10*time.Second)
		o.add("b", 10*time.Second)
		time.Sleep(5 * time.Second)
		if !o.remove("a") {
			t.Error(`first Remove("a") = false, want true`)
		}
		if o.remove("a") {
			t.Error(`second Remove("a") = true, want false`)
		}
		if o.remove("never") {
			t.Error(`Remove("never") of an item never added = true`)
		}
		if o.has("a") || !o.has("b") || o.len() != 1 {
			t.Errorf("after Remove: Has(a, b) = %v, %v, Len = %d; want false, true, 1", o.has("a"), o.has("b"), o.len())
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if got := o.expiredItems(); !slices.Equal(got, []string{"b"}) {
			t.Errorf("expired %v, want [b] (a was removed)", got)
		}
	})
}

func TestWaitlistAddRestartsWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := newOwner(&sync.Mutex{})
		start := time.Now()
		o.add("a", 10*time.Second)
		time.Sleep(6 * time.Second)
		o.add("a", 10*time.Second) // now due at 16 s, not 10 s
		if o.len() != 1 {
			t.Errorf("Len = %d after adding the same item twice, want 1", o.len())
		}

		time.Sleep(6 * time.Second) // 12 s: the first wait would have run out
		synctest.Wait()
		if got := o.expiredItems(); len(got) != 0 {
			t.Fatalf("expired %v at 12s; the second Add should have restarted the wait", got)
		}

		time.Sleep(4 * time.Second)
		synctest.Wait()
		if got := o.expiredItems(); !slices.Equal(got, []string{"a"}) {
			t.Fatalf("expired %v, want [a]", got)
		}
		if got := o.at[0].Sub(start); got != 16*time.Second {
			t.Errorf("expired at %v, want 16s", got)
		}

		// A shorter second wait replaces a longer first one too.
		o.add("b", time.Hour)
		o.add("b", time.Second)
		time.Sleep(time.Second)
		synctest.Wait()
		if got := o.expiredItems(); !slices.Equal(got, []string{"a", "b"}) {
			t.Errorf("expired %v, want [a b]", got)
		}
		time.Sleep(2 * time.Hour)
		synctest.Wait()
		if got := o.expiredItems(); !slices.Equal(got, []string{"a", "b"}) {
			t.Errorf("expired %v, want [a b] (the replaced timer must not fire)", got)
		}
		o.checkExpireSaw(t)
	})
}
