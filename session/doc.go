// Package session is the bridge's live state: one Session per peer
// connection, and the Router that routes JSON-RPC calls between them.
//
// Where each responsibility lives:
//
//   - conn.go: Conn, the transport seam. A Session reads and writes whole
//     text messages through it; package web adapts coder/websocket to it,
//     internal/memconn is an in-memory pair for tests, and a host adapter
//     wraps one to speak another wire dialect.
//   - session.go, queue.go: a Session's reader, writer and heartbeat, its
//     bounded outbound queue, its close, its state (connected, busy,
//     reconnecting).
//   - router.go: the Router, its lock, Serve, Shutdown, and the dispatch of
//     each incoming message (HandleHTTP for POST /rpc).
//   - registry.go: who is connected and what they offer; SessionInfo.
//   - calls.go, route.go: the calls in flight (forwarded ids, timeouts,
//     calls waiting for a session, in the order they were made); routing,
//     replies, cancel and progress.
//   - resume.go: busy sessions, dropped ones (parked calls), resumed ones
//     (re-sent calls, held replies), replaced ones, and leaving for good.
//   - builtins.go: the bridge.* methods; context.go: bridge.context and
//     the stored contexts; events.go: subscribe, publish, Watch.
//   - metrics.go: the Prometheus metrics (the Router is a Collector).
//   - logwriter.go: the Router's log lines, written off the sessions'
//     goroutines.
//
// Everything a Router owns is guarded by its one mutex, which is never held
// across I/O: frames go to per-session queues that each session's writer
// drains, and log lines made under the lock are written by a log writer
// once it is released. Waiting (for a session, for a resume, for silence)
// is done with package retry, woken by registry events, never by polling.
//
// An idle session is one goroutine, blocked in its read, with a 4 KiB
// stack: its writer runs only while there are frames, its heartbeat is a
// timer, and work that needs a deep stack (log lines, the builtins' JSON)
// runs on goroutines of its own.
package session
