package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// The peers below are the same code against the relay and the bridge: raw
// JSON text messages over coder/websocket, decoded with parseEnvelope only,
// never through a JSON-RPC library (whose own cost would swamp what is
// measured). The only differences between the two runs are the URL, the
// bridge.hello each peer says to the bridge before anything is timed (the
// relay has no registry) and the tools' ?prefix= query (the relay's routing
// key, see relay.go).

// echoMethod is the method the host offers and the tools call, as the tools
// name it (app "benchhost", method "echo").
const echoMethod = `"benchhost.echo"`

// replyGrace bounds how long past its time limit a load phase may wait for
// outstanding replies before it gives up and reports the calls as lost.
const replyGrace = 10 * time.Second

// readMessage reads one whole message into buf, which it resets first, and
// returns it. The returned bytes alias buf and are valid until its next use.
func readMessage(ctx context.Context, c *websocket.Conn, buf *bytes.Buffer) (websocket.MessageType, []byte, error) {
	typ, r, err := c.Reader(ctx)
	if err != nil {
		return 0, nil, err
	}
	buf.Reset()
	if _, err := buf.ReadFrom(r); err != nil {
		return 0, nil, err
	}
	return typ, buf.Bytes(), nil
}

// hostConfig configures the host peer.
type hostConfig struct {
	URL       string // websocket URL to dial
	Hello     bool   // register with bridge.hello before serving (bridge only)
	ReadLimit int64
}

// helloRequest is the host's registration with the bridge (bridge.hello).
const helloRequest = `{"jsonrpc":"2.0","id":1,"method":"bridge.hello","params":{"app":"benchhost","kind":"host","instance":"h1","methods":["echo"]}}`

// runHost connects the host peer, calls ready once it can be routed to, and
// answers every request it receives with its params as the result, in
// order, from one goroutine, until ctx ends. Notifications and responses
// (the bridge may send $/cancelRequest or events) are ignored.
func runHost(ctx context.Context, cfg hostConfig, ready func()) error {
	c, _, err := websocket.Dial(ctx, cfg.URL, nil)
	if err != nil {
		return fmt.Errorf("host: dial %s: %w", cfg.URL, err)
	}
	defer c.CloseNow()
	c.SetReadLimit(cfg.ReadLimit)

	var in bytes.Buffer
	if cfg.Hello {
		if _, err := hello(ctx, c, &in, []byte(helloRequest)); err != nil {
			return err
		}
	}
	ready()
	if err := echoCalls(ctx, c, &in); err != nil && ctx.Err() == nil {
		return fmt.Errorf("host: %w", err)
	}
	return nil
}

// echoCalls answers every request c receives with its params as the
// result, in order, until the connection or ctx ends. Notifications and
// responses (the bridge may send $/cancelRequest or events) are ignored.
func echoCalls(ctx context.Context, c *websocket.Conn, in *bytes.Buffer) error {
	out := make([]byte, 0, 4096)
	for {
		typ, msg, err := readMessage(ctx, c, in)
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
		if typ != websocket.MessageText {
			continue
		}
		env, err := parseEnvelope(msg)
		if err != nil || env.ID == nil || env.Method == nil {
			continue
		}
		out = appendEcho(out[:0], env.ID, env.Params)
		if err := c.Write(ctx, websocket.MessageText, out); err != nil {
			return fmt.Errorf("write: %w", err)
		}
	}
}

// hello sends the bridge.hello request req and waits for its result, which
// it returns; the result aliases in and is valid until in's next use.
func hello(ctx context.Context, c *websocket.Conn, in *bytes.Buffer, req []byte) ([]byte, error) {
	res, err := request(ctx, c, in, req)
	if err != nil {
		return nil, fmt.Errorf("host: bridge.hello: %w", err)
	}
	return res, nil
}

// request sends req, a request whose id is the number 1, and reads until
// the response with that id arrives, skipping anything else. It returns the
// result, which aliases in and is valid until in's next use; an error reply
// is an error.
func request(ctx context.Context, c *websocket.Conn, in *bytes.Buffer, req []byte) ([]byte, error) {
	if err := c.Write(ctx, websocket.MessageText, req); err != nil {
		return nil, fmt.Errorf("send: %w", err)
	}
	for {
		_, msg, err := readMessage(ctx, c, in)
		if err != nil {
			return nil, fmt.Errorf("waiting for the result: %w", err)
		}
		env, err := parseEnvelope(msg)
		if err != nil || env.Method != nil || !bytes.Equal(env.ID, []byte("1")) {
			continue
		}
		if env.Error != nil || env.Result == nil {
			return nil, fmt.Errorf("failed: %s", msg)
		}
		return env.Result, nil
	}
}

