// Command bridgebench measures the bridge against the floor it is compared
// with, a raw two-hop websocket relay, in one run and side by side.
//
// Both targets serve the same peers: a host peer that echoes every
// request's params as its result, and tool peers that call it
// ("benchhost.echo" with a ~200-byte params object) — raw JSON text
// messages over coder/websocket with envelope-only decoding, no JSON-RPC
// library. The server (relay or bridge), the host peer and the tool peers
// each run in their own process: the harness starts the bridge binary it
// builds from ./cmd/bridge and re-executes itself for the rest through
// hidden subcommands (relay, host, tools, resume). Each load scenario — 1
// sequential caller, then N concurrent callers each with its own
// connection — runs against every target in turn and is bounded by a call
// count and a time limit, after a short warm-up. Then the resume scenario
// runs against the bridge alone (the relay keeps no sessions): a host
// whose connection drops with a call written to it comes back with the
// same instance and boot, and the harness times, at the host, the bridge
// re-sending the call (see resume.go).
//
// Usage:
//
//	go run ./cmd/bridgebench [-only relay|bridge] [-callers 32] [-calls N]
//	    [-max-duration 20s] [-warmup 1s] [-payload 200] [-resume-cycles 100]
//	    [-json] [-bridge-bin path | -bridge-pkg import/path] [-v]
//
// It prints calls/s, p50 and p99 for each load scenario and target, the
// bridge/relay ratios the design sets targets for, and the resume
// latency's p50, p99, min and max against its target. It exits 1 when the
// bridge cannot be built or started, or when any run failed, got a bad
// reply, or lost or duplicated a call.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

// Defaults of the call budgets when -calls is 0.
const (
	defaultCallsSequential = 20_000
	defaultCallsConcurrent = 200_000
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run dispatches to a hidden subcommand or runs the benchmark, and returns
// the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "relay", "host", "tools", "resume", "idle":
			return runSubcommand(args[0], args[1:], stdout, stderr)
		}
	}
	return runBench(args, stdout, stderr)
}

// benchConfig is the orchestrator's flags.
type benchConfig struct {
	Only         string        // "", "relay" or "bridge"
	Callers      int           // callers of the concurrent scenario
	Calls        int           // measured calls per scenario; 0 means the defaults
	MaxDuration  time.Duration // time bound of each measured phase
	Warmup       time.Duration // time bound of each warm-up; 0 skips it
	Payload      int           // bytes of params per call
	ResumeCycles int           // drop/resume cycles of the resume scenario; 0 skips it
	IdleSessions int           // idle sessions whose memory is measured (bridge only); 0 skips it
	JSON         bool
	BridgePkg    string
	BridgeBin    string
	ReadyTimeout time.Duration
	ReadLimit    int64
	Verbose      bool
}

