package retry

import (
	"slices"
	"testing"
	"testing/synctest"
	"time"
)

// watched is an owner of a Silence: its lock guards the time of the last
// activity and the record of firings.
type watched struct {
	mu       *chanLock
	s        *Silence
	start    time.Time
	activity time.Time
	fired    []time.Duration // since start
	unlocked int             // firings without the lock held
	armed    []bool          // Armed() inside fire
	rearm    bool            // fire arms it again
}

const quietFor = 10 * time.Second

func newWatched() *watched {
	w := &watched{mu: newChanLock(), start: time.Now()}
	w.activity = w.start
	w.s = NewSilence(w.mu, quietFor, func() time.Time { return w.activity }, w.fire)
	return w
}

func (w *watched) fire() {
	if w.mu.TryLock() {
		w.mu.Unlock()
		w.unlocked++
		return // the records below are guarded by w.mu
	}
	w.fired = append(w.fired, time.Since(w.start))
	w.armed = append(w.armed, w.s.Armed())
	if w.rearm {
		w.s.Arm()
	}
}

// do runs f with the lock held.
func (w *watched) do(f func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	f()
}

func (w *watched) active() { w.do(func() { w.activity = time.Now() }) }
func (w *watched) arm()    { w.do(w.s.Arm) }
func (w *watched) stop()   { w.do(w.s.Stop) }
func (w *watched) isArmed() (armed bool) {
	w.do(func() { armed = w.s.Armed() })
	return armed
}

// firings returns when it fired so far, after letting due timers run.
func (w *watched) firings() (fired []time.Duration) {
	synctest.Wait()
	w.do(func() { fired = append(fired, w.fired...) })
	return fired
}

// sleepUntil sleeps until d after start.
func (w *watched) sleepUntil(d time.Duration) { time.Sleep(time.Until(w.start.Add(d))) }

func TestSilenceFires(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWatched()
		if w.isArmed() {
			t.Fatal("Armed = true before Arm")
		}
		w.arm()
		if !w.isArmed() {
			t.Fatal("Armed = false after Arm")
		}
		w.sleepUntil(quietFor - time.Nanosecond)
		if got := w.firings(); len(got) != 0 {
			t.Fatalf("fired at %v, before %v of silence", got, quietFor)
		}
		w.sleepUntil(quietFor)
		if got := w.firings(); !slices.Equal(got, []time.Duration{quietFor}) {
			t.Fatalf("fired at %v, want [%v]", got, quietFor)
		}
		w.sleepUntil(time.Hour)
		if got := w.firings(); len(got) != 1 {
			t.Errorf("fired at %v, want once", got)
		}
		w.do(func() {
			if w.unlocked != 0 {
				t.Errorf("fire ran %d times without the lock held", w.unlocked)
			}
		})
	})
}

// Activity while it waits pushes the firing to d after the last activity.
func TestSilenceActivityPostpones(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWatched()
		w.arm()
		for _, at := range []time.Duration{4 * time.Second, 8 * time.Second, 15 * time.Second, 16 * time.Second} {
			w.sleepUntil(at)
			w.active()
		}
		want := 16*time.Second + quietFor
		w.sleepUntil(want - time.Nanosecond)
		if got := w.firings(); len(got) != 0 {
			t.Fatalf("fired at %v, before %v of silence after the last activity (16s)", got, quietFor)
		}
		if !w.isArmed() {
			t.Error("Armed = false while activity postpones the firing")
		}
		w.sleepUntil(want)
		if got := w.firings(); !slices.Equal(got, []time.Duration{want}) {
			t.Fatalf("fired at %v, want [%v]", got, want)
		}
		w.sleepUntil(time.Hour)
		if got := w.firings(); len(got) != 1 {
			t.Errorf("fired at %v, want once", got)
		}
	})
}

