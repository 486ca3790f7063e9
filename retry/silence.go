package retry

import (
	"sync"
	"time"
)

// Silence calls fire, with its owner's lock held, once last() is at least
// d in the past while it is armed: when the timer set by Arm runs out and
// activity happened meanwhile, it waits for the time that is left instead
// of firing. After firing it is disarmed. Every method is called with the
// lock given to NewSilence held.
type Silence struct {
	mu    sync.Locker
	d     time.Duration
	last  func() time.Time
	fire  func()
	gen   uint64
	timer *time.Timer
}

// NewSilence returns a disarmed Silence.
func NewSilence(mu sync.Locker, d time.Duration, last func() time.Time, fire func()) *Silence {
	return &Silence{mu: mu, d: d, last: last, fire: fire}
}

// Arm starts watching, unless already armed.
func (s *Silence) Arm() {
	if s.timer == nil {
		s.wait(s.d)
	}
}

func (s *Silence) wait(d time.Duration) {
	s.gen++
	gen := s.gen
	s.timer = time.AfterFunc(d, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.gen != gen || s.timer == nil {
			return // stopped, or armed again since
		}
		if quiet := time.Since(s.last()); quiet < s.d {
			s.wait(s.d - quiet)
			return
		}
		s.timer = nil
		s.fire()
	})
}

// Stop disarms it; a timer already running does nothing.
func (s *Silence) Stop() {
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
		s.gen++
	}
}

// Armed reports whether it is watching.
func (s *Silence) Armed() bool { return s.timer != nil }
