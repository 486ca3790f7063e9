// Package hostadapters connects hosts that do not speak the bridge's
// JSON-RPC 2.0 as they are, and holds what the bridge knows of each app.
//
//   - catalog.go: the catalog, one JSON file per app (catalog/*.json,
//     embedded; a directory given with --catalog adds to it): aliases,
//     kind, default ports, wire dialect, known methods with their params,
//     whether re-sending them is safe, and their default timeouts. It is a
//     session.Catalog.
//   - wsrpc.go, wsrpc_conn.go: the wsrpc dialect (wsrpc-aiohttp's, spoken
//     by AYON's After Effects and Photoshop panels) as a session.Conn that
//     wraps the websocket one, so the session core only ever sees JSON-RPC
//     2.0.
package hostadapters
