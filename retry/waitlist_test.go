package retry

import (
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// locker is the owner's lock; TryLock lets expire check that it is held.
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
	expired  []string
	at       []time.Time
	unlocked []string // items whose expire ran without the lock held
	present  []string // items still on the list inside their expire
}

// newOwner returns an owner guarded by a sync.Mutex, or by mu if given.
func newOwner(c Clock, mu ...locker) *owner {
	o := &owner{mu: &sync.Mutex{}}
	if len(mu) > 0 {
		o.mu = mu[0]
	}
	o.w = NewWaitlist[string](c, o.mu)
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

func (o *owner) add(item string, wait time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.w.Add(item, wait, o.expire)
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
		o := newOwner(nil)
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
		o.checkExpireSaw(t)
		if o.has("a") || o.len() != 0 {
			t.Errorf("after expiry: Has = %v, Len = %d; want false, 0", o.has("a"), o.len())
		}

		time.Sleep(time.Hour)
		synctest.Wait()
		if got := o.expiredItems(); len(got) != 1 {
			t.Errorf("expired %v, want exactly one call", got)
		}
	})
}

func TestWaitlistRemoveBeforeExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := newOwner(nil)
		o.add("a", 10*time.Second)
		time.Sleep(5 * time.Second)
		if !o.remove("a") {
			t.Error(`first Remove("a") = false, want true`)
		}
		if o.remove("a") {
			t.Error(`second Remove("a") = true, want false`)
		}
		if o.has("a") || o.len() != 0 {
			t.Errorf("after Remove: Has = %v, Len = %d; want false, 0", o.has("a"), o.len())
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if got := o.expiredItems(); len(got) != 0 {
			t.Errorf("expire called for %v after Remove", got)
		}
	})
}

func TestWaitlistAddRestartsWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := newOwner(nil)
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

func TestWaitlistWake(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := newOwner(nil)
		for _, item := range []string{"a", "b", "c"} {
			o.add(item, 10*time.Second)
		}
		time.Sleep(time.Second)

		var offered []string
		o.mu.Lock()
		o.w.Wake(func(item string) bool {
			offered = append(offered, item)
			return item == "b"
		})
		o.mu.Unlock()
		slices.Sort(offered)
		if !slices.Equal(offered, []string{"a", "b", "c"}) {
			t.Errorf("Wake offered %v, want every held item [a b c]", offered)
		}
		if o.has("b") || !o.has("a") || !o.has("c") || o.len() != 2 {
			t.Errorf("after Wake: Has(a, b, c) = %v, %v, %v, Len = %d; want true, false, true, 2",
				o.has("a"), o.has("b"), o.has("c"), o.len())
		}

		// Nothing accepted: nothing leaves.
		o.mu.Lock()
		o.w.Wake(func(string) bool { return false })
		o.mu.Unlock()
		if o.len() != 2 {
			t.Errorf("Len = %d after a Wake that took nothing, want 2", o.len())
		}

		// The others' timers still run; the taken item's is stopped.
		time.Sleep(9 * time.Second)
		synctest.Wait()
		got := o.expiredItems()
		slices.Sort(got)
		if !slices.Equal(got, []string{"a", "c"}) {
			t.Errorf("expired %v, want [a c]", got)
		}
		if o.len() != 0 {
			t.Errorf("Len = %d after expiry, want 0", o.len())
		}
		o.checkExpireSaw(t)
	})
}

func TestWaitlistWakeEmpty(t *testing.T) {
	var mu sync.Mutex
	w := NewWaitlist[int](&fakeClock{}, &mu)
	mu.Lock()
	defer mu.Unlock()
	w.Wake(func(int) bool {
		t.Error("take called on an empty Waitlist")
		return true
	})
}

func TestWaitlistLenHas(t *testing.T) {
	c := &fakeClock{}
	var mu sync.Mutex
	w := NewWaitlist[int](c, &mu)
	mu.Lock()
	defer mu.Unlock()
	if w.Len() != 0 || w.Has(1) {
		t.Fatalf("empty: Len = %d, Has(1) = %v", w.Len(), w.Has(1))
	}
	for i := 1; i <= 3; i++ {
		w.Add(i, time.Second, func(int) {})
		if w.Len() != i || !w.Has(i) {
			t.Errorf("after Add(%d): Len = %d, Has = %v", i, w.Len(), w.Has(i))
		}
	}
	w.Add(2, time.Second, func(int) {})
	if w.Len() != 3 {
		t.Errorf("Len = %d after re-adding 2, want 3", w.Len())
	}
	w.Remove(2)
	if w.Len() != 2 || w.Has(2) || !w.Has(1) || !w.Has(3) {
		t.Errorf("after Remove(2): Len = %d, Has(1, 2, 3) = %v, %v, %v", w.Len(), w.Has(1), w.Has(2), w.Has(3))
	}
	if w.Remove(4) {
		t.Error("Remove(4) of an item never added = true")
	}
}

