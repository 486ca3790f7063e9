package session

import (
	"slices"
	"sync"
)

// frameClass tells the queue what a full queue means for a frame.
type frameClass int

const (
	// classReply is a reply, a forwarded call or a control notification: a
	// full queue makes the session a slow reader.
	classReply frameClass = iota
	// classEvent is a bridge.event: dropped (and counted) once the queue is
	// half full, never a reason to close the session.
	classEvent
)

// outFrame is one frame waiting to be written. call is set when the frame
// forwards a call, so the writer can mark it written (or skip it if it was
// withdrawn while queued); reply is set for a reply owed to the session as
// a caller, which a replay caller gets again after a reconnect if it was
// never written.
type outFrame struct {
	data  []byte
	call  *call
	reply bool
}

// outQueue is a session's bounded outbound queue. push never blocks; the
// session's writer is its only consumer. Safe for concurrent use.
type outQueue struct {
	mu      sync.Mutex
	frames  []outFrame
	spare   []outFrame
	limit   int
	closed  bool // no more frames are taken
	flushed bool // the writer should stop once the queue is empty
	retired bool // the session left the registry: its call frames are not its own any more
	wake    chan struct{}
}

func newOutQueue(limit int) *outQueue {
	return &outQueue{limit: limit, wake: make(chan struct{}, 1)}
}

type pushResult int

const (
	pushed      pushResult = iota
	pushDropped            // an event that did not fit, or the queue is closed
	pushFull               // the queue is full: the session is a slow reader
)

func (q *outQueue) push(f outFrame, class frameClass) pushResult {
	q.mu.Lock()
	switch {
	case q.closed || q.flushed:
		q.mu.Unlock()
		return pushDropped
	case class == classEvent && len(q.frames) >= q.limit/2:
		q.mu.Unlock()
		return pushDropped
	case len(q.frames) >= q.limit:
		q.mu.Unlock()
		return pushFull
	}
	q.frames = append(q.frames, f)
	q.mu.Unlock()
	q.signal()
	return pushed
}

func (q *outQueue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// take returns every queued frame; the slice is valid until the next take.
// last reports that the queue was closed or flushed and is now empty, so the
// writer should stop after writing these frames.
func (q *outQueue) take() (frames []outFrame, last bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return nil, true
	}
	// Double-buffer: the writer owns the returned slice; the one it
	// returned last time (done with now) takes new frames.
	clear(q.spare)
	frames, q.frames, q.spare = q.frames, q.spare[:0], q.frames
	return frames, q.flushed
}

// claim reports whether the writer may write f, and marks a call frame's
// call written. A call frame is written only while the session is in the
// registry and the call has not been withdrawn: once the session has left
// (replaced by a new connection, say), its calls may have moved to another
// session and must not be written here too.
func (q *outQueue) claim(f outFrame) bool {
	if f.call == nil {
		return true
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	return !q.retired && f.call.markWritten()
}

// retire makes claim refuse every call frame from now on. Called when the
// session leaves the registry, before its calls are settled, so each call
// is either already written here or never will be.
func (q *outQueue) retire() {
	q.mu.Lock()
	q.retired = true
	q.mu.Unlock()
}

// giveBack puts frames the writer took but did not write back at the front
// of the queue, in order, even once it is closed, so that close returns
// them with the rest.
func (q *outQueue) giveBack(frames []outFrame) {
	q.mu.Lock()
	q.frames = append(slices.Clone(frames), q.frames...)
	q.mu.Unlock()
}

// flush makes the writer stop once what is queued now has been written.
func (q *outQueue) flush() {
	q.mu.Lock()
	q.flushed = true
	q.mu.Unlock()
	q.signal()
}

// close discards what is queued and takes nothing more; it returns the
// discarded frames. Safe to call again: it returns what was given back
// since.
func (q *outQueue) close() []outFrame {
	q.mu.Lock()
	dropped := q.frames
	q.frames, q.closed = nil, true
	q.mu.Unlock()
	q.signal()
	return dropped
}
