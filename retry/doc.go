// Package retry is what the bridge waits with: a Waitlist of items held
// until an event satisfies them or their wait runs out (calls waiting for a
// healthy session; sessions waiting to be resumed), a Silence that fires
// when activity stops for a while (busy detection), and the Backoff of a
// loop that tries to reach something that is down (the connectors to DCC
// command servers).
//
// Waitlist and Silence are guarded by their owner's lock, given to the constructor: every
// method is called with that lock held, and the callbacks they make when
// time runs out (expire, fire) run with it held too. Time is the time
// package's (time.AfterFunc, time.Now); tests fake it with testing/synctest.
//
// It imports nothing of the bridge's own.
package retry