func TestWaitlistUsesInjectedClock(t *testing.T) {
	c := &fakeClock{}
	var mu sync.Mutex
	w := NewWaitlist[int](c, &mu)
	var expired []int
	expire := func(i int) {
		if mu.TryLock() {
			mu.Unlock()
			t.Errorf("expire(%d) ran without the lock", i)
		}
		if w.Has(i) {
			t.Errorf("expire(%d) found it still held", i)
		}
		expired = append(expired, i)
	}
	// The fake timers fire in the calling goroutine, and the expiry takes
	// mu: fire them with mu unlocked.
	fire := func(i int) bool {
		mu.Unlock()
		defer mu.Lock()
		return c.timer(i).fire()
	}

	mu.Lock()
	defer mu.Unlock()
	w.Add(1, 3*time.Second, expire)
	w.Add(2, 7*time.Second, expire)
	if got, want := c.waits(), []time.Duration{3 * time.Second, 7 * time.Second}; !slices.Equal(got, want) {
		t.Fatalf("AfterFunc called with %v, want %v", got, want)
	}

	// The clock, not the wall, decides when an item expires.
	if !fire(1) {
		t.Fatal("timer for 2 did not fire")
	}
	if !slices.Equal(expired, []int{2}) || w.Has(2) || !w.Has(1) || w.Len() != 1 {
		t.Fatalf("after firing 2's timer: expired %v, Has(1) = %v, Has(2) = %v, Len = %d",
			expired, w.Has(1), w.Has(2), w.Len())
	}

	// Re-adding stops the old timer and arms a new one with the new wait.
	w.Add(1, 5*time.Second, expire)
	if !c.timer(0).isStopped() {
		t.Error("re-Add did not stop the old timer")
	}
	if got := c.waits()[2]; got != 5*time.Second {
		t.Errorf("re-Add armed %v, want 5s", got)
	}

	// Remove stops the timer.
	w.Remove(1)
	if !c.timer(2).isStopped() {
		t.Error("Remove did not stop the timer")
	}

	// Wake stops the timers of the items it takes, and only those.
	w.Add(3, time.Second, expire)
	w.Add(4, time.Second, expire)
	w.Wake(func(i int) bool { return i == 3 })
	if !c.timer(3).isStopped() || c.timer(4).isStopped() {
		t.Errorf("after Wake took 3: timer(3) stopped = %v, timer(4) stopped = %v; want true, false",
			c.timer(3).isStopped(), c.timer(4).isStopped())
	}
	if !slices.Equal(expired, []int{2}) {
		t.Errorf("expired %v, want [2]", expired)
	}
	if !fire(4) || !slices.Equal(expired, []int{2, 4}) || w.Len() != 0 {
		t.Errorf("after firing 4's timer: expired %v, Len = %d; want [2 4], 0", expired, w.Len())
	}
}

// An expiry already under way when its item is taken, removed or added
// again (Stop came too late to prevent it) must not call expire, nor touch
// the item's new wait: staged with the fake clock, whose timers fire when
// the test says.
func TestWaitlistLateExpiryFakeClock(t *testing.T) {
	for _, tc := range []struct {
		name  string
		take  func(w *Waitlist[string], expire func(string))
		again bool // the item waits again afterwards
	}{
		{"Wake", func(w *Waitlist[string], _ func(string)) { w.Wake(func(string) bool { return true }) }, false},
		{"Remove", func(w *Waitlist[string], _ func(string)) { w.Remove("a") }, false},
		{"Add", func(w *Waitlist[string], expire func(string)) { w.Add("a", time.Second, expire) }, true},
		{"Remove+Add", func(w *Waitlist[string], expire func(string)) {
			w.Remove("a")
			w.Add("a", time.Second, expire)
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &fakeClock{}
			var mu sync.Mutex
			w := NewWaitlist[string](c, &mu)
			var expired []string
			expire := func(item string) { expired = append(expired, item) }

			mu.Lock()
			w.Add("a", time.Second, expire)
			// The timer has started (Stop can no longer prevent the call) ...
			old := c.timer(0)
			old.c.mu.Lock()
			old.fired = true
			old.c.mu.Unlock()
			// ... while the owner takes the item, or adds it again.
			tc.take(w, expire)
			if w.Has("a") != tc.again {
				t.Fatalf(`Has("a") = %v after %s, want %v`, w.Has("a"), tc.name, tc.again)
			}
			mu.Unlock()

			old.f() // the expiry that was already on its way
			mu.Lock()
			if len(expired) != 0 {
				t.Errorf("the late expiry called expire for %v", expired)
			}
			if w.Has("a") != tc.again {
				t.Errorf(`Has("a") = %v after the late expiry, want %v`, w.Has("a"), tc.again)
			}
			mu.Unlock()
			if !tc.again {
				return
			}

			// The new wait is untouched and expires once, on its own timer.
			if c.timer(1).isStopped() {
				t.Fatal("the late expiry stopped the new wait's timer")
			}
			if !c.timer(1).fire() {
				t.Fatal("the new wait's timer did not fire")
			}
			mu.Lock()
			defer mu.Unlock()
			if !slices.Equal(expired, []string{"a"}) || w.Has("a") {
				t.Errorf(`after the new wait ran out: expired %v, Has("a") = %v; want [a], false`, expired, w.Has("a"))
			}
		})
	}
}

