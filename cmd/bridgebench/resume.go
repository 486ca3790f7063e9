package main

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// The resume scenario measures resume latency, at the
// panel: a host whose connection dropped while a call was written to it
// comes back, says bridge.hello again with the same instance and boot, and
// the bridge re-sends the parked call (docs/protocol.md, "Resume"). The latency is from
// writing that hello to reading the re-sent call. It runs against the
// bridge only: the relay keeps no sessions.
//
// One process (the hidden subcommand "resume") holds three connections to
// the bridge: the host (a replay client with a fixed instance and boot),
// a tool, and an observer subscribed to session.state. Each cycle:
//
//  1. the tool calls benchhost.slow; the host reads the call and does not
//     answer;
//  2. the host drops its connection abruptly (CloseNow: no close frame, as
//     a crashed or cut-off panel would);
//  3. the host dials again once the observer has seen the bridge report
//     its session reconnecting. A real panel comes back after a backoff,
//     long after the bridge saw the drop; without this wait the hello
//     could reach the bridge before the drop does and replace a connection
//     the bridge still thinks live, which is another path (replacement);
//  4. the host writes bridge.hello (the clock starts), reads the hello
//     result, which must say resumed with the call pending, then reads the
//     re-sent call (the clock stops), which must carry the same forwarded
//     id with meta.attempt one higher;
//  5. the host answers it and the tool must get the result, with its own
//     id.
//
// A call whose result the tool does not get is lost; a call the host
// receives again after it answered it, or a second reply the tool gets, is
// duplicated. Either fails the run. After the last cycle the host drops and
// comes back once more with nothing in flight, and the hello result must
// say that nothing is pending, so that a duplicate of the last cycle's call
// is caught too.

// resumeMethod is the method the tool calls, as the tool names it; the
// host offers it as "slow" and never answers it until it has come back.
const resumeMethod = `"benchhost.slow"`

// The resume host's identity. They are fixed, so every reconnect is the
// same instance and the same boot coming back.
const (
	resumeInstance = "resume-h1"
	resumeBoot     = "resume-boot-1"
)

// resumeHelloRequest is the resume host's bridge.hello: a replay client
// (it dedupes by forwarded id, so the bridge may re-send to it), with the
// fixed instance and boot.
const resumeHelloRequest = `{"jsonrpc":"2.0","id":1,"method":"bridge.hello","params":{"app":"benchhost","kind":"host","instance":"` +
	resumeInstance + `","boot":"` + resumeBoot + `","replay":true,"methods":["slow"]}}`

// The observer's and the tool's bridge.hello: the bridge closes a
// connection that has not said hello within its deadline.
const (
	observerHelloRequest = `{"jsonrpc":"2.0","id":1,"method":"bridge.hello","params":{"app":"benchobserver","kind":"tool"}}`
	toolHelloRequest     = `{"jsonrpc":"2.0","id":1,"method":"bridge.hello","params":{"app":"benchtool","kind":"tool"}}`
)

// subscribeRequest subscribes the observer to session state changes.
const subscribeRequest = `{"jsonrpc":"2.0","id":1,"method":"bridge.subscribe","params":{"topics":["session.state"]}}`

// resumeStepTimeout bounds one cycle, and the final check: the call
// reaching the host, the drop being seen, the dial, the re-sent call and
// the reply must all happen within it.
const resumeStepTimeout = 10 * time.Second

// resumeConfig configures the resume subcommand.
type resumeConfig struct {
	URL         string        // the bridge's websocket URL
	Cycles      int           // drop/resume cycles to run
	MaxDuration time.Duration // no cycle starts after this much time
	Payload     int           // size of the params object in bytes
	ReadLimit   int64
}

// resumePeers is the resume process's three connections. It is owned by
// the goroutine that runs the cycles, except the observer's connection,
// which its reader goroutine owns; the two meet only on dropped.
type resumePeers struct {
	cfg     resumeConfig
	payload []byte // the params of every call

	host   *websocket.Conn // replaced at every reconnect
	hostIn bytes.Buffer
	out    []byte // the host's reply being built

	tool   *websocket.Conn
	toolIn bytes.Buffer
	req    []byte // the tool's request being built

	obs     *websocket.Conn
	dropped chan struct{} // a value each time the bridge reports the host reconnecting
	stopObs context.CancelFunc
	obsDone sync.WaitGroup

	answered map[string]bool // forwarded ids (raw tokens) the host has answered
}

