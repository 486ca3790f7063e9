package retry

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"time"
)

// Policy says how often and how patiently to retry an operation. The zero
// value is usable: zero fields take the defaults their comments give.
type Policy struct {
	// MaxAttempts is the most tries, the first included. Default 5; a
	// negative value means no limit (until the context ends).
	MaxAttempts int
	// Initial is the backoff cap before the second attempt. Default 250 ms.
	Initial time.Duration
	// Max caps every backoff. Default 5 s.
	Max time.Duration
	// Multiplier grows the cap after each attempt. Default 2 (also taken
	// by values below 1 and NaN).
	Multiplier float64
	// Clock times the backoffs. Default RealClock.
	Clock Clock
	// Rand returns a number in [0, 1) for the jitter. Default math/rand/v2.
	Rand func() float64
}

func (p Policy) withDefaults() Policy {
	if p.MaxAttempts == 0 {
		p.MaxAttempts = 5
	}
	if p.Initial <= 0 {
		p.Initial = 250 * time.Millisecond
	}
	if p.Max <= 0 {
		p.Max = 5 * time.Second
	}
	if p.Multiplier < 1 || math.IsNaN(p.Multiplier) {
		p.Multiplier = 2
	}
	if p.Clock == nil {
		p.Clock = RealClock{}
	}
	if p.Rand == nil {
		p.Rand = rand.Float64
	}
	return p
}

// Backoff returns the wait after the given failed attempt (1 for the
// first): "full jitter", a uniform draw from [0, cap) where cap is
// Initial × Multiplier^(attempt-1), at most Max.
func (p Policy) Backoff(attempt int) time.Duration {
	p = p.withDefaults()
	// math.Pow, not a loop: with Multiplier 1 and no attempt limit a loop
	// would cost O(attempt) per call. Overflow gives +Inf, capped below.
	ceiling := float64(p.Initial) * math.Pow(p.Multiplier, float64(max(attempt, 1)-1))
	ceiling = min(ceiling, float64(p.Max))
	return time.Duration(p.Rand() * ceiling)
}

// permanent marks an error that must not be retried.
type permanent struct{ err error }

func (e permanent) Error() string { return e.err.Error() }
func (e permanent) Unwrap() error { return e.err }

// Permanent wraps err so that Do returns it at once instead of retrying.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanent{err}
}

// Do calls op until it succeeds, returns a Permanent error, the attempts
// run out, or ctx ends, sleeping Backoff between attempts. It returns nil
// or the last error (unwrapped from Permanent).
func (p Policy) Do(ctx context.Context, op func(ctx context.Context) error) error {
	p = p.withDefaults()
	for attempt := 1; ; attempt++ {
		err := op(ctx)
		var perm permanent
		switch {
		case err == nil:
			return nil
		case errors.As(err, &perm):
			return perm.err
		case p.MaxAttempts > 0 && attempt >= p.MaxAttempts:
			return err
		}
		wake := make(chan struct{})
		t := p.Clock.AfterFunc(p.Backoff(attempt), func() { close(wake) })
		select {
		case <-wake:
		case <-ctx.Done():
			t.Stop()
			return errors.Join(err, ctx.Err())
		}
	}
}
