package retry_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dccbridge/dccbridge/retry"
)

// instantClock ends every wait at once and prints it, so that the example
// runs without sleeping. Real callers leave Policy.Clock nil.
type instantClock struct{ retry.RealClock }

func (instantClock) AfterFunc(d time.Duration, f func()) retry.Timer {
	fmt.Println("  wait", d)
	f()
	return firedTimer{}
}

// firedTimer is a Timer whose call has already run.
type firedTimer struct{}

func (firedTimer) Stop() bool { return false }

func ExamplePolicy_Do() {
	p := retry.Policy{
		MaxAttempts: 4,
		Initial:     100 * time.Millisecond,
		Max:         time.Second,
		// Clock and Rand are set only to make the output repeatable:
		// every backoff is half its cap, and no time passes.
		Clock: instantClock{},
		Rand:  func() float64 { return 0.5 },
	}

	attempt := 0
	err := p.Do(context.Background(), func(ctx context.Context) error {
		attempt++
		fmt.Println("attempt", attempt)
		if attempt < 3 {
			return errors.New("panel not ready")
		}
		return nil
	})
	fmt.Println("err:", err)

	// A Permanent error is returned at once, unwrapped.
	errBadParams := errors.New("bad params")
	err = p.Do(context.Background(), func(ctx context.Context) error {
		fmt.Println("attempt")
		return retry.Permanent(errBadParams)
	})
	fmt.Println("err:", err, errors.Is(err, errBadParams))

	// Output:
	// attempt 1
	//   wait 50ms
	// attempt 2
	//   wait 100ms
	// attempt 3
	// err: <nil>
	// attempt
	// err: bad params true
}

func ExampleWaitlist() {
	// The owner's lock guards the Waitlist, and is held around every call.
	// When a wait runs out, the Waitlist takes the lock itself, removes the
	// call and runs expire, so expire neither locks nor calls Remove.
	var mu sync.Mutex
	waiting := retry.NewWaitlist[string](nil, &mu)
	expire := func(call string) {
		fmt.Println(call, "timed out")
	}

	mu.Lock()
	defer mu.Unlock()
	waiting.Add("photoshop.open#1", 30*time.Second, expire)
	waiting.Add("photoshop.save#2", 30*time.Second, expire)
	waiting.Add("maya.render#3", 30*time.Second, expire)
	fmt.Println("waiting:", waiting.Len())

	// A Photoshop panel says hello: wake the calls it can take.
	var dispatched []string
	waiting.Wake(func(call string) bool {
		if strings.HasPrefix(call, "photoshop.") {
			dispatched = append(dispatched, call)
			return true
		}
		return false
	})
	slices.Sort(dispatched) // Wake's order is unspecified
	fmt.Println("dispatched:", dispatched)
	fmt.Println("still waiting for maya:", waiting.Has("maya.render#3"), waiting.Len())

	// The caller gives up: Remove stops the wait.
	fmt.Println("removed:", waiting.Remove("maya.render#3"), waiting.Len())

	// Output:
	// waiting: 3
	// dispatched: [photoshop.open#1 photoshop.save#2]
	// still waiting for maya: true 1
	// removed: true 0
}
