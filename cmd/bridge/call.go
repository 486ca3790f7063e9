package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/sourcegraph/jsonrpc2"

	"github.com/dccbridge/dccbridge/rpc"
)

// replyGrace is how much longer than --timeout a client waits for the
// bridge's own -32002 before giving up locally.
const replyGrace = 3 * time.Second

// helloTimeout bounds the CLI's bridge.hello when the call has no timeout.
const helloTimeout = 10 * time.Second

// maxStdinParams bounds the params read from stdin.
const maxStdinParams = 256 << 20

const callAbout = `
Call METHOD through the bridge and print its result as JSON on stdout.

METHOD is app.method (e.g. aftereffects.get_items) or a bridge built-in
(bridge.ping, bridge.sessions, bridge.context, ...). PARAMS is one of:
  '{"comps":true}' or '[1,2]'   one JSON object or array
  key=value ...                 named params; a value that parses as JSON
                                (5, true, null, {"a":1}, "quoted") is taken
                                as JSON, any other as a string
  -                             read JSON params from stdin
No PARAMS sends none.

A JSON-RPC error is printed on stderr as "error CODE: MESSAGE" followed by
its data. Progress the callee reports ($/progress) is printed on stderr.

Exit codes: 0 ok, 1 JSON-RPC error, 2 bad usage, 3 bridge unreachable (or no
reply within --timeout plus 3 s).

Examples:
  bridge call aftereffects.get_items '{"comps":true}'
  bridge call aftereffects.open path=/shots/sh010/comp.aep --target ae-7f3a
  echo '{"task":"comp"}' | bridge call pipeline.publish - --timeout 10m
`

// callConfig is what `bridge call` is configured with.
type callConfig struct {
	common
	target     string
	timeout    time.Duration
	wait       time.Duration
	waitSet    bool
	idempotent bool
	verbose    bool
	quiet      bool
}

// callCmd runs `bridge call METHOD [PARAMS]`.
func callCmd(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var cfg callConfig
	terminal := isTerminal(stderr)
	stderr = &lockedWriter{w: stderr} // progress is printed from the connection's reader
	sc := newSubcommand("call", "[flags] METHOD [PARAMS]", callAbout, stdout, stderr)
	cfg.common.register(sc.fs)
	sc.fs.StringVar(&cfg.target, "target", "", "send the call to this `instance` of the app (meta.target)")
	sc.fs.DurationVar(&cfg.timeout, "timeout", 0, "the call's timeout (meta.timeout_ms), e.g. 30s or 10m; 0 means the bridge's default (10m)")
	sc.fs.Func("wait", "how long the bridge waits for a healthy session offering METHOD (meta.wait_ms), a `duration` such as 0 or 30s; default the bridge's (10s)", func(s string) error {
		d, err := time.ParseDuration(s)
		if err != nil {
			return errors.New("want a duration, e.g. 0, 500ms or 30s")
		}
		cfg.wait, cfg.waitSet = d, true
		return nil
	})
	sc.fs.BoolVar(&cfg.idempotent, "idempotent", false, "the method is safe to run twice (meta.idempotent): the bridge may re-send it after the callee reconnects")
	sc.fs.BoolVar(&cfg.verbose, "v", false, "print who answered, and how long it took, on stderr")
	sc.fs.BoolVar(&cfg.quiet, "q", false, "say nothing on stderr while waiting (on a terminal, a call with no reply after a second says what it waits for)")
	pos, code, ok := sc.parse(args)
	if !ok {
		return code
	}
	if len(pos) == 0 {
		return sc.fail(usageError("no METHOD given"))
	}
	method := pos[0]
	if method == "" {
		return sc.fail(usageError("the METHOD is empty"))
	}
	params, err := buildParams(pos[1:], stdin)
	if err != nil {
		return sc.fail(err)
	}
	meta, err := cfg.meta()
	if err != nil {
		return sc.fail(err)
	}

	var answered answerMeta
	conn, err := dialBridge(context.Background(), &cfg.common, progressPrinter{out: stderr}, stderr, jsonrpc2.OnRecv(answered.record))
	if err != nil {
		return sc.fail(err)
	}
	defer conn.Close()

	ctx := context.Background()
	if cfg.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.timeout+replyGrace)
		defer cancel()
	}
	helloCtx, waited := ctx, cfg.timeout+replyGrace
	if cfg.timeout <= 0 {
		var cancel context.CancelFunc
		helloCtx, cancel = context.WithTimeout(ctx, helloTimeout)
		defer cancel()
		waited = helloTimeout
	}
	if err := conn.hello(helloCtx, "call"); err != nil {
		return reportCallError(sc, conn, err, waited)
	}
	var opts []jsonrpc2.CallOption
	if len(meta) > 0 {
		opts = append(opts, jsonrpc2.Meta(meta))
	}
	var p any // a nil json.RawMessage would be sent as "params":null
	if params != nil {
		p = params
	}
	start := time.Now()
	if terminal && !cfg.quiet {
		t := time.AfterFunc(time.Second, func() { sayWaiting(ctx, conn, stderr, method, cfg) })
		defer t.Stop()
	}
	var result json.RawMessage
	err = conn.Call(ctx, method, p, &result, opts...)
	if cfg.verbose {
		answered.print(stderr, time.Since(start))
	}
	if err != nil {
		return reportCallError(sc, conn, err, cfg.timeout+replyGrace)
	}
	writeJSON(stdout, result)
	return exitOK
}

