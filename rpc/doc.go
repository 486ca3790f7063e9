// Package rpc is the JSON-RPC 2.0 wire of the bridge: message envelopes,
// strict decoding (batches, parse errors, exact ids), encoding of replies and
// forwarded requests, error codes, and a message stream over one websocket.
// It knows nothing about sessions or routing.
//
// # Where sourcegraph/jsonrpc2 is used, and where it is not
//
// The bridge's own read path never goes through github.com/sourcegraph/jsonrpc2:
// that library has no batches, closes the connection on invalid input without
// answering -32700, decodes "id": null as a notification, wraps negative ids
// as uint64 and re-marshals params through map[string]interface{}. [Decode]
// here answers all of those per the specification, keeps ids as their exact
// bytes, and keeps params, results and errors as raw bytes so the router
// forwards them untouched.
//
// The library is used for what it does well: the error codes (the Code*
// constants below are its constants), and the Go client side — [NewObjectStream]
// adapts a coder/websocket connection to a jsonrpc2.ObjectStream for the
// `bridge call` command, outbound adapters and test peers.
package rpc
