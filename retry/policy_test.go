package retry

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"
	"testing/synctest"
	"time"
)

// almostOne is the largest float64 below 1, the top of Rand's range.
var almostOne = math.Nextafter(1, 0)

// fixed returns a Rand that always draws v.
func fixed(v float64) func() float64 { return func() float64 { return v } }

// checkNearCap fails unless got is in [ceiling-1ns, ceiling): what a draw of
// almostOne gives for caps far below 2^53 ns.
func checkNearCap(t *testing.T, attempt int, got, ceiling time.Duration) {
	t.Helper()
	if got >= ceiling || got < ceiling-time.Nanosecond {
		t.Errorf("Backoff(%d) = %v, want just below %v", attempt, got, ceiling)
	}
}

func TestBackoffApproachesCap(t *testing.T) {
	p := Policy{Initial: 100 * time.Millisecond, Max: time.Second, Multiplier: 3, Rand: fixed(almostOne)}
	caps := []time.Duration{
		1: 100 * time.Millisecond, // Initial
		2: 300 * time.Millisecond, // ×3
		3: 900 * time.Millisecond, // ×9
		4: time.Second,            // 2.7 s, capped at Max
		5: time.Second,
	}
	for attempt := 1; attempt < len(caps); attempt++ {
		checkNearCap(t, attempt, p.Backoff(attempt), caps[attempt])
	}
	for _, attempt := range []int{10, 100, 1 << 20, math.MaxInt} {
		checkNearCap(t, attempt, p.Backoff(attempt), time.Second)
	}
}

func TestBackoffZeroDraw(t *testing.T) {
	p := Policy{Initial: time.Second, Max: time.Minute, Rand: fixed(0)}
	for _, attempt := range []int{1, 2, 3, 10, 1000} {
		if got := p.Backoff(attempt); got != 0 {
			t.Errorf("Backoff(%d) with Rand 0 = %v, want 0", attempt, got)
		}
	}
}

func TestBackoffHalfDraw(t *testing.T) {
	p := Policy{Initial: 100 * time.Millisecond, Max: time.Second, Rand: fixed(0.5)}
	want := []time.Duration{50, 100, 200, 400, 500, 500} // ms
	for i, w := range want {
		if got := p.Backoff(i + 1); got != w*time.Millisecond {
			t.Errorf("Backoff(%d) = %v, want %v", i+1, got, w*time.Millisecond)
		}
	}
}

func TestBackoffDefaults(t *testing.T) {
	// The zero Policy: 250 ms initial cap, doubling, at most 5 s.
	p := Policy{Rand: fixed(almostOne)}
	caps := []time.Duration{250, 500, 1000, 2000, 4000, 5000, 5000}
	for i, c := range caps {
		checkNearCap(t, i+1, p.Backoff(i+1), c*time.Millisecond)
	}

	d := Policy{}.withDefaults()
	if d.MaxAttempts != 5 || d.Initial != 250*time.Millisecond || d.Max != 5*time.Second || d.Multiplier != 2 {
		t.Errorf("zero Policy defaults = attempts %d, initial %v, max %v, ×%v; want 5, 250ms, 5s, ×2",
			d.MaxAttempts, d.Initial, d.Max, d.Multiplier)
	}
	if _, ok := d.Clock.(RealClock); !ok {
		t.Errorf("default Clock = %T, want RealClock", d.Clock)
	}
	if d.Rand == nil {
		t.Error("default Rand is nil")
	}

	// Non-positive durations and multipliers below 1 (or NaN) take the
	// defaults too; a negative MaxAttempts is kept (no limit).
	odd := Policy{MaxAttempts: -1, Initial: -time.Second, Max: -time.Second, Multiplier: math.NaN()}.withDefaults()
	if odd.MaxAttempts != -1 || odd.Initial != 250*time.Millisecond || odd.Max != 5*time.Second || odd.Multiplier != 2 {
		t.Errorf("odd Policy defaults = attempts %d, initial %v, max %v, ×%v; want -1, 250ms, 5s, ×2",
			odd.MaxAttempts, odd.Initial, odd.Max, odd.Multiplier)
	}
	for _, m := range []float64{0.5, 0, -3, math.NaN(), math.Inf(-1)} {
		p := Policy{Initial: time.Second, Max: time.Hour, Multiplier: m, Rand: fixed(almostOne)}
		checkNearCap(t, 3, p.Backoff(3), 4*time.Second)
		if got := p.Backoff(3); got < 0 {
			t.Errorf("Multiplier %v: Backoff(3) = %v, negative", m, got)
		}
	}
}