// appendEcho appends the host's reply to a request: the request's id bytes
// and its params bytes as the result, both copied verbatim.
func appendEcho(b, id, params []byte) []byte {
	b = append(b, `{"jsonrpc":"2.0","id":`...)
	b = append(b, id...)
	b = append(b, `,"result":`...)
	if params == nil {
		params = []byte("null")
	}
	b = append(b, params...)
	return append(b, '}')
}

// toolsConfig configures one run of the tool peers: Callers connections,
// each calling sequentially, sharing a budget of Calls measured calls.
type toolsConfig struct {
	URL          string
	RelayRouting bool // add ?prefix=tN to each connection's URL (relay only)
	Callers      int
	Calls        int           // measured calls, all callers together
	MaxDuration  time.Duration // time bound of the measured phase
	WarmupCalls  int           // warm-up calls, all callers together; 0 skips the warm-up
	Warmup       time.Duration // time bound of the warm-up
	Payload      int           // size of the params object in bytes
	ReadLimit    int64
	ServerPID    int // the server process, whose CPU time is read around the measured phase; 0: none
}

// toolConn is one tool connection making sequential calls with ids
// "<prefix>-<seq>". It is owned by one goroutine at a time.
type toolConn struct {
	c       *websocket.Conn
	prefix  string
	payload []byte // shared, read-only
	seq     int64
	req     []byte
	in      bytes.Buffer
}

// callOutcome is what one call returned.
type callOutcome int

const (
	callOK       callOutcome = iota
	callError                // the reply carried an "error" member
	callMismatch             // the reply's id was not the request's
)

// call sends one request and reads until its response arrives, skipping
// notifications. It returns the reply's bytes for diagnostics, valid until
// the next call.
func (t *toolConn) call(ctx context.Context) (callOutcome, []byte, error) {
	t.seq++
	req := append(t.req[:0], `{"jsonrpc":"2.0","id":`...)
	idStart := len(req)
	req = append(req, '"')
	req = append(req, t.prefix...)
	req = append(req, '-')
	req = strconv.AppendInt(req, t.seq, 10)
	req = append(req, '"')
	idEnd := len(req)
	req = append(req, `,"method":`...)
	req = append(req, echoMethod...)
	req = append(req, `,"params":`...)
	req = append(req, t.payload...)
	req = append(req, '}')
	t.req = req

	if err := t.c.Write(ctx, websocket.MessageText, req); err != nil {
		return 0, nil, fmt.Errorf("tool %s: write: %w", t.prefix, err)
	}
	for {
		_, msg, err := readMessage(ctx, t.c, &t.in)
		if err != nil {
			return 0, nil, fmt.Errorf("tool %s: waiting for the reply to id %s: %w", t.prefix, req[idStart:idEnd], err)
		}
		env, err := parseEnvelope(msg)
		if err != nil {
			return 0, nil, fmt.Errorf("tool %s: bad reply %q: %w", t.prefix, msg, err)
		}
		if env.Method != nil || env.ID == nil {
			continue // a notification, not our reply
		}
		switch {
		case !bytes.Equal(env.ID, req[idStart:idEnd]):
			return callMismatch, msg, nil
		case env.Error != nil || env.Result == nil:
			return callError, msg, nil
		}
		return callOK, msg, nil
	}
}

// makePayload returns a JSON object of exactly n bytes (at least 12), the
// params every call carries and the host echoes back.
func makePayload(n int) []byte {
	const head, tail = `{"data":"`, `"}`
	fill := max(n-len(head)-len(tail), 1)
	b := make([]byte, 0, len(head)+fill+len(tail))
	b = append(b, head...)
	b = append(b, bytes.Repeat([]byte{'x'}, fill)...)
	return append(b, tail...)
}

// runTools dials the tool connections, runs the warm-up and the measured
// phase, and returns the measurement. Bad replies are logged to log.
func runTools(ctx context.Context, log *slog.Logger, cfg toolsConfig) (result, error) {
	r := result{Callers: cfg.Callers}
	conns, err := dialTools(ctx, cfg)
	defer closeTools(conns)
	if err != nil {
		return r, err
	}
	if cfg.WarmupCalls > 0 {
		if _, err := runPhase(ctx, log, conns, cfg.WarmupCalls, cfg.Warmup); err != nil {
			return r, fmt.Errorf("warm-up: %w", err)
		}
	}
	cpuBefore, cpuErr := processCPU(cfg.ServerPID)
	ph, err := runPhase(ctx, log, conns, cfg.Calls, cfg.MaxDuration)
	if err != nil {
		return r, err
	}
	cpuAfter, cpuErr2 := processCPU(cfg.ServerPID)
	r.Errors, r.Mismatches = ph.errors, ph.mismatches
	summarize(&r, ph.lat, ph.elapsed)
	if cpuErr == nil && cpuErr2 == nil && len(ph.lat) > 0 {
		r.ServerCPUus = float64((cpuAfter - cpuBefore).Microseconds()) / float64(len(ph.lat))
	}
	return r, nil
}

