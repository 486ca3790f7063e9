package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/sourcegraph/jsonrpc2"
)

// Limits of the client subcommands.
const (
	// dialTimeout bounds connecting to the bridge, websocket upgrade included.
	dialTimeout = 5 * time.Second
	// clientReadLimit is the largest message a client reads: well above the
	// bridge's default --max-message (16 MiB), so any reply it forwards fits.
	clientReadLimit = 256 << 20
	// closeWait bounds the close handshake when a client is done.
	closeWait = 2 * time.Second
)

// cliError is a failure of a subcommand with the exit code it maps to.
type cliError struct {
	code int
	msg  string
}

func (e *cliError) Error() string { return e.msg }

// usageError is a bad-usage failure (exit 2).
func usageError(format string, args ...any) error {
	return &cliError{code: exitUsage, msg: fmt.Sprintf(format, args...)}
}

// unreachableError is a failure to reach the bridge (exit 3).
func unreachableError(format string, args ...any) error {
	return &cliError{code: exitUnreachable, msg: fmt.Sprintf(format, args...)}
}

// refusedError is an exit-4 error: the bridge refused the token.
func refusedError(format string, args ...any) error {
	return &cliError{code: exitRefused, msg: fmt.Sprintf(format, args...)}
}

// subcommand is a client subcommand's flag set and help. Flags print their
// full help on stdout for -h, and a short usage line on stderr for a
// mistake.
type subcommand struct {
	name     string // e.g. "call"
	synopsis string // after "bridge NAME", e.g. "[flags] METHOD [PARAMS]"
	about    string // the help text above the flags
	fs       *flag.FlagSet
	stdout   io.Writer
	stderr   io.Writer
}

// newSubcommand returns a subcommand with an empty flag set.
func newSubcommand(name, synopsis, about string, stdout, stderr io.Writer) *subcommand {
	c := &subcommand{name: name, synopsis: synopsis, about: about, stdout: stdout, stderr: stderr}
	c.fs = flag.NewFlagSet("bridge "+name, flag.ContinueOnError)
	c.fs.SetOutput(stderr)
	c.fs.Usage = func() {} // parse prints the help or the short usage itself
	return c
}

func (c *subcommand) shortUsage() {
	fmt.Fprintf(c.stderr, "usage: bridge %s %s\nRun \"bridge %s -h\" for details.\n", c.name, c.synopsis, c.name)
}

func (c *subcommand) help() {
	fmt.Fprintf(c.stdout, "Usage: bridge %s %s\n\n%s\n\nFlags (before or after the arguments):\n", c.name, c.synopsis, strings.TrimSpace(c.about))
	c.fs.SetOutput(c.stdout)
	c.fs.PrintDefaults()
	c.fs.SetOutput(c.stderr)
}

// parse parses args, flags anywhere among the arguments, and returns the
// positional arguments. When it returns ok false, the command is over
// (help printed, or a usage error reported) and code is its exit code.
func (c *subcommand) parse(args []string) (pos []string, code int, ok bool) {
	pos, err := parseInterleaved(c.fs, args)
	if errors.Is(err, flag.ErrHelp) {
		c.help()
		return nil, exitOK, false
	}
	if err != nil {
		c.shortUsage() // after the flag package's own message
		return nil, exitUsage, false
	}
	return pos, exitOK, true
}

// fail reports err on stderr and returns its exit code: a *cliError's own,
// else 1. A usage error is followed by the short usage.
func (c *subcommand) fail(err error) int {
	fmt.Fprintf(c.stderr, "bridge %s: %v\n", c.name, err)
	var ce *cliError
	if !errors.As(err, &ce) {
		return exitRPCError
	}
	if ce.code == exitUsage {
		c.shortUsage()
	}
	return ce.code
}

// parseAddr parses args for a subcommand that takes flags only, and
// returns the address it dials (from c's --addr); when ok is false the
// subcommand exits with code (the usage was printed).
func (sc *subcommand) parseAddr(args []string, c *common) (addr string, code int, ok bool) {
	pos, code, ok := sc.parse(args)
	if !ok {
		return "", code, false
	}
	if len(pos) > 0 {
		return "", sc.fail(usageError("unexpected argument %q", pos[0])), false
	}
	addr, err := dialAddr(c.addr)
	if err != nil {
		return "", sc.fail(usageError("%v", err)), false
	}
	return addr, exitOK, true
}

// parseInterleaved parses args with fs, letting flags come before, between
// and after the positional arguments, and returns the positional arguments
// in order. "--" ends the flags: everything after it is positional.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:] // shorter each time round: the loop ends
	}
}

