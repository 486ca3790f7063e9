package session

import (
	"slices"
	"sync"
)

// frameClass tells the queue what a full queue means for a frame.
type frameClass int

const (
	// classMustDeliver is a reply, a forwarded call or a control
	// notification: a full queue makes the session a slow reader.
	classMustDeliver frameClass = iota
	// classEvent is a bridge.event: dropped (and counted) once the queue is
	// half full, never a reason to close the session.
	classEvent
)

// outFrame is one frame waiting to be written. call is set when the frame
// forwards a call, so the writer can mark it written (or skip it if it was
// withdrawn while queued); reply is set for a reply owed to the session as
// a caller, which a replay caller gets again after a reconnect if it was
// never written; cancel is the forwarded id a $/cancelRequest frame
// cancels, which an instance that comes back is told again if it was never
// written.
type outFrame struct {
	data   []byte
	call   *call
	reply  bool
	cancel string
}

// outQueue is a session's outbound queue, bounded in bytes. A frame is
// counted from push until the writer is done with it (written, skipped or
// handed back at the end); the oldest such frame, the one being written or
// next to be, does not count against the limit, so a reader that keeps up
// takes frames of any size one after another. What waits behind it
// reaching the limit makes the session a slow reader: one session holds
// at most the limit, one frame over it and the frame at the head. push
// never blocks. Safe for concurrent use.
//
// The queue runs its consumer, the session's writer: a goroutine started
// when a frame arrives and none is running, which takes frames until the
// queue is empty and then ends, so an idle session has no writer.
//
// It ends in one of two ways: flush (write what is queued, then close the
// connection: a close the peer should see after its last replies) or close
// (stop now: what is queued, and what the writer took but had not written,
// is handed back to the Router to settle). stop, when the connection has
// ended, waits for the writer and starts no other.
type outQueue struct {
	mu      sync.Mutex
	frames  []outFrame
	spare   []outFrame
	limit   int   // bytes
	bytes   int   // of the frames queued or taken and not yet done with
	sizes   []int // their sizes, oldest first: sizes[head] is the head frame's
	head    int
	closed  bool // nothing more is written; unwritten frames go back to the Router
	flushed bool // the connection is closed once the queue is empty
	retired bool // the session left the registry: its call frames are not its own any more
	stopped bool // the connection has ended: no writer starts any more
	writing bool // a writer goroutine runs
	writer  func()
	writers sync.WaitGroup
}

// newOutQueue returns a queue of limit bytes whose writer runs writer,
// which calls take until it says to end.
func newOutQueue(limit int, writer func()) *outQueue {
	return &outQueue{limit: limit, writer: writer}
}

type pushResult int

const (
	pushed      pushResult = iota
	pushDropped            // an event that did not fit, or the queue is ending
	pushFull               // the queue is full: the session is a slow reader
)

func (q *outQueue) push(f outFrame, class frameClass) pushResult {
	q.mu.Lock()
	switch {
	case q.closed || q.flushed:
		q.mu.Unlock()
		return pushDropped
	case class == classEvent && q.behindHead() >= q.limit/2:
		q.mu.Unlock()
		return pushDropped
	case q.behindHead() >= q.limit:
		q.mu.Unlock()
		return pushFull
	}
	q.bytes += len(f.data)
	if q.head > 0 && len(q.sizes) == cap(q.sizes) { // full: reuse the room of frames done with
		q.sizes = q.sizes[:copy(q.sizes, q.sizes[q.head:])]
		q.head = 0
	}
	q.sizes = append(q.sizes, len(f.data))
	q.frames = append(q.frames, f)
	q.startWriter()
	q.mu.Unlock()
	return pushed
}

// startWriter starts the writer unless it runs or the connection has
// ended; q.mu is held.
func (q *outQueue) startWriter() {
	if q.writing || q.stopped {
		return
	}
	q.writing = true
	q.writers.Add(1)
	go func() {
		defer q.writers.Done()
		q.writer()
	}()
}

