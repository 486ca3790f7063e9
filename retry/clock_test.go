package retry

import (
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// fakeClock is a Clock driven by hand: AfterFunc records the call and
// returns a timer that fires only when the test calls fire (or at once, if
// auto is set). It proves which Clock a Policy or Waitlist uses.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	auto   bool // fire every timer inside AfterFunc
	timers []*fakeTimer
}

type fakeTimer struct {
	c       *fakeClock
	d       time.Duration
	f       func()
	stopped bool
	fired   bool
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) Timer {
	c.mu.Lock()
	t := &fakeTimer{c: c, d: d, f: f}
	c.timers = append(c.timers, t)
	auto := c.auto
	c.mu.Unlock()
	if auto {
		t.fire()
	}
	return t
}

// waits returns the durations AfterFunc was called with, in order.
func (c *fakeClock) waits() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ds []time.Duration
	for _, t := range c.timers {
		ds = append(ds, t.d)
	}
	return ds
}

// timer returns the i-th timer AfterFunc made.
func (c *fakeClock) timer(i int) *fakeTimer {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.timers[i]
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	if t.stopped || t.fired {
		return false
	}
	t.stopped = true
	return true
}

// fire runs f unless the timer was stopped or has fired; it reports
// whether f ran.
func (t *fakeTimer) fire() bool {
	t.c.mu.Lock()
	if t.stopped || t.fired {
		t.c.mu.Unlock()
		return false
	}
	t.fired = true
	t.c.mu.Unlock()
	t.f()
	return true
}

func (t *fakeTimer) isStopped() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	return t.stopped
}

var _ Clock = (*fakeClock)(nil)

func TestRealClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var c Clock = RealClock{}
		start := c.Now()
		if !start.Equal(time.Now()) {
			t.Fatalf("Now() = %v, want time.Now() %v", start, time.Now())
		}

		fired := make(chan time.Time, 1)
		c.AfterFunc(3*time.Second, func() { fired <- time.Now() })
		select {
		case at := <-fired:
			if got := at.Sub(start); got != 3*time.Second {
				t.Errorf("AfterFunc fired after %v, want 3s", got)
			}
		case <-time.After(time.Minute):
			t.Fatal("AfterFunc never fired")
		}

		called := false
		tm := c.AfterFunc(time.Second, func() { called = true })
		if !tm.Stop() {
			t.Error("Stop() = false on a pending timer, want true")
		}
		if tm.Stop() {
			t.Error("second Stop() = true, want false")
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if called {
			t.Error("stopped timer ran its func")
		}
	})
}