// Where a client's token came from.
const (
	tokenNone     = iota
	tokenExplicit // --token, BRIDGE_TOKEN, --token-file or BRIDGE_TOKEN_FILE
	tokenDefault  // the default token file
)

// tokenForClient returns the token a client sends and where it came from.
// A token that was given but cannot be read is a usage error; an
// unreadable default file is reported on warn and skipped.
func (c *common) tokenForClient(warn io.Writer) (string, int, error) {
	t, err := c.explicitToken()
	if err != nil {
		return "", tokenNone, usageError("%v", err)
	}
	if t != "" {
		return t, tokenExplicit, nil
	}
	t, err = c.clientToken()
	if err != nil {
		fmt.Fprintf(warn, "warning: skipping the default token file: %v\n", err)
		return "", tokenNone, nil
	}
	if t != "" {
		return t, tokenDefault, nil
	}
	return "", tokenNone, nil
}

// directClient returns an HTTP client that never goes through a proxy: the
// bridge is always reached directly.
func directClient(timeout time.Duration) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	return &http.Client{Transport: tr, Timeout: timeout}
}

// bridgeConn is a client's JSON-RPC connection to the bridge. Its methods
// are safe for concurrent use; Close must be called when done.
type bridgeConn struct {
	*jsonrpc2.Conn
	// drop closes the connection at once, without a close handshake (the
	// bridge cancels the calls in flight at their hosts).
	drop   context.CancelFunc
	stream *recordingStream
	addr   string
	// defaultRefused: the default file's token was refused with 401, and
	// the connection was made again without a token.
	defaultRefused bool
	token          string // the token sent on the upgrade, if any
}

// hello says bridge.hello as a tool named for the subcommand, the user,
// the machine and the process (`bridge call (ana@ws-12, pid 4711)`), so
// that the status page and the logs say who called; the bridge closes a
// connection that does not say hello within its deadline.
func (c *bridgeConn) hello(ctx context.Context, subcommand string) error {
	host, _ := os.Hostname()
	who := os.Getenv("USER")
	if who == "" {
		who = os.Getenv("USERNAME") // Windows
	}
	if who != "" {
		host = who + "@" + host
	}
	params := map[string]any{
		"app":      "cli",
		"kind":     "tool",
		"instance": fmt.Sprintf("cli-%s-%d-%s", host, os.Getpid(), randomHex(3)),
		"label":    fmt.Sprintf("bridge %s (%s, pid %d)", subcommand, host, os.Getpid()),
		"version":  version,
	}
	if c.token != "" {
		params["token"] = c.token
	}
	return c.Call(ctx, "bridge.hello", params, nil)
}

// dialBridge connects to the bridge's websocket at c.addr, with the
// client's token as "Authorization: Bearer", and runs a jsonrpc2.Conn over
// it with handler h (nil: requests from the bridge are refused). Failures
// are *cliError: bad address or token file → exit 2, no bridge there or
// upgrade refused → exit 3.
func dialBridge(ctx context.Context, c *common, h jsonrpc2.Handler, warn io.Writer, opts ...jsonrpc2.ConnOpt) (*bridgeConn, error) {
	addr, err := dialAddr(c.addr)
	if err != nil {
		return nil, usageError("%v", err)
	}
	token, source, err := c.tokenForClient(warn)
	if err != nil {
		return nil, err
	}
	url := "ws://" + addr + "/ws"
	ws, resp, err := dialWS(ctx, url, token)
	refused := false
	if err != nil && source == tokenDefault && resp != nil && resp.StatusCode == http.StatusUnauthorized {
		// The default file's token is not this bridge's (another user's
		// bridge, or one given its token explicitly). A bridge with no
		// token in force admits a local client without one.
		refused = true
		source = tokenNone
		ws, resp, err = dialWS(ctx, url, "")
	}
	if err != nil {
		return nil, describeDialError(addr, err, resp, source)
	}
	ws.SetReadLimit(clientReadLimit)
	if h == nil {
		h = refuseRequests{}
	}
	// Ending wsCtx drops the connection at once: coder/websocket closes a
	// connection whose read context ends.
	wsCtx, drop := context.WithCancel(context.Background())
	stream := &recordingStream{objectStream: newObjectStream(wsCtx, ws, 10*time.Second)}
	opts = append([]jsonrpc2.ConnOpt{jsonrpc2.SetLogger(log.New(io.Discard, "", 0))}, opts...)
	conn := jsonrpc2.NewConn(context.Background(), stream, h, opts...)
	if refused {
		token = ""
	}
	return &bridgeConn{Conn: conn, drop: drop, stream: stream, addr: addr, defaultRefused: refused, token: token}, nil
}

