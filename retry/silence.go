package retry

import (
	"sync"
	"time"
)

// Silence calls fire, with mu held, once last() is at least d in the past
// while it is armed: when the timer set by Arm runs out and activity happened
// meanwhile, it re-arms for the time that is left instead of firing. So it
// fires d after Arm if nothing happened since, or d after the last activity.
// After firing it is disarmed; fire may Arm it again.
//
// The owner guards the Silence with its own lock, given to NewSilence: every
// method must be called with it held. The timer takes that lock, and calls
// last and fire with it held.
type Silence struct {
	mu    sync.Locker
	d     time.Duration
	last  func() time.Time
	fire  func()
	armed bool
	gen   uint64 // counts Arms; a timer set for an earlier Arm does nothing
	timer *time.Timer
}

// NewSilence returns a disarmed Silence guarded by mu that calls fire once
// last() is d in the past; last reports the time of the latest activity.
func NewSilence(mu sync.Locker, d time.Duration, last func() time.Time, fire func()) *Silence {
	return &Silence{mu: mu, d: d, last: last, fire: fire}
}

// Arm starts watching, for d from now, unless it is already armed (then it
// changes nothing). The lock is held.
func (s *Silence) Arm() {
	if s.armed {
		return
	}
	s.armed = true
	s.gen++
	s.after(s.d, s.gen)
}

// Stop disarms it; a timer already running (waiting for the lock) does
// nothing. The lock is held.
func (s *Silence) Stop() {
	if !s.armed {
		return
	}
	s.armed = false
	s.timer.Stop()
	s.timer = nil
}

// Armed reports whether it is watching. The lock is held.
func (s *Silence) Armed() bool { return s.armed }

// after sets the timer for the Arm numbered gen; the lock is held.
func (s *Silence) after(d time.Duration, gen uint64) {
	s.timer = time.AfterFunc(d, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if !s.armed || s.gen != gen {
			return // stopped, or stopped and armed again, since
		}
		if quiet := time.Since(s.last()); quiet < s.d {
			s.after(s.d-quiet, gen)
			return
		}
		s.armed = false
		s.timer = nil
		s.fire()
	})
}
