package retry_test

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/dccbridge/dccbridge/retry"
)

func ExampleWaitlist() {
	// The owner's lock guards the Waitlist, and is held around every call.
	// When a wait runs out, the Waitlist takes the lock itself, removes the
	// call and runs expire, so expire neither locks nor calls Remove.
	var mu sync.Mutex
	waiting := retry.NewWaitlist[string](&mu)
	expire := func(call string) {
		fmt.Println(call, "timed out")
	}

	mu.Lock()
	defer mu.Unlock()
	// Calls are numbered as they are made; they may reach the list out of
	// that order (here #3 first).
	waiting.Add("maya.render#3", 3, 30*time.Second, expire)
	waiting.Add("photoshop.save#2", 2, 30*time.Second, expire)
	waiting.Add("photoshop.open#1", 1, 30*time.Second, expire)
	waiting.Add("photoshop.close#4", 4, 30*time.Second, expire)
	fmt.Println("waiting:", waiting.Len())

	// A Photoshop panel says hello: wake the calls it can take. They are
	// offered by their number, so they are sent in the order made.
	waiting.Wake(func(call string) bool {
		take := strings.HasPrefix(call, "photoshop.")
		fmt.Println("offered", call, "taken:", take)
		return take
	})
	fmt.Println("still waiting for maya:", waiting.Has("maya.render#3"), waiting.Len())

	// The caller gives up: Remove stops the wait.
	fmt.Println("removed:", waiting.Remove("maya.render#3"), waiting.Len())

	// Output:
	// waiting: 4
	// offered photoshop.open#1 taken: true
	// offered photoshop.save#2 taken: true
	// offered maya.render#3 taken: false
	// offered photoshop.close#4 taken: true
	// still waiting for maya: true 1
	// removed: true 0
}