// meta returns the routing hints the flags ask for (meta.target, timeout_ms, wait_ms, idempotent).
func (cfg *callConfig) meta() (map[string]any, error) {
	meta := map[string]any{}
	if cfg.target != "" {
		meta["target"] = cfg.target
	}
	switch {
	case cfg.timeout < 0:
		return nil, usageError("--timeout must not be negative")
	case cfg.timeout > 0:
		meta["timeout_ms"] = max(cfg.timeout.Milliseconds(), 1)
	}
	if cfg.waitSet {
		if cfg.wait < 0 {
			return nil, usageError("--wait must not be negative")
		}
		meta["wait_ms"] = cfg.wait.Milliseconds()
	}
	if cfg.idempotent {
		meta["idempotent"] = true
	}
	return meta, nil
}

// buildParams turns the arguments after METHOD into params: nothing, one
// JSON object or array, "-" for JSON on stdin, or key=value pairs. It
// returns nil for no params.
func buildParams(args []string, stdin io.Reader) (json.RawMessage, error) {
	switch {
	case len(args) == 0:
		return nil, nil
	case len(args) == 1 && args[0] == "-":
		b, err := io.ReadAll(io.LimitReader(stdin, maxStdinParams+1))
		if err != nil {
			return nil, usageError("reading params from stdin: %v", err)
		}
		if len(b) > maxStdinParams {
			return nil, usageError("params on stdin are larger than %d MiB", maxStdinParams>>20)
		}
		if len(bytes.TrimSpace(b)) == 0 {
			return nil, usageError("no params on stdin: give a JSON object or array")
		}
		return jsonParams(b, "stdin")
	case len(args) == 1 && !strings.Contains(args[0], "="):
		return jsonParams([]byte(args[0]), "PARAMS")
	}
	t := strings.TrimSpace(args[0])
	if strings.HasPrefix(t, "{") || strings.HasPrefix(t, "[") {
		if len(args) == 1 {
			return jsonParams([]byte(args[0]), "PARAMS")
		}
		return nil, usageError("give one JSON object or array as PARAMS, or key=value pairs, not both (got %d arguments after the method)", len(args))
	}
	return keyValueParams(args)
}

// jsonParams checks that b is one JSON object or array and returns it
// compacted.
func jsonParams(b []byte, what string) (json.RawMessage, error) {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return nil, usageError("bad JSON in %s: %v\nPARAMS is one JSON object or array, key=value pairs, or - to read JSON from stdin", what, err)
	}
	out := buf.Bytes()
	if len(out) == 0 || (out[0] != '{' && out[0] != '[') {
		return nil, usageError("params must be a JSON object or array (JSON-RPC named or positional params), not %s; for one named value use key=value", abbreviate(out))
	}
	return out, nil
}

// keyValueParams builds a JSON object from key=value pairs, in order.
func keyValueParams(args []string) (json.RawMessage, error) {
	b := []byte{'{'}
	seen := map[string]bool{}
	for i, arg := range args {
		key, value, ok := strings.Cut(arg, "=")
		if !ok || key == "" {
			return nil, usageError("bad params %q: want key=value (or one JSON object or array, or - to read JSON from stdin)", arg)
		}
		if seen[key] {
			return nil, usageError("params: key %q given twice", key)
		}
		seen[key] = true
		if i > 0 {
			b = append(b, ',')
		}
		k, _ := json.Marshal(key)
		b = append(append(b, k...), ':')
		var v bytes.Buffer
		if json.Valid([]byte(value)) && json.Compact(&v, []byte(value)) == nil {
			b = append(b, v.Bytes()...)
		} else {
			s, _ := json.Marshal(value)
			b = append(b, s...)
		}
	}
	return append(b, '}'), nil
}

// reportCallError prints a failed call on stderr and returns the exit
// code: 1 for a JSON-RPC error, 3 when the bridge went away or did not
// answer.
func reportCallError(sc *subcommand, conn *bridgeConn, err error, waited time.Duration) int {
	var rpcErr *jsonrpc2.Error
	switch {
	case errors.As(err, &rpcErr):
		printRPCError(sc.stderr, rpcErr, conn)
		if rpcErr.Code == rpc.CodeUnauthorized {
			return exitRefused // the hello's token: the same code as a refused upgrade
		}
		return exitRPCError
	case errors.Is(err, context.DeadlineExceeded):
		conn.drop() // the bridge is not answering: no close handshake either
		return sc.fail(unreachableError("no reply from the bridge at %s within %v: it did not answer, so the call was abandoned", conn.addr, waited))
	}
	return sc.fail(conn.closedError())
}

