package retry

import (
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

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
		{"Add", func(t *testing.T, o *owner) { o.addLocked("a", 10*time.Second) }, true},
		{"Remove+Add", func(t *testing.T, o *owner) {
			if !o.w.Remove("a") {
				t.Error(`Remove("a") = false while its expiry waits for the lock`)
			}
			o.addLocked("a", 10*time.Second)
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				mu := newChanLock()
				o := newOwner(mu)
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
		w := NewWaitlist[string](&mu)
		start := time.Now()
		var at []time.Duration
		var expire func(string)
		expire = func(item string) {
			at = append(at, time.Since(start))
			if w.Remove(item) {
				t.Errorf("Remove(%q) in its expire = true, want false", item)
			}
			if len(at) < 3 {
				w.Add(item, uint64(len(at)), time.Duration(len(at))*time.Second, expire)
			}
		}
		mu.Lock()
		w.Add("a", 0, time.Second, expire)
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

// Remove and Wake stop the timers of the items they take: when those waits
// would have run out, no timer comes for the lock; the others' still do.
func TestWaitlistTakeStopsTimer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mu := newChanLock()
		o := newOwner(mu)
		o.mu.Lock()
		for _, item := range []string{"a", "b", "c"} {
			o.addLocked(item, 10*time.Second)
		}
		o.w.Remove("a")
		o.w.Wake(func(item string) bool { return item == "b" })
		time.Sleep(time.Minute) // with the lock held
		synctest.Wait()
		if n := mu.waiters.Load(); n != 1 {
			t.Errorf("%d timers wait for the lock, want 1 (c's); Remove and Wake must stop theirs", n)
		}
		o.mu.Unlock()
		if got := o.expiredItems(); !slices.Equal(got, []string{"c"}) {
			t.Errorf("expired %v, want [c]", got)
		}
	})
}
