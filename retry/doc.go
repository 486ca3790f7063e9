// Package retry is what the bridge waits with: a Waitlist of items held
// until an event satisfies them or their wait runs out (calls waiting for
// a healthy session, in the order they were made; sessions waiting to be
// resumed), and a Silence that fires when activity stops for a while (busy
// detection). Both are guarded by their owner's lock and woken by events or
// their own timers, never by polling. Time is the time package's: tests
// fake it with testing/synctest.
//
// It imports nothing of the bridge's own.
package retry