// printRPCError prints "error CODE: MESSAGE", the error's data as indented
// JSON, and a hint for the bridge's own codes.
func printRPCError(w io.Writer, e *jsonrpc2.Error, conn *bridgeConn) {
	fmt.Fprintf(w, "error %d: %s\n", e.Code, e.Message)
	if e.Data != nil {
		writeJSON(w, *e.Data)
	}
	var hint string
	switch e.Code {
	case rpc.CodeUnauthorized:
		hint = "the bridge needs a token: give it with --token, BRIDGE_TOKEN or --token-file (`bridge token` on the bridge's machine prints it)"
		if conn != nil && conn.defaultRefused {
			hint = "the token in the default token file is not this bridge's; " + hint
		}
	case rpc.CodeNoSession, rpc.CodeMethodNotFound:
		hint = "`bridge sessions` lists who is connected and the methods each offers"
	case rpc.CodeTimeout:
		hint = "--timeout gives the call longer"
	}
	if hint != "" {
		fmt.Fprintln(w, "hint:", hint)
	}
}

// writeJSON writes raw JSON indented, with a final newline.
func writeJSON(w io.Writer, raw []byte) {
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		buf.Reset()
		buf.Write(raw)
	}
	buf.WriteByte('\n')
	_, _ = w.Write(buf.Bytes())
}

func abbreviate(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "…"
	}
	return string(b)
}

// progressPrinter is the handler of `bridge call`: it prints the callee's
// $/progress values on out and refuses requests.
type progressPrinter struct{ out io.Writer }

// Handle implements jsonrpc2.Handler.
func (h progressPrinter) Handle(ctx context.Context, conn *jsonrpc2.Conn, req *jsonrpc2.Request) {
	if req.Method == "$/progress" && req.Notif && req.Params != nil {
		var p struct {
			Value json.RawMessage `json:"value"`
		}
		if json.Unmarshal(*req.Params, &p) == nil && p.Value != nil {
			fmt.Fprintf(h.out, "progress: %s\n", p.Value)
		}
		return
	}
	refuseRequests{}.Handle(ctx, conn, req)
}

// answerMeta records the meta of the reply: who answered. Safe for
// concurrent use.
type answerMeta struct {
	mu   sync.Mutex
	meta json.RawMessage
}

// record is a jsonrpc2.OnRecv hook.
func (a *answerMeta) record(_ *jsonrpc2.Request, resp *jsonrpc2.Response) {
	if resp == nil || resp.Meta == nil {
		return
	}
	a.mu.Lock()
	a.meta = append(json.RawMessage(nil), *resp.Meta...)
	a.mu.Unlock()
}

// print says who answered and how long the call took.
func (a *answerMeta) print(w io.Writer, took time.Duration) {
	a.mu.Lock()
	raw := a.meta
	a.mu.Unlock()
	var m struct {
		App      string `json:"app"`
		Instance string `json:"instance"`
		Session  string `json:"session"`
	}
	took = took.Round(time.Microsecond * 100)
	if raw == nil || json.Unmarshal(raw, &m) != nil || m.App == "" {
		fmt.Fprintf(w, "answered by the bridge in %v\n", took)
		return
	}
	fmt.Fprintf(w, "answered by %s instance %s (session %s) in %v\n", m.App, m.Instance, m.Session, took)
}

// isTerminal reports whether w is a terminal (a character device).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// sayWaiting tells a person at a terminal what a call with no reply yet
// waits for: a session that offers the method (and how long the bridge
// waits), or the session running it.
func sayWaiting(ctx context.Context, conn *bridgeConn, w io.Writer, method string, cfg callConfig) {
	app, _, _ := strings.Cut(method, ".")
	var sessions []struct {
		Instance string   `json:"instance"`
		State    string   `json:"state"`
		Methods  []string `json:"methods"`
	}
	qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_ = conn.Call(qctx, "bridge.sessions", map[string]any{"app": app}, &sessions)
	timeout := "the bridge's default, 10m"
	if cfg.timeout > 0 {
		timeout = cfg.timeout.String()
	}
	for _, s := range sessions {
		if s.State == "connected" || s.State == "busy" {
			for _, m := range s.Methods {
				if strings.EqualFold(m, method) {
					fmt.Fprintf(w, "bridge call: %s is running on %s (%s); waiting for its reply, up to %s (Ctrl+C gives up; -q says nothing)\n", method, s.Instance, s.State, timeout)
					return
				}
			}
		}
	}
	wait := "the bridge's default, 10s"
	if cfg.waitSet {
		wait = cfg.wait.String()
	}
	fmt.Fprintf(w, "bridge call: waiting for a session that offers %s (none is connected and healthy yet); the bridge waits %s (--wait), then answers -32001 (-q says nothing)\n", method, wait)
}
