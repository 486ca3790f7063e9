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

// newBatchReplies returns a sink for the replies of the batch items, which
// delivers them to out as one array.
func newBatchReplies(out sink, items []rpc.Item) *batchReplies {
	return &batchReplies{out: out, expected: expectedReplies(items)}
}

// expectedReplies counts the items that are owed a reply: the invalid ones
// and the requests that are not notifications.
func expectedReplies(items []rpc.Item) int {
	n := 0
	for _, it := range items {
		if it.Err != nil || (it.Msg.IsRequest() && !it.Msg.IsNotification()) {
			n++
		}
	}
	return n
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

// sessionSink delivers a reply to the session that called.
type sessionSink struct{ s *Session }

func (k sessionSink) deliver(frame []byte) { k.s.reply(frame) }

// chanSink hands the reply to a waiting HTTP handler.
type chanSink chan []byte

func (c chanSink) deliver(frame []byte) {
	select {
	case c <- frame:
	default:
	}
}