func TestBackoffDefaultRandInRange(t *testing.T) {
	p := Policy{} // math/rand/v2
	for attempt := 1; attempt <= 8; attempt++ {
		ceiling := min(250*time.Millisecond<<(attempt-1), 5*time.Second)
		for range 200 {
			if got := p.Backoff(attempt); got < 0 || got >= ceiling {
				t.Fatalf("Backoff(%d) = %v, want in [0, %v)", attempt, got, ceiling)
			}
		}
	}
}

func TestBackoffEdges(t *testing.T) {
	tests := []struct {
		name    string
		p       Policy
		attempt int
		cap     time.Duration
	}{
		{"attempt 0 uses Initial", Policy{Initial: time.Second, Max: time.Minute}, 0, time.Second},
		{"negative attempt uses Initial", Policy{Initial: time.Second, Max: time.Minute}, -5, time.Second},
		{"Initial above Max", Policy{Initial: time.Minute, Max: time.Second}, 1, time.Second},
		{"Multiplier 1 is constant", Policy{Initial: time.Second, Max: time.Minute, Multiplier: 1}, math.MaxInt, time.Second},
		{"huge Multiplier overflows to Max", Policy{Initial: time.Second, Max: time.Minute, Multiplier: math.MaxFloat64}, 3, time.Minute},
		{"infinite Multiplier", Policy{Initial: time.Second, Max: time.Minute, Multiplier: math.Inf(1)}, 2, time.Minute},
		{"infinite Multiplier, first attempt", Policy{Initial: time.Second, Max: time.Minute, Multiplier: math.Inf(1)}, 1, time.Second},
		{"Max near MaxInt64", Policy{Initial: time.Second, Max: math.MaxInt64, Multiplier: 2}, 10, 512 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.p.Rand = fixed(almostOne)
			checkNearCap(t, tt.attempt, tt.p.Backoff(tt.attempt), tt.cap)
			tt.p.Rand = fixed(0)
			if got := tt.p.Backoff(tt.attempt); got != 0 {
				t.Errorf("Rand 0: Backoff(%d) = %v, want 0", tt.attempt, got)
			}
		})
	}
}

var errTransient = errors.New("transient")

// failing returns an op that fails with a numbered error until call n
// (counting from 1), then succeeds; n <= 0 means it never succeeds. The
// returned func reports the times of the calls so far.
func failing(n int) (op func(context.Context) error, calls func() []time.Time) {
	var at []time.Time
	op = func(context.Context) error {
		at = append(at, time.Now())
		if n > 0 && len(at) >= n {
			return nil
		}
		return fmt.Errorf("try %d: %w", len(at), errTransient)
	}
	return op, func() []time.Time { return at }
}

// offsets returns the times as durations since start.
func offsets(start time.Time, ts []time.Time) []time.Duration {
	var ds []time.Duration
	for _, t := range ts {
		ds = append(ds, t.Sub(start))
	}
	return ds
}

func ms(ds ...time.Duration) []time.Duration {
	for i := range ds {
		ds[i] *= time.Millisecond
	}
	return ds
}

func TestDoSucceedsOnThirdTry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := Policy{Initial: 100 * time.Millisecond, Max: 10 * time.Second, Rand: fixed(0.5)}
		op, calls := failing(3)
		start := time.Now()
		if err := p.Do(t.Context(), op); err != nil {
			t.Fatalf("Do = %v, want nil", err)
		}
		// Backoffs 50 ms then 100 ms.
		if got := time.Since(start); got != 150*time.Millisecond {
			t.Errorf("elapsed %v, want 150ms (50ms + 100ms)", got)
		}
		if got, want := offsets(start, calls()), ms(0, 50, 150); !slices.Equal(got, want) {
			t.Errorf("calls at %v, want %v", got, want)
		}
	})
}