// runResume connects the three peers, runs up to cfg.Cycles drop/resume
// cycles within cfg.MaxDuration, and returns the measurement. A lost or
// duplicated call or any other failure is returned as an error, with the
// cycles completed so far summarized in the result.
func runResume(ctx context.Context, cfg resumeConfig) (resumeResult, error) {
	r := resumeResult{Target: "bridge", CyclesRequested: cfg.Cycles}
	p := &resumePeers{
		cfg:      cfg,
		payload:  makePayload(cfg.Payload),
		dropped:  make(chan struct{}, 16),
		answered: make(map[string]bool, cfg.Cycles),
	}
	defer p.close()
	if err := p.connect(ctx); err != nil {
		return r, err
	}

	lat := make([]time.Duration, 0, cfg.Cycles)
	t0 := time.Now()
	deadline := t0.Add(cfg.MaxDuration)
	var err error
	for n := 1; n <= cfg.Cycles && time.Now().Before(deadline); n++ {
		var d time.Duration
		if d, err = p.cycle(ctx, n, &r); err != nil {
			err = fmt.Errorf("cycle %d: %w", n, err)
			break
		}
		lat = append(lat, d)
	}
	if err == nil {
		err = p.finalCheck(ctx, &r)
	}
	summarizeResume(&r, lat, time.Since(t0))
	if err == nil && (r.Lost > 0 || r.Duplicated > 0) {
		err = fmt.Errorf("%d calls lost, %d duplicated", r.Lost, r.Duplicated)
	}
	return r, err
}

// connect dials the observer (and subscribes it), the tool and the host
// (and says hello), in that order, and starts the observer's reader.
func (p *resumePeers) connect(ctx context.Context) error {
	var err error
	if p.obs, err = p.dial(ctx); err != nil {
		return fmt.Errorf("observer: %w", err)
	}
	var in bytes.Buffer
	if _, err := request(ctx, p.obs, &in, []byte(observerHelloRequest)); err != nil {
		return fmt.Errorf("observer: bridge.hello: %w", err)
	}
	if _, err := request(ctx, p.obs, &in, []byte(subscribeRequest)); err != nil {
		return fmt.Errorf("observer: bridge.subscribe: %w", err)
	}
	obsCtx, stop := context.WithCancel(ctx)
	p.stopObs = stop
	p.obsDone.Go(func() { p.observe(obsCtx, &in) })

	if p.tool, err = p.dial(ctx); err != nil {
		return fmt.Errorf("tool: %w", err)
	}
	var toolIn bytes.Buffer // in is the observer's now
	if _, err := request(ctx, p.tool, &toolIn, []byte(toolHelloRequest)); err != nil {
		return fmt.Errorf("tool: bridge.hello: %w", err)
	}
	if p.host, err = p.dial(ctx); err != nil {
		return fmt.Errorf("host: %w", err)
	}
	res, err := hello(ctx, p.host, &p.hostIn, []byte(resumeHelloRequest))
	if err != nil {
		return err
	}
	if !bytes.Equal(objectMember(res, "resumed"), []byte("false")) {
		return fmt.Errorf("host: the first bridge.hello of instance %s says it resumed: %s", resumeInstance, res)
	}
	return nil
}

// dial opens one connection to the bridge.
func (p *resumePeers) dial(ctx context.Context) (*websocket.Conn, error) {
	c, _, err := websocket.Dial(ctx, p.cfg.URL, nil)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", p.cfg.URL, err)
	}
	c.SetReadLimit(p.cfg.ReadLimit)
	return c, nil
}

