// Package memconn is an in-memory connection for tests of the session core:
// New returns the bridge's end, a session.Conn, and the Peer at the other
// end. It needs no socket, so tests run inside testing/synctest bubbles,
// where time is fake and a 30 s resume wait passes in microseconds.
//
// Messages written by the bridge wait in a buffer of Options.Buffer
// messages; a full buffer blocks the bridge's writer as a peer that stops
// reading would. Everything is safe for concurrent use.
package memconn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"

	"github.com/dccbridge/dccbridge/session"
)

// Options configure a pair. The zero value is usable.
type Options struct {
	// Buffer is how many messages from the bridge wait for the peer to
	// read them before the bridge's Write blocks. Default 64.
	Buffer int
}

// pipe is the state both ends share.
type pipe struct {
	toPeer   chan []byte
	toBridge chan []byte
	done     chan struct{} // closed when the connection ends

	once    sync.Once
	code    session.CloseCode // 0: dropped without a close
	reason  string
	byPeer  bool
	noPong  atomic.Bool
	sending atomic.Bool
}

// end ends the connection once; it reports whether this call ended it.
func (p *pipe) end(code session.CloseCode, reason string, byPeer bool) bool {
	ended := false
	p.once.Do(func() {
		p.code, p.reason, p.byPeer = code, reason, byPeer
		close(p.done)
		ended = true
	})
	return ended
}

// New returns the two ends of a new connection.
func New(opts Options) (*Conn, *Peer) {
	if opts.Buffer <= 0 {
		opts.Buffer = 64
	}
	p := &pipe{
		toPeer:   make(chan []byte, opts.Buffer),
		toBridge: make(chan []byte, 1024),
		done:     make(chan struct{}),
	}
	return &Conn{p}, &Peer{p}
}

// Conn is the bridge's end: a session.Conn.
type Conn struct{ p *pipe }

var _ session.Conn = (*Conn)(nil)

// Read returns the peer's next message; what the peer sent before it
// closed is read first. A ctx that ends first drops the connection, as
// with coder/websocket.
func (c *Conn) Read(ctx context.Context) ([]byte, error) {
	m, err := c.p.receive(ctx, c.p.toBridge, true)
	if err != nil && ctx.Err() != nil {
		c.p.end(0, "", false)
	}
	return m, err
}

// receive returns the next message of ch; once the connection has ended
// and ch is empty, the error the receiving end sees.
func (p *pipe) receive(ctx context.Context, ch chan []byte, forBridge bool) ([]byte, error) {
	select {
	case m := <-ch:
		return m, nil
	default:
	}
	select {
	case m := <-ch:
		return m, nil
	case <-p.done:
		select {
		case m := <-ch:
			return m, nil
		default:
		}
		return nil, p.err(forBridge)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// err is the error an end sees once the connection has ended: the other
// end's close as a *session.CloseError, or io.EOF when it was dropped.
func (p *pipe) err(forBridge bool) error {
	if p.code == 0 {
		return fmt.Errorf("connection dropped: %w", io.EOF)
	}
	if p.byPeer == forBridge {
		return &session.CloseError{Code: p.code, Reason: p.reason}
	}
	return fmt.Errorf("closed here: %w", net.ErrClosed)
}

// Write queues msg for the peer; it blocks while the peer's buffer is full.
// A ctx that ends first drops the connection, as with coder/websocket.
func (c *Conn) Write(ctx context.Context, msg []byte) error {
	select {
	case <-c.p.done:
		return net.ErrClosed
	default:
	}
	select {
	case c.p.toPeer <- msg:
		return nil
	case <-c.p.done:
		return net.ErrClosed
	case <-ctx.Done():
		c.p.end(0, "", false)
		return fmt.Errorf("write: %w", ctx.Err())
	}
}

// Ping answers at once unless the peer stopped answering pings
// (Peer.SetPong); then it waits for ctx and reports ErrReceiving while the
// peer is marked as sending (Peer.SetSending), else ErrNoPong.
func (c *Conn) Ping(ctx context.Context) error {
	select {
	case <-c.p.done:
		return net.ErrClosed
	default:
	}
	if !c.p.noPong.Load() {
		return nil
	}
	select {
	case <-c.p.done:
		return net.ErrClosed
	case <-ctx.Done():
	}
	if c.p.sending.Load() {
		return session.ErrReceiving
	}
	return session.ErrNoPong
}

// Close ends the connection with code and reason.
func (c *Conn) Close(code session.CloseCode, reason string) error {
	c.p.end(code, reason, false)
	return nil
}

// CloseNow ends the connection without a close code.
func (c *Conn) CloseNow() error {
	c.p.end(0, "", false)
	return nil
}

// Peer is the client's end.
type Peer struct{ p *pipe }

// ErrClosed is returned by Send once the connection has ended.
var ErrClosed = errors.New("memconn: connection closed")

// Send sends msg to the bridge.
func (p *Peer) Send(msg []byte) error {
	select {
	case <-p.p.done:
		return ErrClosed
	default:
	}
	select {
	case p.p.toBridge <- msg:
		return nil
	case <-p.p.done:
		return ErrClosed
	}
}

// Recv returns the bridge's next message; once the connection has ended
// and every message is read, it returns the bridge's close as a
// *session.CloseError (or io.EOF when dropped).
func (p *Peer) Recv(ctx context.Context) ([]byte, error) {
	return p.p.receive(ctx, p.p.toPeer, false)
}

// Close ends the connection with code and reason, as a peer's close frame.
func (p *Peer) Close(code session.CloseCode, reason string) {
	p.p.end(code, reason, true)
}

// Drop ends the connection without a close, as a network failure.
func (p *Peer) Drop() { p.p.end(0, "", true) }

// Done is closed when the connection has ended, from either end.
func (p *Peer) Done() <-chan struct{} { return p.p.done }

// CloseCode is the code the connection ended with (0 while open or when
// it was dropped), and whether the bridge's end closed it.
func (p *Peer) CloseCode() (code session.CloseCode, reason string, byBridge bool) {
	select {
	case <-p.p.done:
		return p.p.code, p.p.reason, !p.p.byPeer
	default:
		return 0, "", false
	}
}

// SetPong sets whether the peer answers pings (default true); a peer that
// does not is one whose network went away silently.
func (p *Peer) SetPong(on bool) { p.p.noPong.Store(!on) }

// SetSending marks the peer as in the middle of sending a large message:
// a ping it does not answer reports session.ErrReceiving.
func (p *Peer) SetSending(on bool) { p.p.sending.Store(on) }
