// Package rpc is the JSON-RPC 2.0 wire of the bridge: message envelopes,
// strict decoding (batches, parse errors, exact ids), encoding of replies and
// forwarded requests, and error codes. It knows nothing about sessions or
// routing, and imports only the standard library.
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
// The library is used, outside this package, for what it does well: the Go
// client side. The bridge command's client subcommands (`bridge call`,
// `bridge sessions`) run a jsonrpc2.Conn over a coder/websocket connection,
// through an adapter of their own (cmd/bridge/stream.go). The first five
// Code* constants have the library's values, which are the specification's.
package rpc