// takeNext tells the writer what to do after writing the frames it took.
type takeNext int

const (
	takeAgain takeNext = iota // take again
	takeEnd                   // end: the queue is empty, or the connection has ended
	takeClose                 // close the connection, then end: flushed and empty, or closed
)

// take returns every queued frame and what to do once they are written;
// the slice is valid until the next take. When it says takeEnd, the
// writer has ended as far as the queue is concerned: the next push starts
// another. A writer that closes the connection, or whose write failed,
// ends without a takeEnd, so no other starts: nothing more is written to
// that connection.
func (q *outQueue) take() ([]outFrame, takeNext) {
	q.mu.Lock()
	defer q.mu.Unlock()
	switch {
	case q.stopped:
		q.writing = false
		return nil, takeEnd
	case q.closed:
		return nil, takeClose
	case len(q.frames) == 0 && !q.flushed:
		q.writing = false
		return nil, takeEnd
	}
	// Double-buffer: the writer owns the returned slice; the one it
	// returned last time (done with now) takes new frames.
	clear(q.spare)
	var frames []outFrame
	frames, q.frames, q.spare = q.frames, q.spare[:0], q.frames
	if q.flushed {
		return frames, takeClose
	}
	return frames, takeAgain
}

// claimResult is what the writer may do with a frame it took.
type claimResult int

const (
	claimWrite  claimResult = iota
	claimSkip               // a call withdrawn while queued, or moved to another session
	claimClosed             // the queue was closed: write nothing more
)

// done tells the queue the writer is done with f: written, or skipped.
func (q *outQueue) done(f outFrame) {
	q.mu.Lock()
	q.bytes -= len(f.data)
	if q.head < len(q.sizes) {
		q.head++
	}
	if q.head == len(q.sizes) { // drained: start over in the same array, unless it grew large
		q.head, q.sizes = 0, q.sizes[:0]
		if cap(q.sizes) > 1024 {
			q.sizes = nil
		}
	}
	q.mu.Unlock()
}

// behindHead is how many bytes wait behind the head frame; q.mu is held.
func (q *outQueue) behindHead() int {
	if q.head == len(q.sizes) {
		return 0
	}
	return q.bytes - q.sizes[q.head]
}

// claim tells the writer whether it may write f, and marks a call frame's
// call written. Nothing is written once the queue is closed, and a call
// frame only while the session is in the registry and the call has not
// been withdrawn: once the session has left (replaced by a new
// connection, say), its calls may have moved to another session and must
// not be written here too.
func (q *outQueue) claim(f outFrame) claimResult {
	q.mu.Lock()
	defer q.mu.Unlock()
	switch {
	case q.closed:
		return claimClosed
	case f.call != nil && (q.retired || !f.call.markWritten()):
		return claimSkip
	}
	return claimWrite
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
// of the queue, in order; it reports false when the queue is closed, when
// the caller must hand them to the Router itself.
func (q *outQueue) giveBack(frames []outFrame) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return false
	}
	q.frames = append(slices.Clone(frames), q.frames...)
	return true
}

// flush makes the writer close the connection once what is queued now has
// been written.
func (q *outQueue) flush() {
	q.mu.Lock()
	q.flushed = true
	q.startWriter()
	q.mu.Unlock()
}

// close stops the writer before its next frame and returns what is queued,
// for the Router to settle. Calling it again returns nothing.
func (q *outQueue) close() []outFrame {
	q.mu.Lock()
	dropped := q.frames
	q.frames, q.closed = nil, true
	q.startWriter()
	q.mu.Unlock()
	return dropped
}

// stop is called once the connection has ended: it waits for the writer
// (which ends at its next take) and starts no other. What is still queued
// stays for close.
func (q *outQueue) stop() {
	q.mu.Lock()
	q.stopped = true
	q.mu.Unlock()
	q.writers.Wait()
}