func TestDoFirstTrySucceeds(t *testing.T) {
	c := &fakeClock{}
	p := Policy{Clock: c}
	n := 0
	if err := p.Do(t.Context(), func(context.Context) error { n++; return nil }); err != nil || n != 1 {
		t.Errorf("Do = %v after %d calls, want nil after 1", err, n)
	}
	if w := c.waits(); len(w) != 0 {
		t.Errorf("clock timers %v, want none", w)
	}
}

func TestDoStopsAtMaxAttempts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := Policy{MaxAttempts: 4, Initial: 100 * time.Millisecond, Max: 150 * time.Millisecond, Rand: fixed(0.5)}
		op, calls := failing(0)
		start := time.Now()
		err := p.Do(t.Context(), op)
		if err == nil || err.Error() != "try 4: transient" || !errors.Is(err, errTransient) {
			t.Fatalf("Do = %v, want the last error (try 4)", err)
		}
		if len(calls()) != 4 {
			t.Errorf("%d calls, want 4", len(calls()))
		}
		// Backoffs 50, 75 (cap 150), 75 ms; none after the last attempt.
		if got := time.Since(start); got != 200*time.Millisecond {
			t.Errorf("elapsed %v, want 200ms (50 + 75 + 75)", got)
		}
		if got, want := offsets(start, calls()), ms(0, 50, 125, 200); !slices.Equal(got, want) {
			t.Errorf("calls at %v, want %v", got, want)
		}
	})
}

func TestDoDefaultMaxAttempts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		op, calls := failing(0)
		start := time.Now()
		err := Policy{Rand: fixed(0.5)}.Do(t.Context(), op)
		if !errors.Is(err, errTransient) {
			t.Fatalf("Do = %v, want a transient error", err)
		}
		if len(calls()) != 5 {
			t.Errorf("zero Policy made %d calls, want 5", len(calls()))
		}
		// Half of the default caps 250, 500, 1000, 2000 ms.
		if got := time.Since(start); got != 1875*time.Millisecond {
			t.Errorf("elapsed %v, want 1.875s", got)
		}
	})
}

func TestDoOneAttempt(t *testing.T) {
	c := &fakeClock{auto: true}
	op, calls := failing(0)
	if err := (Policy{MaxAttempts: 1, Clock: c}).Do(t.Context(), op); !errors.Is(err, errTransient) {
		t.Errorf("Do = %v, want the transient error", err)
	}
	if len(calls()) != 1 || len(c.waits()) != 0 {
		t.Errorf("%d calls and waits %v, want 1 call and no wait", len(calls()), c.waits())
	}
}

func TestDoPermanent(t *testing.T) {
	errFatal := errors.New("fatal")
	tests := []struct {
		name  string
		after int // transient failures before the permanent one
		wrap  func(error) error
	}{
		{"first try", 0, Permanent},
		{"third try", 2, Permanent},
		{"wrapped again", 0, func(err error) error { return fmt.Errorf("ctx: %w", Permanent(err)) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := Policy{MaxAttempts: 10, Initial: 100 * time.Millisecond, Rand: fixed(0.5)}
				n := 0
				start := time.Now()
				err := p.Do(t.Context(), func(context.Context) error {
					n++
					if n <= tt.after {
						return errTransient
					}
					return tt.wrap(errFatal)
				})
				if err != errFatal {
					t.Errorf("Do = %#v, want errFatal itself (unwrapped)", err)
				}
				if n != tt.after+1 {
					t.Errorf("%d calls, want %d", n, tt.after+1)
				}
				want := []time.Duration{0, 50 * time.Millisecond, 150 * time.Millisecond}[tt.after]
				if got := time.Since(start); got != want {
					t.Errorf("elapsed %v, want %v", got, want)
				}
			})
		})
	}
}

func TestPermanentWrapping(t *testing.T) {
	if Permanent(nil) != nil {
		t.Error("Permanent(nil) != nil")
	}
	base := errors.New("base")
	p := Permanent(base)
	if p.Error() != "base" {
		t.Errorf("Error() = %q, want %q", p.Error(), "base")
	}
	if !errors.Is(p, base) || errors.Unwrap(p) != base {
		t.Error("Permanent(err) does not unwrap to err")
	}
}

func TestDoCancelDuringBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		p := Policy{Initial: 10 * time.Second, Max: time.Minute, Rand: fixed(0.5)}
		go func() {
			time.Sleep(2 * time.Second) // inside the first backoff (5 s)
			cancel()
		}()
		op, calls := failing(0)
		start := time.Now()
		err := p.Do(ctx, op)
		if got := time.Since(start); got != 2*time.Second {
			t.Errorf("Do returned after %v, want 2s (at the cancel)", got)
		}
		if !errors.Is(err, errTransient) || !errors.Is(err, context.Canceled) {
			t.Errorf("Do = %v, want it to wrap the op's error and context.Canceled", err)
		}
		if err == nil || err.Error() != "try 1: transient\ncontext canceled" {
			t.Errorf("Do error text = %q", err)
		}
		if len(calls()) != 1 {
			t.Errorf("%d calls, want 1", len(calls()))
		}
	})
}

func TestDoCancelStopsTimer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := &fakeClock{} // its timers never fire by themselves
		ctx, cancel := context.WithCancel(t.Context())
		errc := make(chan error, 1)
		go func() {
			errc <- (Policy{Clock: c, Rand: fixed(0.5)}).Do(ctx, func(context.Context) error { return errTransient })
		}()
		synctest.Wait() // Do is blocked in its first backoff
		if got := c.waits(); !slices.Equal(got, ms(125)) {
			t.Fatalf("clock waits %v, want [125ms]", got)
		}
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) || !errors.Is(err, errTransient) {
			t.Fatalf("Do = %v, want errTransient and context.Canceled", err)
		}
		if !c.timer(0).isStopped() {
			t.Error("backoff timer not stopped on cancel")
		}
	})
}

func TestDoUnlimitedUntilDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		p := Policy{MaxAttempts: -1, Initial: 100 * time.Millisecond, Max: 400 * time.Millisecond, Rand: fixed(0.5)}
		op, calls := failing(0)
		start := time.Now()
		err := p.Do(ctx, op)
		if got := time.Since(start); got != time.Second {
			t.Errorf("elapsed %v, want 1s (the deadline)", got)
		}
		// Backoffs 50, 100, 200, then 200 each; the one after the call at
		// 950 ms is cut by the deadline.
		if got, want := offsets(start, calls()), ms(0, 50, 150, 350, 550, 750, 950); !slices.Equal(got, want) {
			t.Errorf("calls at %v, want %v", got, want)
		}
		if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, errTransient) {
			t.Errorf("Do = %v, want it to wrap the op's error and context.DeadlineExceeded", err)
		}
		if err == nil || err.Error() != "try 7: transient\ncontext deadline exceeded" {
			t.Errorf("Do error text = %q, want the last attempt's error", err)
		}
	})
}

func TestDoPassesContext(t *testing.T) {
	type key struct{}
	ctx := context.WithValue(t.Context(), key{}, "v")
	err := Policy{}.Do(ctx, func(got context.Context) error {
		if got.Value(key{}) != "v" {
			return Permanent(errors.New("op got another context"))
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}

func TestDoUsesInjectedClock(t *testing.T) {
	c := &fakeClock{auto: true} // every backoff ends at once
	p := Policy{MaxAttempts: 6, Initial: time.Second, Max: 10 * time.Second, Multiplier: 3, Clock: c, Rand: fixed(0.25)}
	op, calls := failing(0)
	if err := p.Do(t.Context(), op); !errors.Is(err, errTransient) {
		t.Fatalf("Do = %v, want the transient error", err)
	}
	if len(calls()) != 6 {
		t.Errorf("%d calls, want 6", len(calls()))
	}
	// A quarter of the caps 1, 3, 9, 10, 10 s.
	want := []time.Duration{250, 750, 2250, 2500, 2500}
	if got := c.waits(); !slices.Equal(got, ms(want...)) {
		t.Errorf("clock waits %v, want %v", got, ms(want...))
	}
	for i := range want {
		if got := p.Backoff(i + 1); got != c.waits()[i] {
			t.Errorf("Backoff(%d) = %v, clock waited %v", i+1, got, c.waits()[i])
		}
	}
}
