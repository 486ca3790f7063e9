package web

import (
	"context"
	"errors"
	"fmt"
	"io"
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
// Read is called from one goroutine; the rest are safe for concurrent use.
type wsConn struct {
	ws       *websocket.Conn
	lastRead atomic.Int64 // unix nanoseconds of the last bytes read
}

func newWSConn(ws *websocket.Conn) *wsConn { return &wsConn{ws: ws} }

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

func (c *wsConn) CloseNow() error { return c.ws.CloseNow() }
