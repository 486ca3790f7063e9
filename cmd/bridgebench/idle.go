package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"
)

// The idle scenario measures what an idle session costs the bridge: a
// bridge of its own (caps raised to fit), whose resident memory is read
// from /proc before and after one harness process (the subcommand "idle")
// opens -idle-sessions websockets that each say bridge.hello, offering the
// load scenarios' echo method, and then wait. Then one caller makes
// idleCalls sequential calls, which the bridge routes to one of the idle
// sessions, to show that they are served as fast as ever, and the memory
// is read again. Linux only: elsewhere it reports that it could not
// measure.

// idleSettle is how long the bridge is left alone with the idle sessions
// before its memory is read.
const idleSettle = 5 * time.Second

// idleReadyPrefix starts the line the idle subcommand prints once every
// session has said hello.
const idleReadyPrefix = "ready "

// idleCalls is how many calls the idle scenario routes to an idle session.
const idleCalls = 2000

// idleResult is what the idle scenario measured.
type idleResult struct {
	Sessions      int     `json:"sessions"`
	RSSBeforeKiB  int64   `json:"rss_before_kib"`
	RSSAfterKiB   int64   `json:"rss_after_kib"`
	PerSessionKiB float64 `json:"per_session_kib"`
	GoalKiB       float64 `json:"goal_kib"`
	Failure       string  `json:"failure,omitempty"`
	SettleSeconds float64 `json:"settle_seconds"`
	// Calls is one caller's sequential calls routed to one of the idle
	// sessions once the memory was read; RSSAfterCallsKiB the memory
	// after them.
	Calls            *result `json:"calls,omitempty"`
	RSSAfterCallsKiB int64   `json:"rss_after_calls_kib,omitempty"`
}

// idleGoalKiB is the design's bound on an idle helloed session.
const idleGoalKiB = 20

// runIdleScenario starts a bridge from bin for the scenario and measures n
// idle sessions against it.
func runIdleScenario(ctx context.Context, procs *procSet, env *benchEnv, bin string, n int) idleResult {
	r := idleResult{Sessions: n, GoalKiB: idleGoalKiB, SettleSeconds: idleSettle.Seconds()}
	addr, err := freeAddr()
	if err != nil {
		r.Failure = err.Error()
		return r
	}
	caps := strconv.Itoa(n + 16)
	srv, err := procs.start(childSpec{
		Name: "idle-bridge",
		Path: bin,
		Args: []string{"serve", "--addr", addr, "--log-level", "warn", "--max-sessions", caps, "--max-unhelloed", caps},
		Env:  bridgeEnv(os.Environ(), filepath.Join(env.tmp, "idle-config")),
	}, env.stderr)
	if err != nil {
		r.Failure = "cannot start the bridge: " + err.Error()
		return r
	}
	defer srv.stop(stopGrace)
	if err := srv.waitHealthy(ctx, "http://"+addr+"/healthz", healthPoll, env.cfg.ReadyTimeout); err != nil {
		r.Failure = "the bridge did not start: " + err.Error()
		return r
	}
	pid := srv.cmd.Process.Pid
	if r.RSSBeforeKiB, err = processRSSKiB(pid); err != nil {
		r.Failure = err.Error()
		return r
	}
	peers, err := procs.start(childSpec{
		Name:     "idle",
		Path:     env.self,
		Args:     append([]string{"idle", "-url", "ws://" + addr + "/ws", "-n", strconv.Itoa(n)}, env.childFlags()...),
		Lifeline: true,
	}, env.stderr)
	if err != nil {
		r.Failure = err.Error()
		return r
	}
	defer peers.stop(stopGrace)
	if err := peers.waitLine(ctx, idleReadyPrefix+strconv.Itoa(n), env.cfg.ReadyTimeout+time.Duration(n)*time.Millisecond); err != nil {
		r.Failure = err.Error()
		return r
	}
	select {
	case <-time.After(idleSettle):
	case <-ctx.Done():
		r.Failure = ctx.Err().Error()
		return r
	}
	if r.RSSAfterKiB, err = processRSSKiB(pid); err != nil {
		r.Failure = err.Error()
		return r
	}
	r.PerSessionKiB = float64(r.RSSAfterKiB-r.RSSBeforeKiB) / float64(n)

	calls, err := runTools(ctx, env.log, toolsConfig{
		URL: "ws://" + addr + "/ws", Callers: 1, Calls: idleCalls, MaxDuration: env.cfg.MaxDuration,
		Payload: env.cfg.Payload, ReadLimit: env.cfg.ReadLimit, ServerPID: pid,
	})
	if err != nil {
		calls.Failure = err.Error()
	}
	r.Calls = &calls
	if r.RSSAfterCallsKiB, err = processRSSKiB(pid); err != nil {
		r.Failure = err.Error()
	}
	srv.stop(stopGrace) // with the sessions still connected, so that --memprofile sees them
	return r
}

// processCPU reads the CPU time (user and system) a process has used so
// far from /proc/<pid>/stat (Linux), in clock ticks of 10 ms.
func processCPU(pid int) (time.Duration, error) {
	if pid <= 0 {
		return 0, errors.New("no process to measure")
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name, field 2, is in parentheses and may hold spaces:
	// count fields after its closing one. utime and stime are fields 14
	// and 15.
	_, rest, ok := strings.Cut(string(b), ") ")
	f := strings.Fields(rest)
	if !ok || len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	const tick = 10 * time.Millisecond // USER_HZ, 100 on every Linux the harness runs on
	return time.Duration(utime+stime) * tick, nil
}

// processRSSKiB reads a process's resident set size from /proc (Linux).
func processRSSKiB(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, fmt.Errorf("cannot read the bridge's memory (needs Linux /proc): %w", err)
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				return strconv.ParseInt(f[0], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// runIdle is the idle subcommand: it opens n websockets to url, each says
// bridge.hello (app "benchhost", method "echo") and then answers what it
// is called with, prints "ready <n>", and holds them until ctx ends.
func runIdle(ctx context.Context, url string, n int, readLimit int64, ready func(int)) error {
	raiseOpenFiles()
	conns := make([]*websocket.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.CloseNow()
		}
	}()
	var in bytes.Buffer
	for i := range n {
		c, _, err := websocket.Dial(ctx, url, nil)
		if err != nil {
			return fmt.Errorf("idle: session %d: dial: %w", i, err)
		}
		c.SetReadLimit(readLimit)
		conns = append(conns, c)
		req := `{"jsonrpc":"2.0","id":1,"method":"bridge.hello","params":{"app":"benchhost","kind":"host","instance":"i-` + strconv.Itoa(i) + `","methods":["echo"]}}`
		if _, err := request(ctx, c, &in, []byte(req)); err != nil {
			return fmt.Errorf("idle: session %d: bridge.hello: %w", i, err)
		}
		go echoCalls(ctx, c, new(bytes.Buffer)) // reading also answers the bridge's pings
	}
	ready(len(conns))
	<-ctx.Done()
	return nil
}