// observe reads the observer's connection until it ends, and sends on
// p.dropped each session.state event that reports the resume host's
// instance reconnecting. It runs in its own goroutine and owns in.
func (p *resumePeers) observe(ctx context.Context, in *bytes.Buffer) {
	for {
		_, msg, err := readMessage(ctx, p.obs, in)
		if err != nil {
			return
		}
		env, err := parseEnvelope(msg)
		if err != nil || !bytes.Equal(env.Method, []byte(`"bridge.event"`)) {
			continue
		}
		data := objectMember(env.Params, "data")
		if !bytes.Equal(objectMember(env.Params, "topic"), []byte(`"session.state"`)) ||
			!bytes.Equal(objectMember(data, "instance"), []byte(`"`+resumeInstance+`"`)) ||
			!bytes.Equal(objectMember(data, "state"), []byte(`"reconnecting"`)) {
			continue
		}
		select {
		case p.dropped <- struct{}{}:
		case <-ctx.Done():
			return
		}
	}
}

// close closes every connection with a normal closure (the host's session
// then leaves the bridge instead of waiting to resume) and waits for the
// observer's reader. It is safe to call on partly connected peers.
func (p *resumePeers) close() {
	var wg sync.WaitGroup
	for _, c := range []*websocket.Conn{p.host, p.tool, p.obs} {
		if c != nil {
			wg.Go(func() { c.Close(websocket.StatusNormalClosure, "") })
		}
	}
	wg.Wait()
	if p.stopObs != nil {
		p.stopObs()
	}
	p.obsDone.Wait()
}

// cycle runs drop/resume cycle n and returns its resume latency. Lost and
// duplicated calls are counted in r.
func (p *resumePeers) cycle(ctx context.Context, n int, r *resumeResult) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, resumeStepTimeout)
	defer cancel()

	// 1. The tool calls; the host reads the call and keeps it.
	id := p.toolRequest(n)
	if err := p.tool.Write(ctx, websocket.MessageText, p.req); err != nil {
		return 0, fmt.Errorf("tool: write: %w", err)
	}
	fid, attempt, _, err := p.readCall(ctx, r)
	if err != nil {
		r.Lost++
		return 0, fmt.Errorf("host: waiting for the call: %w", err)
	}

	// 2–4. Drop, come back, and time the hello to the re-sent call.
	helloSent, pending, err := p.reconnect(ctx)
	if err != nil {
		r.Lost++
		return 0, err
	}
	if k, _ := strconv.Atoi(pending); k < 1 {
		// More than one is let through: readCall counts the extra as
		// duplicated.
		r.Lost++
		return 0, fmt.Errorf("the hello result says %s calls pending, want 1 (the call %s written before the drop)", pending, fid)
	}
	fid2, attempt2, received, err := p.readCall(ctx, r)
	if err != nil {
		r.Lost++
		return 0, fmt.Errorf("host: waiting for the re-sent call: %w", err)
	}
	switch {
	case fid2 != fid:
		r.Lost++
		return 0, fmt.Errorf("the bridge re-sent forwarded id %s, want %s (the call written before the drop)", fid2, fid)
	case attempt2 != attempt+1:
		return 0, fmt.Errorf("the re-sent call %s has meta.attempt %d, want %d", fid, attempt2, attempt+1)
	}

	// 5. The host answers; the tool must get the result.
	p.out = appendEcho(p.out[:0], []byte(fid), p.payload)
	if err := p.host.Write(ctx, websocket.MessageText, p.out); err != nil {
		r.Lost++
		return 0, fmt.Errorf("host: write the reply: %w", err)
	}
	p.answered[fid] = true
	if err := p.readReply(ctx, id, r); err != nil {
		r.Lost++
		return 0, err
	}
	return received.Sub(helloSent), nil
}

// toolRequest builds the tool's call of cycle n in p.req and returns its
// id token.
func (p *resumePeers) toolRequest(n int) []byte {
	req := append(p.req[:0], `{"jsonrpc":"2.0","id":`...)
	idStart := len(req)
	req = append(req, `"r-`...)
	req = strconv.AppendInt(req, int64(n), 10)
	req = append(req, '"')
	idEnd := len(req)
	req = append(req, `,"method":`...)
	req = append(req, resumeMethod...)
	req = append(req, `,"params":`...)
	req = append(req, p.payload...)
	p.req = append(req, '}')
	return p.req[idStart:idEnd]
}