// parseBenchFlags parses the orchestrator's command line.
func parseBenchFlags(args []string, stderr io.Writer) (benchConfig, error) {
	var cfg benchConfig
	fs := flag.NewFlagSet("bridgebench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.Only, "only", "", "run one target only: relay or bridge (default both)")
	fs.IntVar(&cfg.Callers, "callers", 32, "concurrent callers (connections) of the concurrent scenario; 1 runs only the sequential one")
	fs.IntVar(&cfg.Calls, "calls", 0, fmt.Sprintf("measured calls per scenario (default %d for 1 caller, %d for the concurrent scenario)", defaultCallsSequential, defaultCallsConcurrent))
	fs.DurationVar(&cfg.MaxDuration, "max-duration", 20*time.Second, "time bound of each measured scenario; it stops at -calls or this, whichever comes first")
	fs.DurationVar(&cfg.Warmup, "warmup", time.Second, "time bound of the warm-up before each scenario (10% of -calls); 0 skips it")
	fs.IntVar(&cfg.Payload, "payload", 200, "size in bytes of each call's params object")
	fs.IntVar(&cfg.ResumeCycles, "resume-cycles", 100, "drop/resume cycles of the resume-latency scenario (bridge only), bounded by -max-duration too; 0 skips it")
	fs.IntVar(&cfg.IdleSessions, "idle-sessions", 0, "measure the bridge's memory per idle session with this many (a bridge of its own; Linux; e.g. 10000); 0 skips it")
	fs.BoolVar(&cfg.JSON, "json", false, "print the results as JSON instead of a table")
	fs.StringVar(&cfg.BridgePkg, "bridge-pkg", "github.com/dccbridge/dccbridge/cmd/bridge", "package to build the bridge from (run inside the module)")
	fs.StringVar(&cfg.BridgeBin, "bridge-bin", "", "use this bridge binary instead of building -bridge-pkg")
	fs.DurationVar(&cfg.ReadyTimeout, "ready-timeout", 20*time.Second, "how long a server or host peer may take to become ready")
	fs.Int64Var(&cfg.ReadLimit, "read-limit", 16<<20, "websocket read limit of every connection, in bytes")
	fs.BoolVar(&cfg.Verbose, "v", false, "debug logging")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	switch {
	case fs.NArg() > 0:
		return cfg, fmt.Errorf("unexpected arguments: %q", fs.Args())
	case cfg.Only != "" && cfg.Only != "relay" && cfg.Only != "bridge":
		return cfg, fmt.Errorf("-only must be relay or bridge, not %q", cfg.Only)
	case cfg.Callers < 1:
		return cfg, errors.New("-callers must be at least 1")
	case cfg.Calls < 0:
		return cfg, errors.New("-calls must not be negative")
	case cfg.MaxDuration <= 0:
		return cfg, errors.New("-max-duration must be positive")
	case cfg.Warmup < 0:
		return cfg, errors.New("-warmup must not be negative")
	case cfg.Payload < 12:
		return cfg, errors.New("-payload must be at least 12 bytes")
	case cfg.ResumeCycles < 0:
		return cfg, errors.New("-resume-cycles must not be negative")
	case cfg.IdleSessions < 0:
		return cfg, errors.New("-idle-sessions must not be negative")
	}
	return cfg, nil
}

// scenarioKind tells the two kinds of scenario apart.
type scenarioKind int

const (
	loadScenario   scenarioKind = iota // callers calling an echo host, against every target
	resumeScenario                     // drop/resume cycles, against the bridge only (resume.go)
)

// scenario is one thing measured: a load shape, or the resume cycles.
type scenario struct {
	name    string
	kind    scenarioKind
	callers int // load: connections
	calls   int // load: measured calls, all callers together
	cycles  int // resume: drop/resume cycles
}

// runsOn reports whether sc is measured against t: load scenarios run on
// every target, the resume scenario on the bridge alone (the relay keeps
// no sessions to resume).
func (sc scenario) runsOn(t *target) bool {
	return sc.kind == loadScenario || t.name == "bridge"
}

// scenarios returns the load shapes cfg asks for, in the order they run.
func scenarios(cfg benchConfig) []scenario {
	calls := func(def int) int {
		if cfg.Calls > 0 {
			return cfg.Calls
		}
		return def
	}
	list := []scenario{{name: "1 caller", callers: 1, calls: calls(defaultCallsSequential)}}
	if cfg.Callers > 1 {
		list = append(list, scenario{
			name:    strconv.Itoa(cfg.Callers) + " callers",
			callers: cfg.Callers,
			calls:   calls(defaultCallsConcurrent),
		})
	}
	// Resume latency, measured at the panel: from sending
	// bridge.hello after a drop to receiving the re-sent call. The bridge
	// only; it has its own block in the report.
	if cfg.ResumeCycles > 0 && cfg.Only != "relay" {
		list = append(list, scenario{name: "resume", kind: resumeScenario, cycles: cfg.ResumeCycles})
	}
	return list
}

// benchEnv is what the orchestrator's helpers share for one run.
type benchEnv struct {
	cfg    benchConfig
	self   string    // this executable, re-run for the subcommands
	tmp    string    // scratch dir, removed at the end
	stderr io.Writer // where children's stderr lines go
	log    *slog.Logger
}

// childFlags returns the flags every harness subprocess gets.
func (env *benchEnv) childFlags() []string {
	return []string{
		"-lifeline",
		"-read-limit", strconv.FormatInt(env.cfg.ReadLimit, 10),
		"-v=" + strconv.FormatBool(env.cfg.Verbose),
	}
}

// runBench runs the benchmark and returns the exit code.
func runBench(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseBenchFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "bridgebench:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	rep, err := bench(ctx, cfg, stderr)
	if ctx.Err() != nil {
		fmt.Fprintln(stderr, "bridgebench: interrupted")
		return 130
	}
	if err != nil {
		fmt.Fprintln(stderr, "bridgebench:", err)
		return 1
	}
	if cfg.JSON {
		err = rep.writeJSON(stdout)
	} else {
		err = rep.writeTable(stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, "bridgebench:", err)
		return 1
	}
	if !rep.ok() {
		fmt.Fprintln(stderr, "bridgebench: some runs failed or got bad replies (see above)")
		return 1
	}
	return 0
}

// bench builds and starts the targets, runs every scenario against each in
// turn, and stops every process it started before returning, on every
// path.
func bench(ctx context.Context, cfg benchConfig, stderr io.Writer) (*report, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own executable: %w", err)
	}
	tmp, err := os.MkdirTemp("", "bridgebench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	level := slog.LevelInfo
	if cfg.Verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	env := &benchEnv{cfg: cfg, self: self, tmp: tmp, stderr: stderr, log: log}
	procs := newProcSet(log)
	defer procs.stopAll()

	// Build before measuring anything: a bridge that does not build fails
	// the run at once.
	bridgeBin := cfg.BridgeBin
	if cfg.Only != "relay" && bridgeBin == "" {
		log.Info("building the bridge", "pkg", cfg.BridgePkg)
		if bridgeBin, err = buildBridge(ctx, cfg.BridgePkg, tmp); err != nil {
			return nil, fmt.Errorf("%w\n(-only relay measures the relay alone)", err)
		}
	}
	var targets []*target
	if cfg.Only != "bridge" {
		t, err := startRelayTarget(ctx, procs, env)
		if err != nil {
			return nil, fmt.Errorf("relay: %w", err)
		}
		targets = append(targets, t)
	}
	if cfg.Only != "relay" {
		t, err := startBridgeTarget(ctx, procs, env, bridgeBin)
		if err != nil {
			return nil, err
		}
		targets = append(targets, t)
	}

	rep := newReport(cfg)
	for _, sc := range scenarios(cfg) {
		for _, t := range targets {
			if !sc.runsOn(t) {
				continue
			}
			var failure string
			if sc.kind == resumeScenario {
				log.Info("running", "scenario", sc.name, "target", t.name, "cycles", sc.cycles, "max_duration", cfg.MaxDuration)
				r := runResumeScenario(ctx, procs, env, t, sc)
				rep.Resume, failure = &r, r.Failure
			} else {
				log.Info("running", "scenario", sc.name, "target", t.name, "calls", sc.calls, "max_duration", cfg.MaxDuration)
				r := runScenario(ctx, procs, env, t, sc)
				rep.Results, failure = append(rep.Results, r), r.Failure
			}
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if failure != "" {
				log.Error("scenario failed", "scenario", sc.name, "target", t.name, "err", failure)
			}
		}
	}
	if cfg.IdleSessions > 0 && cfg.Only != "relay" {
		log.Info("running", "scenario", "idle sessions", "sessions", cfg.IdleSessions)
		r := runIdleScenario(ctx, procs, env, bridgeBin, cfg.IdleSessions)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if r.Failure != "" {
			log.Error("scenario failed", "scenario", "idle sessions", "err", r.Failure)
		}
		rep.Idle = &r
	}
	rep.computeRatios()
	return rep, nil
}

// runScenario runs one tools process against t and returns its result; a
// failure is reported in the result, not as an error.
func runScenario(ctx context.Context, procs *procSet, env *benchEnv, t *target, sc scenario) result {
	cfg := env.cfg
	r := result{Scenario: sc.name, Target: t.name, Callers: sc.callers}
	warmupCalls := 0
	if cfg.Warmup > 0 {
		warmupCalls = max(sc.calls/10, 10*sc.callers)
	}
	args := []string{
		"-url", t.toolsURL,
		"-relay-routing=" + strconv.FormatBool(t.relayRouting),
		"-n", strconv.Itoa(sc.callers),
		"-calls", strconv.Itoa(sc.calls),
		"-max-duration", cfg.MaxDuration.String(),
		"-warmup-calls", strconv.Itoa(warmupCalls),
		"-warmup", cfg.Warmup.String(),
		"-payload", strconv.Itoa(cfg.Payload),
		"-server-pid", strconv.Itoa(t.server.cmd.Process.Pid),
	}
	// Dialing, warm-up, measured phase, and the grace each phase allows.
	limit := cfg.ReadyTimeout + cfg.Warmup + cfg.MaxDuration + 2*replyGrace + 10*time.Second
	if runChild(ctx, procs, env, t, "tools", args, limit, &r, &r.Failure) {
		r.Scenario, r.Target = sc.name, t.name
	}
	return r
}

// runResumeScenario runs the resume process against t (the bridge) and
// returns its result; a failure is reported in the result, not as an
// error.
func runResumeScenario(ctx context.Context, procs *procSet, env *benchEnv, t *target, sc scenario) resumeResult {
	cfg := env.cfg
	r := resumeResult{Target: t.name, CyclesRequested: sc.cycles}
	args := []string{
		"-url", t.toolsURL,
		"-cycles", strconv.Itoa(sc.cycles),
		"-max-duration", cfg.MaxDuration.String(),
		"-payload", strconv.Itoa(cfg.Payload),
	}
	// Dialing, the cycles, the last cycle's and the final check's waits.
	limit := cfg.ReadyTimeout + cfg.MaxDuration + 2*resumeStepTimeout + 10*time.Second
	if runChild(ctx, procs, env, t, "resume", args, limit, &r, &r.Failure) {
		r.Target = t.name
		r.P50TargetUs = micros(resumeP50Target)
		r.P50TargetMet = r.ok() && r.P50us <= r.P50TargetUs
	}
	return r
}

// runChild runs this program's subcommand cmd ("tools" or "resume") with
// args and the shared child flags against t, waits up to limit for it to
// end, and decodes the result it prints into out. failure points at out's
// Failure field: runChild sets it when the child could not start, outlived
// limit, printed no result or exited with an error its result does not
// explain, and prefixes t's server's exit when that server has ended (the
// likeliest cause of whatever the child saw). It reports whether the child
// ended and its result was read: false when it could not start or outlived
// limit, and when ctx ended first (failure left empty; the caller checks
// ctx).
func runChild(ctx context.Context, procs *procSet, env *benchEnv, t *target, cmd string, args []string, limit time.Duration, out any, failure *string) bool {
	args = append(append([]string{cmd}, args...), env.childFlags()...)
	c, err := procs.start(childSpec{Name: cmd + "-" + t.name, Path: env.self, Args: args, Lifeline: true}, env.stderr)
	if err != nil {
		*failure = err.Error()
		return false
	}
	defer c.stop(stopGrace)

	select {
	case <-c.done:
	case <-time.After(limit):
		*failure = fmt.Sprintf("%s process still running after %v; killed", cmd, limit)
		return false
	case <-ctx.Done():
		return false
	}
	if err := decodeChildOutput(c.name, c.out.Bytes(), out); err != nil {
		*failure = err.Error()
		if c.err != nil {
			*failure = c.exitError().Error()
		}
	} else if c.err != nil && *failure == "" {
		*failure = c.exitError().Error()
	}
	select {
	case <-t.server.done: // the likeliest cause of whatever the child saw
		*failure = fmt.Sprintf("%v (during or before this scenario); %s: %s", t.server.exitError(), cmd, *failure)
	default:
	}
	return true
}