// dialWS opens the websocket to url, sending token when not empty.
func dialWS(ctx context.Context, url, token string) (*websocket.Conn, *http.Response, error) {
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	header := http.Header{}
	if token != "" {
		header.Set("Authorization", "Bearer "+token)
	}
	return websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: directClient(0), HTTPHeader: header})
}

// describeDialError turns a failed websocket dial into an exit-3 error that
// says what went wrong and what to do.
func describeDialError(addr string, err error, resp *http.Response, source int) error {
	if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
		body := ""
		if resp.Body != nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			body = strings.TrimSpace(string(b))
		}
		if body != "" {
			body = ": " + body
		}
		switch resp.StatusCode {
		case http.StatusUnauthorized:
			hint := "give the bridge's token with --token, BRIDGE_TOKEN or --token-file (`bridge token` on the bridge's machine prints it)"
			if source == tokenExplicit {
				hint = "the token given (--token, BRIDGE_TOKEN or --token-file) is not the bridge's; " + hint
			}
			return refusedError("the bridge at %s refused the token (HTTP 401%s)\n%s", addr, body, hint)
		case http.StatusForbidden:
			return unreachableError("the bridge at %s refused the connection (HTTP 403%s)\ndial it by 127.0.0.1, localhost or the address it listens on", addr, body)
		}
		return unreachableError("ws://%s/ws answered HTTP %d%s, not a websocket upgrade: is something else listening on %s? (--addr / BRIDGE_ADDR pick the bridge's address)", addr, resp.StatusCode, body, addr)
	}
	cause := err
	var op *net.OpError
	if errors.As(err, &op) {
		cause = op.Err
	}
	var hint string
	switch {
	case isConnRefused(err):
		hint = "nothing is listening there: is the bridge running? Start it with `bridge serve`, or point --addr / BRIDGE_ADDR at it"
	case errors.Is(err, context.DeadlineExceeded):
		hint = fmt.Sprintf("no answer within %v: is the bridge running, and is %s the right address?", dialTimeout, addr)
	default:
		hint = "is the bridge running? Start it with `bridge serve`, or point --addr / BRIDGE_ADDR at it"
	}
	return unreachableError("cannot reach the bridge at %s: %v\n%s", addr, cause, hint)
}

// closedError describes a connection that ended before the reply came.
func (b *bridgeConn) closedError() error {
	err := b.stream.readErr()
	if code := websocket.CloseStatus(err); code != -1 {
		var ce websocket.CloseError
		errors.As(err, &ce)
		return unreachableError("the bridge at %s closed the connection before replying: close %d %s", b.addr, int(code), ce.Reason)
	}
	if err == nil {
		err = jsonrpc2.ErrClosed
	}
	return unreachableError("the connection to the bridge at %s ended before the reply: %v", b.addr, err)
}

// Close ends the connection, with a close handshake bounded by closeWait
// (coder/websocket's own bound is 5 s, and a CloseNow during a Close waits
// for it).
func (b *bridgeConn) Close() {
	done := make(chan struct{})
	go func() {
		_ = b.Conn.Close()
		close(done)
	}()
	t := time.NewTimer(closeWait)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		b.drop()
		<-done
	}
	b.drop()
}

// recordingStream is an objectStream that keeps the error that ended
// its reads, so a client can say why the connection ended.
type recordingStream struct {
	*objectStream
	mu  sync.Mutex
	err error
}

// ReadObject implements jsonrpc2.ObjectStream.
func (s *recordingStream) ReadObject(v any) error {
	err := s.objectStream.ReadObject(v)
	if err != nil {
		s.mu.Lock()
		if s.err == nil {
			s.err = err
		}
		s.mu.Unlock()
	}
	return err
}

func (s *recordingStream) readErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// refuseRequests is the handler of a client that offers no methods: it
// answers requests -32601 and ignores notifications (events, progress).
type refuseRequests struct{}

// Handle implements jsonrpc2.Handler.
func (refuseRequests) Handle(ctx context.Context, conn *jsonrpc2.Conn, req *jsonrpc2.Request) {
	if !req.Notif {
		_ = conn.ReplyWithError(ctx, req.ID, &jsonrpc2.Error{Code: jsonrpc2.CodeMethodNotFound, Message: "method not found: this bridge command line client offers no methods"})
	}
}

// lockedWriter serializes writes to w.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
