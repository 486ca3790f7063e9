// Package retry holds the waiting logic of the bridge: a retry Policy
// (attempts, capped exponential backoff with full jitter) and a Waitlist of
// items held until a registry event satisfies them or their deadline passes
// (calls waiting for a healthy session, calls parked while their callee
// reconnects). Both take an injected Clock; tests may also run them inside
// testing/synctest bubbles with the real one.
//
// It imports nothing of the bridge's own.
package retry