// Arming an armed Silence changes nothing: it does not restart the wait.
func TestSilenceArmWhileArmed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWatched()
		w.arm()
		w.sleepUntil(6 * time.Second)
		w.arm()
		w.sleepUntil(time.Hour)
		if got := w.firings(); !slices.Equal(got, []time.Duration{quietFor}) {
			t.Errorf("fired at %v, want once at %v", got, quietFor)
		}
	})
}

func TestSilenceStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWatched()
		w.arm()
		w.sleepUntil(5 * time.Second)
		w.stop()
		if w.isArmed() {
			t.Error("Armed = true after Stop")
		}
		w.stop() // a second Stop is harmless
		w.sleepUntil(time.Hour)
		if got := w.firings(); len(got) != 0 {
			t.Errorf("fired at %v after Stop", got)
		}
	})
}

// A timer that ran out while the owner held the lock, and waits for it,
// does nothing once the owner has stopped the Silence, or stopped and
// armed it again: then only the new Arm's wait counts.
func TestSilenceStopWhileTimerWaitsForLock(t *testing.T) {
	for _, again := range []bool{false, true} {
		name := map[bool]string{false: "Stop", true: "Stop+Arm"}[again]
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := newWatched()
				w.arm()
				w.mu.Lock()
				w.sleepUntil(quietFor + time.Second)
				synctest.Wait()
				if n := w.mu.waiters.Load(); n != 1 {
					t.Fatalf("%d goroutines wait for the lock, want 1 (the timer)", n)
				}
				w.s.Stop()
				if again {
					w.s.Arm() // due at 21 s
				}
				w.mu.Unlock()
				if got := w.firings(); len(got) != 0 {
					t.Fatalf("the stale timer fired at %v after %s", got, name)
				}
				if w.isArmed() != again {
					t.Fatalf("Armed = %v after the stale timer, want %v", w.isArmed(), again)
				}
				w.sleepUntil(2*quietFor + time.Second - time.Nanosecond)
				if got := w.firings(); len(got) != 0 {
					t.Fatalf("fired at %v, before the new Arm's wait ran out", got)
				}
				w.sleepUntil(time.Hour)
				var want []time.Duration
				if again {
					want = []time.Duration{2*quietFor + time.Second}
				}
				if got := w.firings(); !slices.Equal(got, want) {
					t.Errorf("fired at %v, want %v", got, want)
				}
			})
		})
	}
}

// Once it fires it is disarmed (already inside fire), and Arm starts it
// again, from then; fire itself may Arm it.
func TestSilenceArmAfterFiring(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWatched()
		w.arm()
		w.sleepUntil(quietFor)
		if got := w.firings(); len(got) != 1 {
			t.Fatalf("fired at %v, want once", got)
		}
		if w.isArmed() {
			t.Error("Armed = true after firing")
		}
		w.sleepUntil(30 * time.Second)
		w.arm()
		w.sleepUntil(30*time.Second + quietFor - time.Nanosecond)
		if got := w.firings(); len(got) != 1 {
			t.Fatalf("fired at %v, before the second Arm's wait ran out", got)
		}
		w.sleepUntil(30*time.Second + quietFor)
		if got := w.firings(); !slices.Equal(got, []time.Duration{quietFor, 30*time.Second + quietFor}) {
			t.Fatalf("fired at %v, want [%v %v]", got, quietFor, 30*time.Second+quietFor)
		}

		w.do(func() { w.rearm = true })
		w.arm()                        // at 40 s
		w.sleepUntil(65 * time.Second) // after the firing at 60 s armed it again
		w.do(func() { w.rearm = false })
		w.sleepUntil(time.Hour)
		want := []time.Duration{quietFor, 40 * time.Second, 50 * time.Second, 60 * time.Second, 70 * time.Second}
		if got := w.firings(); !slices.Equal(got, want) {
			t.Errorf("fired at %v, want %v (fire arming it again)", got, want)
		}
		w.do(func() {
			for i, armed := range w.armed {
				if armed {
					t.Errorf("Armed = true inside firing %d", i)
				}
			}
			if w.unlocked != 0 {
				t.Errorf("fire ran %d times without the lock held", w.unlocked)
			}
		})
	})
}
