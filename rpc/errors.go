package rpc

import (
	"encoding/json"
	"fmt"
)

// Error codes. The first five are the specification's (and jsonrpc2's); the
// rest are the bridge's own, in the server range (docs/protocol.md, Errors).
const (
	CodeParseError     int64 = -32700
	CodeInvalidRequest int64 = -32600
	CodeMethodNotFound int64 = -32601
	CodeInvalidParams  int64 = -32602
	CodeInternalError  int64 = -32603

	CodeNoSession    int64 = -32001 // no healthy session offers the method
	CodeTimeout      int64 = -32002 // the call's timeout ran out
	CodeOverloaded   int64 = -32003 // a queue or limit is full; not delivered
	CodeCalleeGone   int64 = -32004 // the callee dropped and did not come back
	CodeUnauthorized int64 = -32005 // bad or missing token
	CodeShuttingDown int64 = -32006 // the bridge is shutting down
	CodeCancelled    int64 = -32800 // the caller cancelled the call
)

// Error is a JSON-RPC error object. Two errors are the same (errors.Is) when
// their codes are equal, so the sentinels below match any detail.
type Error struct {
	Code    int64           `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data,omitempty"`
}

// Sentinels for errors.Is; build detailed errors with [Errorf] and [Error.WithData].
var (
	ErrParse          = &Error{Code: CodeParseError, Message: "Parse error"}
	ErrInvalidRequest = &Error{Code: CodeInvalidRequest, Message: "Invalid Request"}
	ErrMethodNotFound = &Error{Code: CodeMethodNotFound, Message: "Method not found"}
	ErrInvalidParams  = &Error{Code: CodeInvalidParams, Message: "Invalid params"}
	ErrInternal       = &Error{Code: CodeInternalError, Message: "Internal error"}
	ErrNoSession      = &Error{Code: CodeNoSession, Message: "no healthy session offers the method"}
	ErrTimeout        = &Error{Code: CodeTimeout, Message: "call timed out"}
	ErrOverloaded     = &Error{Code: CodeOverloaded, Message: "overloaded"}
	ErrCalleeGone     = &Error{Code: CodeCalleeGone, Message: "the callee dropped and did not come back"}
	ErrUnauthorized   = &Error{Code: CodeUnauthorized, Message: "unauthorized"}
	ErrShuttingDown   = &Error{Code: CodeShuttingDown, Message: "the bridge is shutting down"}
	ErrCancelled      = &Error{Code: CodeCancelled, Message: "cancelled"}
)

// Errorf returns an error with the given code and a formatted message.
func Errorf(code int64, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// WithData returns a copy of e whose data member is v encoded as JSON.
// A value that cannot be encoded leaves data empty.
func (e *Error) WithData(v any) *Error {
	c := *e
	c.Data = nil
	if b, err := json.Marshal(v); err == nil {
		c.Data = b
	}
	return &c
}

// Error implements the error interface.
func (e *Error) Error() string {
	if len(e.Data) > 0 {
		return fmt.Sprintf("jsonrpc2 error %d: %s (data: %s)", e.Code, e.Message, e.Data)
	}
	return fmt.Sprintf("jsonrpc2 error %d: %s", e.Code, e.Message)
}

// Is reports whether target is an *Error with the same code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t != nil && t.Code == e.Code
}