// The race for real: an item's wait runs out while its owner holds the lock,
// so the timer goroutine blocks on the lock; meanwhile the owner takes the
// item, or removes it and adds it again with a new wait, and unlocks. The
// old expiry must then do nothing; a new wait runs out at its own time,
// exactly once.
func TestWaitlistExpiryWaitsForLock(t *testing.T) {
	for _, tc := range []struct {
		name  string
		take  func(t *testing.T, o *owner)
		again bool // the item waits again, for 10 s from the take
	}{
		{"Wake", func(t *testing.T, o *owner) { o.w.Wake(func(string) bool { return true }) }, false},
		{"Remove", func(t *testing.T, o *owner) {
			if !o.w.Remove("a") {
				t.Error(`Remove("a") = false while its expiry waits for the lock`)
			}
		}, false},
		{"Add", func(t *testing.T, o *owner) { o.w.Add("a", 10*time.Second, o.expire) }, true},
		{"Remove+Add", func(t *testing.T, o *owner) {
			if !o.w.Remove("a") {
				t.Error(`Remove("a") = false while its expiry waits for the lock`)
			}
			o.w.Add("a", 10*time.Second, o.expire)
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				mu := newChanLock()
				o := newOwner(nil, mu)
				start := time.Now()
				o.add("a", 10*time.Second)
				time.Sleep(5 * time.Second)

				mu.Lock()
				time.Sleep(6 * time.Second) // 11 s: a's wait ran out at 10 s
				synctest.Wait()
				if n := mu.waiters.Load(); n != 1 {
					t.Fatalf("%d goroutines wait for the lock, want 1 (a's expiry)", n)
				}
				if !o.w.Has("a") {
					t.Fatal(`Has("a") = false: the expiry went ahead without the lock`)
				}
				tc.take(t, o)
				mu.Unlock()

				synctest.Wait()
				if n := mu.waiters.Load(); n != 0 {
					t.Fatalf("%d goroutines still wait for the lock", n)
				}
				if got := o.expiredItems(); len(got) != 0 {
					t.Fatalf("the old expiry called expire for %v after %s", got, tc.name)
				}
				if o.has("a") != tc.again {
					t.Fatalf(`Has("a") = %v after the old expiry, want %v`, o.has("a"), tc.again)
				}

				time.Sleep(10*time.Second - time.Nanosecond)
				synctest.Wait()
				if got := o.expiredItems(); len(got) != 0 {
					t.Fatalf("expired %v before the new wait ran out", got)
				}
				time.Sleep(time.Nanosecond) // 21 s
				synctest.Wait()
				want := []string(nil)
				if tc.again {
					want = []string{"a"}
				}
				if got := o.expiredItems(); !slices.Equal(got, want) {
					t.Fatalf("expired %v at 21s, want %v", got, want)
				}
				if tc.again {
					if got := o.at[0].Sub(start); got != 21*time.Second {
						t.Errorf("expired at %v, want 21s", got)
					}
				}
				if o.has("a") || o.len() != 0 {
					t.Errorf("at the end: Has = %v, Len = %d; want false, 0", o.has("a"), o.len())
				}

				time.Sleep(time.Hour)
				synctest.Wait()
				if got := o.expiredItems(); !slices.Equal(got, want) {
					t.Errorf("expired %v, want %v exactly once", got, want)
				}
				o.checkExpireSaw(t)
			})
		})
	}
}

// expire may use the Waitlist: it runs with the lock held, the item gone.
func TestWaitlistExpireAddsAgain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		w := NewWaitlist[string](nil, &mu)
		start := time.Now()
		var at []time.Duration
		var expire func(string)
		expire = func(item string) {
			at = append(at, time.Since(start))
			if w.Remove(item) {
				t.Errorf("Remove(%q) in its expire = true, want false", item)
			}
			if len(at) < 3 {
				w.Add(item, time.Duration(len(at))*time.Second, expire)
			}
		}
		mu.Lock()
		w.Add("a", time.Second, expire)
		mu.Unlock()

		time.Sleep(time.Hour)
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		if want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}; !slices.Equal(at, want) {
			t.Errorf("expired at %v, want %v", at, want)
		}
		if w.Len() != 0 {
			t.Errorf("Len = %d, want 0", w.Len())
		}
	})
}

func TestNewWaitlistNilClock(t *testing.T) {
	var mu sync.Mutex
	w := NewWaitlist[int](nil, &mu)
	if _, ok := w.clock.(RealClock); !ok {
		t.Errorf("NewWaitlist(nil, mu) clock = %T, want RealClock", w.clock)
	}
	if w.mu != &mu {
		t.Errorf("NewWaitlist(nil, mu) lock = %p, want %p", w.mu, &mu)
	}
}
