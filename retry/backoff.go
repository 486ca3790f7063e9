package retry

import (
	"math/rand/v2"
	"time"
)

// Backoff is the wait between attempts to reach something that is down:
// it starts at Min, doubles after each failure up to Max, and each wait is
// jittered by up to a quarter either way, so that many connectors started
// together do not knock in step. Its zero value waits 500 ms, then up to
// 10 s. Not safe for concurrent use: it belongs to one retry loop.
type Backoff struct {
	Min, Max time.Duration
	next     time.Duration
}

// Next returns how long to wait before the next attempt.
func (b *Backoff) Next() time.Duration {
	lo, hi := b.Min, b.Max
	if lo <= 0 {
		lo = 500 * time.Millisecond
	}
	if hi < lo {
		hi = max(lo, 10*time.Second)
	}
	if b.next < lo {
		b.next = lo
	}
	d := b.next
	b.next = min(2*b.next, hi)
	jitter := time.Duration(rand.Int64N(int64(d)/2+1)) - d/4
	return d + jitter
}

// Reset makes the next wait Min again, after a success.
func (b *Backoff) Reset() { b.next = 0 }
