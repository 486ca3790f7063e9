package session

import (
	"context"
	"errors"
	"strconv"
)

// Conn is a peer's connection as a Session sees it: whole text messages in
// and out, a liveness probe, and a close with a code and reason. The
// websocket adapter in package web implements it over coder/websocket; the
// in-memory pair of internal/memconn implements it for tests; a host
// adapter wraps one to translate another wire dialect into JSON-RPC 2.0.
//
// A Session calls Read from one goroutine and Write from another (never two
// Writes at once); Ping, Close and CloseNow may be called from any
// goroutine, concurrently with Read and Write.
type Conn interface {
	// Read returns the next text message. The Session owns the returned
	// slice. A message the transport refuses (binary, invalid UTF-8) is
	// reported as a *Violation, after which Read may be called again; the
	// peer's close as a *CloseError; any other error ends the connection.
	Read(ctx context.Context) ([]byte, error)
	// Write writes msg as one text message. An error ends the connection.
	Write(ctx context.Context, msg []byte) error
	// Ping checks that the peer is alive. It returns nil when the peer
	// answered, an error wrapping ErrReceiving when it did not answer
	// before ctx ended but a message from it was arriving meanwhile (it is
	// alive, busy sending), an error wrapping ErrNoPong when neither
	// happened, and any other error when the probe could not be sent.
	Ping(ctx context.Context) error
	// Close closes the connection with code and reason, doing the closing
	// handshake if the transport has one; it may block for a few seconds.
	Close(code CloseCode, reason string) error
	// CloseNow closes the connection at once: a Read, Write, Ping or
	// Close under way returns. The Session ends its read this way.
	CloseNow() error
}

// CloseCode is a websocket close code (RFC 6455 §7.4), the way a Session
// tells its peer why it ends the connection.
type CloseCode int

// The close codes a Session uses or recognises.
const (
	CloseNormal          CloseCode = 1000 // the peer is leaving for good
	CloseGoingAway       CloseCode = 1001 // the bridge is shutting down
	CloseUnsupportedData CloseCode = 1003 // a binary message
	CloseInvalidData     CloseCode = 1007 // a text message that is not UTF-8
	ClosePolicyViolation CloseCode = 1008 // slow reader, bad token
	CloseTooBig          CloseCode = 1009 // larger than the read limit
	CloseTryAgainLater   CloseCode = 1013 // too many sessions
	CloseReplaced        CloseCode = 4001 // a new connection of the same instance took over
)

// CloseError is the close the peer sent; Read returns it (wrapped) when the
// peer closed the connection.
type CloseError struct {
	Code   CloseCode
	Reason string
}

func (e *CloseError) Error() string {
	return "closed by the peer with " + strconv.Itoa(int(e.Code)) + " " + strconv.Quote(e.Reason)
}

// Violation is a message the transport refused (a binary message, a text
// message that is not UTF-8). The Session closes the connection with Code
// and Reason once what it has queued is written.
type Violation struct {
	Code   CloseCode
	Reason string
}

func (e *Violation) Error() string { return e.Reason }

// The liveness outcomes of Conn.Ping.
var (
	ErrNoPong    = errors.New("no pong")
	ErrReceiving = errors.New("no pong yet, but a message is arriving")
)

// peerCloseCode returns the code of the peer's close in err, or 0.
func peerCloseCode(err error) CloseCode {
	var ce *CloseError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return 0
}
