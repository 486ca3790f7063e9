package rpc

import "encoding/json"

// Version is the only "jsonrpc" member value the bridge accepts and sends.
const Version = "2.0"

// MaxBatch is the most members a batch may have; a larger one is answered
// with a single -32600.
const MaxBatch = 1000

// Message is the envelope of one JSON-RPC 2.0 object: what the router needs
// to route it, with everything else kept as the exact bytes received.
//
// A request has a Method and an ID (which may be the literal null); a
// notification has a Method and no ID; a response has no Method, an ID, and
// exactly one of Result and Error. A Message is not safe for concurrent
// mutation; the router treats decoded messages as read-only.
type Message struct {
	// ID is the exact bytes of the "id" member ("7", "\"a\"", "null",
	// "-12345678901234567890"), or nil when the member is absent.
	ID json.RawMessage
	// Method is the decoded "method" member; empty for responses.
	Method string
	// Params, Result, Error and Meta are the exact bytes of those members,
	// nil when absent.
	Params json.RawMessage
	Result json.RawMessage
	Error  json.RawMessage
	Meta   json.RawMessage
}

// IsRequest reports whether m is a call (including notifications).
func (m *Message) IsRequest() bool { return m.Method != "" }

// IsNotification reports whether m is a call that wants no reply.
func (m *Message) IsNotification() bool { return m.Method != "" && m.ID == nil }

// IsResponse reports whether m is a reply to an earlier call.
func (m *Message) IsResponse() bool { return m.Method == "" }

// Item is one member of a decoded text message: a valid Message, or the
// error owed to an invalid one. When Err is set, ID holds the member's id if
// it could be read as a valid id, else nil (the reply then carries id null).
type Item struct {
	Msg *Message
	Err *Error
	ID  json.RawMessage
}
