package session

import (
	"sync"

	"github.com/dccbridge/dccbridge/rpc"
)

// A sink receives the one reply frame owed for a request. deliver must not
// block and must not take Router.mu (it is called with it held).
type sink interface {
	deliver(frame []byte)
}

// sinkFunc adapts a function to a sink.
type sinkFunc func(frame []byte)

func (f sinkFunc) deliver(frame []byte) { f(frame) }

// batchReplies collects the replies of one batch and delivers them as one
// array once the last one has arrived. Safe for concurrent use.
type batchReplies struct {
	out      sink
	mu       sync.Mutex
	expected int
	frames   [][]byte
}

func (b *batchReplies) deliver(frame []byte) {
	b.mu.Lock()
	b.frames = append(b.frames, frame)
	done := len(b.frames) == b.expected
	b.mu.Unlock()
	if done {
		b.out.deliver(rpc.AppendBatch(nil, b.frames))
	}
}

// chanSink hands the reply to a waiting HTTP handler.
type chanSink chan []byte

func (c chanSink) deliver(frame []byte) {
	select {
	case c <- frame:
	default:
	}
}
