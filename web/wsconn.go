package web

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"

	"github.com/dccbridge/dccbridge/session"
)

// wsConn is a session.Conn over a coder/websocket connection. It reads each
// message in chunks and notes when the last chunk arrived, so that Ping can
// tell a peer that is busy sending a large message from one that is gone.
// It holds the TCP connection too, so that CloseNow ends reads, writes and
// a close handshake under way at once. Read is called from one goroutine;
// the rest are safe for concurrent use.
type wsConn struct {
	ws       *websocket.Conn
	raw      net.Conn
	lastRead atomic.Int64 // unix nanoseconds of the last bytes read
}

// The buffers a websocket connection reads and writes through, in bytes.
// An idle session keeps both for its whole life, so they are small: a
// message that does not fit is read straight into the message and written
// straight from it (a message larger than the write buffer takes two
// writes to the socket instead of one).
const (
	wsReadBuffer  = 1 << 10
	wsWriteBuffer = 2 << 10
)

// acceptWS upgrades the request to a websocket connection whose reads and
// writes go through buffers of wsReadBuffer and wsWriteBuffer bytes
// instead of the 4 KiB each that net/http hands over with the connection.
func acceptWS(w http.ResponseWriter, r *http.Request, opts *websocket.AcceptOptions) (*wsConn, error) {
	hj := &smallBufferHijacker{ResponseWriter: w}
	ws, err := websocket.Accept(hj, r, opts)
	if err != nil {
		return nil, err
	}
	return &wsConn{ws: ws, raw: hj.raw}, nil
}

// smallBufferHijacker hands coder/websocket the hijacked connection with
// buffers of its own sizes, and keeps the connection.
type smallBufferHijacker struct {
	http.ResponseWriter
	raw net.Conn
}

func (h *smallBufferHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	h.raw = conn
	// Bytes of the client's first frames may be in net/http's reader
	// already: the new reader holds them as buffered, the way
	// coder/websocket expects them.
	n := brw.Reader.Buffered()
	early, _ := brw.Reader.Peek(n)
	rd := bufio.NewReaderSize(io.MultiReader(bytes.NewReader(bytes.Clone(early)), conn), max(wsReadBuffer, n))
	if _, err := rd.Peek(n); err != nil {
		return nil, nil, err
	}
	return conn, bufio.NewReadWriter(rd, bufio.NewWriterSize(conn, wsWriteBuffer)), nil
}

// readChunk is the most bytes read at once; a message grows by this much.
const readChunk = 32 << 10

func (c *wsConn) Read(ctx context.Context) ([]byte, error) {
	typ, r, err := c.ws.Reader(ctx)
	if err != nil {
		return nil, c.readError(err)
	}
	c.lastRead.Store(time.Now().UnixNano())
	buf := make([]byte, 0, 512)
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, min(cap(buf), readChunk))
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if n > 0 {
			c.lastRead.Store(time.Now().UnixNano())
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, c.readError(err)
		}
	}
	switch {
	case typ != websocket.MessageText:
		return nil, &session.Violation{Code: session.CloseUnsupportedData, Reason: "binary messages are not accepted: send JSON-RPC as text"}
	case !utf8.Valid(buf):
		// RFC 6455 §8.1: a text message that is not UTF-8 fails the
		// connection; it is never forwarded to anyone.
		return nil, &session.Violation{Code: session.CloseInvalidData, Reason: "a text message that is not valid UTF-8"}
	}
	return buf, nil
}

// readError turns the peer's close into a session.CloseError.
func (c *wsConn) readError(err error) error {
	var ce websocket.CloseError
	if errors.As(err, &ce) {
		return fmt.Errorf("read: %w", &session.CloseError{Code: session.CloseCode(ce.Code), Reason: ce.Reason})
	}
	return fmt.Errorf("read: %w", err)
}

func (c *wsConn) Write(ctx context.Context, msg []byte) error {
	return c.ws.Write(ctx, websocket.MessageText, msg)
}

// Ping sends a websocket ping and waits for its pong until ctx ends.
// coder/websocket gives up writing the ping after 5 s (while a long write
// holds the connection): that is reported as a ping not sent, not as a
// missing pong.
func (c *wsConn) Ping(ctx context.Context) error {
	start := time.Now().UnixNano()
	err := c.ws.Ping(ctx)
	switch {
	case err == nil:
		return nil
	case ctx.Err() == nil:
		return fmt.Errorf("ping not sent: %w", err)
	case c.lastRead.Load() > start:
		return fmt.Errorf("%w (%v)", session.ErrReceiving, err)
	}
	return fmt.Errorf("%w (%v)", session.ErrNoPong, err)
}

func (c *wsConn) Close(code session.CloseCode, reason string) error {
	return c.ws.Close(websocket.StatusCode(code), reason)
}

// CloseNow closes the TCP connection first: coder/websocket's own CloseNow
// waits for a close handshake under way, which then fails at once.
func (c *wsConn) CloseNow() error {
	_ = c.raw.Close()
	return c.ws.CloseNow()
}
