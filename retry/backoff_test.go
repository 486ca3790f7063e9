package retry

import (
	"testing"
	"time"
)

// Waits double from Min up to Max, each within a quarter of its nominal
// value, and Reset starts over.
func TestBackoff(t *testing.T) {
	b := Backoff{Min: 100 * time.Millisecond, Max: 1 * time.Second}
	for round := range 2 {
		for i, nominal := range []time.Duration{100, 200, 400, 800, 1000, 1000} {
			nominal *= time.Millisecond
			d := b.Next()
			if d < nominal*3/4 || d > nominal*5/4 {
				t.Errorf("round %d, wait %d: %v, want %v ± 25%%", round, i, d, nominal)
			}
		}
		b.Reset()
	}
	var zero Backoff
	if d := zero.Next(); d < 375*time.Millisecond || d > 625*time.Millisecond {
		t.Errorf("the zero Backoff's first wait: %v, want 500 ms ± 25%%", d)
	}
}