// readCall reads the host's connection until a request arrives that the
// host has not answered before, and returns its forwarded id token and
// meta.attempt, and when it was read. A request it has answered before is a duplicate: counted
// in r and not run again.
func (p *resumePeers) readCall(ctx context.Context, r *resumeResult) (fid string, attempt int, received time.Time, err error) {
	for {
		_, msg, err := readMessage(ctx, p.host, &p.hostIn)
		received := time.Now()
		if err != nil {
			return "", 0, received, err
		}
		env, err := parseEnvelope(msg)
		if err != nil || env.ID == nil || env.Method == nil {
			continue // not a request
		}
		if p.answered[string(env.ID)] {
			r.Duplicated++
			continue
		}
		attempt, err := strconv.Atoi(string(objectMember(env.Meta, "attempt")))
		if err != nil {
			return "", 0, received, fmt.Errorf("call without a numeric meta.attempt: %.300s", msg)
		}
		return string(env.ID), attempt, received, nil
	}
}

// readReply reads the tool's connection until the reply with id arrives,
// skipping notifications. The reply must carry a result. A reply to an
// earlier call of the tool's is a duplicate: counted in r and skipped.
func (p *resumePeers) readReply(ctx context.Context, id []byte, r *resumeResult) error {
	for {
		_, msg, err := readMessage(ctx, p.tool, &p.toolIn)
		if err != nil {
			return fmt.Errorf("tool: waiting for the reply to %s: %w", id, err)
		}
		env, err := parseEnvelope(msg)
		if err != nil {
			return fmt.Errorf("tool: bad reply %q: %w", msg, err)
		}
		switch {
		case env.Method != nil || env.ID == nil:
			continue // a notification
		case bytes.Equal(env.ID, id):
			if env.Error != nil || env.Result == nil {
				return fmt.Errorf("tool: the call %s failed: %.300s", id, msg)
			}
			return nil
		case bytes.HasPrefix(env.ID, []byte(`"r-`)):
			r.Duplicated++ // a second reply to an earlier call
		default:
			return fmt.Errorf("tool: reply with unknown id, waiting for %s: %.300s", id, msg)
		}
	}
}

// reconnect drops the host's connection without a close frame, waits
// until the bridge reports the session reconnecting, dials again and says
// hello. It returns when it started writing the hello and the hello
// result's "pending" (the raw token); the result must say resumed.
func (p *resumePeers) reconnect(ctx context.Context) (helloSent time.Time, pending string, err error) {
	p.host.CloseNow()
	select {
	case <-p.dropped:
	case <-ctx.Done():
		return time.Time{}, "", fmt.Errorf("the bridge did not report the host's session reconnecting after the drop: %w", ctx.Err())
	}
	if p.host, err = p.dial(ctx); err != nil {
		return time.Time{}, "", fmt.Errorf("host: dial again: %w", err)
	}
	helloSent = time.Now()
	res, err := hello(ctx, p.host, &p.hostIn, []byte(resumeHelloRequest))
	if err != nil {
		return time.Time{}, "", err
	}
	if !bytes.Equal(objectMember(res, "resumed"), []byte("true")) {
		return time.Time{}, "", fmt.Errorf("host: the hello result does not say resumed (same instance %s, same boot %s): %.300s", resumeInstance, resumeBoot, res)
	}
	return helloSent, string(objectMember(res, "pending")), nil
}

// finalCheck drops the host and brings it back once more, with nothing in
// flight: the hello result must say nothing is pending. Anything pending
// was answered already, and counts in r as duplicated.
func (p *resumePeers) finalCheck(ctx context.Context, r *resumeResult) error {
	ctx, cancel := context.WithTimeout(ctx, resumeStepTimeout)
	defer cancel()
	_, pending, err := p.reconnect(ctx)
	if err != nil {
		return fmt.Errorf("final drop and resume: %w", err)
	}
	if pending != "0" {
		n, _ := strconv.Atoi(pending)
		r.Duplicated += max(n, 1)
	}
	return nil
}