// dialTools opens cfg.Callers connections. On error it returns those it
// opened so the caller can close them.
func dialTools(ctx context.Context, cfg toolsConfig) ([]*toolConn, error) {
	payload := makePayload(cfg.Payload)
	conns := make([]*toolConn, 0, cfg.Callers)
	for i := range cfg.Callers {
		prefix := "t" + strconv.Itoa(i)
		url := cfg.URL
		if cfg.RelayRouting {
			url += "?prefix=" + prefix
		}
		c, _, err := websocket.Dial(ctx, url, nil)
		if err != nil {
			return conns, fmt.Errorf("tool %s: dial %s: %w", prefix, url, err)
		}
		c.SetReadLimit(cfg.ReadLimit)
		t := &toolConn{c: c, prefix: prefix, payload: payload, req: make([]byte, 0, 64+len(payload))}
		conns = append(conns, t)
		if !cfg.RelayRouting {
			// The bridge closes a connection that has not said hello
			// within its deadline; the hello is not part of what is timed.
			req := `{"jsonrpc":"2.0","id":1,"method":"bridge.hello","params":{"app":"benchtool","kind":"tool","instance":"` + prefix + `"}}`
			if _, err := request(ctx, c, &t.in, []byte(req)); err != nil {
				return conns, fmt.Errorf("tool %s: bridge.hello: %w", prefix, err)
			}
		}
	}
	return conns, nil
}

// closeTools closes the connections with a normal closure, concurrently.
func closeTools(conns []*toolConn) {
	var wg sync.WaitGroup
	for _, t := range conns {
		wg.Go(func() { t.c.Close(websocket.StatusNormalClosure, "") })
	}
	wg.Wait()
}

// phaseResult is what one load phase measured.
type phaseResult struct {
	lat        []time.Duration // one per reply received
	errors     int
	mismatches int
	elapsed    time.Duration
}

// runPhase lets every connection call sequentially until budget calls have
// been started in total or limit has passed, whichever comes first, and
// returns the latencies of all replies. All callers start together. A call
// that gets no reply within limit+replyGrace fails the phase. Error replies
// and id mismatches are counted, and the first is logged to log.
func runPhase(ctx context.Context, log *slog.Logger, conns []*toolConn, budget int, limit time.Duration) (phaseResult, error) {
	ctx, cancel := context.WithTimeout(ctx, limit+replyGrace)
	defer cancel()

	type callerOut struct {
		lat        []time.Duration
		errors     int
		mismatches int
		firstBad   string
		err        error
	}
	outs := make([]callerOut, len(conns))
	var remaining atomic.Int64
	remaining.Store(int64(budget))
	start := make(chan struct{})
	var deadline time.Time // written before start is closed, read after
	var wg sync.WaitGroup
	for i, t := range conns {
		wg.Go(func() {
			o := &outs[i]
			o.lat = make([]time.Duration, 0, budget/len(conns)+1)
			<-start
			for remaining.Add(-1) >= 0 {
				t0 := time.Now()
				if !t0.Before(deadline) {
					return
				}
				outcome, msg, err := t.call(ctx)
				d := time.Since(t0)
				if err != nil {
					o.err = err
					return
				}
				switch outcome {
				case callError:
					o.errors++
				case callMismatch:
					o.mismatches++
				}
				if outcome != callOK && o.firstBad == "" {
					o.firstBad = fmt.Sprintf("tool %s: unexpected reply %.300s", t.prefix, msg)
				}
				o.lat = append(o.lat, d)
			}
		})
	}
	t0 := time.Now()
	deadline = t0.Add(limit)
	close(start)
	wg.Wait()
	ph := phaseResult{elapsed: time.Since(t0)}

	var errs []error
	for _, o := range outs {
		ph.lat = append(ph.lat, o.lat...)
		ph.errors += o.errors
		ph.mismatches += o.mismatches
		if o.firstBad != "" {
			errs = append(errs, errors.New(o.firstBad))
		}
		if o.err != nil {
			return ph, o.err
		}
	}
	if len(errs) > 0 {
		// Bad replies are counted, not fatal; show the first one for diagnosis.
		log.Warn("bad replies", "count", ph.errors+ph.mismatches, "first", errs[0])
	}
	return ph, nil
}
