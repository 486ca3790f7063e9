package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"time"
)

// hostReadyLine is what the host subcommand prints on stdout once it can be
// routed to.
const hostReadyLine = "ready"

// runSubcommand runs one of the hidden subcommands the orchestrator starts
// in its own process — relay, host, tools, resume or idle — and returns the exit
// code. They are not meant to be run by hand.
func runSubcommand(name string, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bridgebench "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	lifeline := fs.Bool("lifeline", false, "exit when stdin reaches EOF (set by the orchestrator)")
	readLimit := fs.Int64("read-limit", 16<<20, "websocket read limit in bytes")
	verbose := fs.Bool("v", false, "debug logging")

	var (
		relayCfg  relayConfig
		hostCfg   hostConfig
		toolsCfg  toolsConfig
		resumeCfg resumeConfig
		idleURL   string
		idleN     int
	)
	switch name {
	case "relay":
		fs.StringVar(&relayCfg.Addr, "addr", "127.0.0.1:0", "listen address")
	case "host":
		fs.StringVar(&hostCfg.URL, "url", "", "websocket URL to dial")
		fs.BoolVar(&hostCfg.Hello, "hello", false, "register with bridge.hello first")
	case "tools":
		fs.StringVar(&toolsCfg.URL, "url", "", "websocket URL to dial")
		fs.BoolVar(&toolsCfg.RelayRouting, "relay-routing", false, "add ?prefix=tN to each connection's URL")
		fs.IntVar(&toolsCfg.Callers, "n", 1, "connections, each calling sequentially")
		fs.IntVar(&toolsCfg.Calls, "calls", 1000, "measured calls, all connections together")
		fs.DurationVar(&toolsCfg.MaxDuration, "max-duration", 20*time.Second, "time bound of the measured phase")
		fs.IntVar(&toolsCfg.WarmupCalls, "warmup-calls", 0, "warm-up calls, all connections together")
		fs.DurationVar(&toolsCfg.Warmup, "warmup", time.Second, "time bound of the warm-up")
		fs.IntVar(&toolsCfg.Payload, "payload", 200, "params size in bytes")
		fs.IntVar(&toolsCfg.ServerPID, "server-pid", 0, "the server's process id, whose CPU time per call is measured (Linux)")
	case "idle":
		fs.StringVar(&idleURL, "url", "", "the bridge's websocket URL")
		fs.IntVar(&idleN, "n", 100, "idle sessions to hold")
	case "resume":
		fs.StringVar(&resumeCfg.URL, "url", "", "the bridge's websocket URL")
		fs.IntVar(&resumeCfg.Cycles, "cycles", 100, "drop/resume cycles")
		fs.DurationVar(&resumeCfg.MaxDuration, "max-duration", 20*time.Second, "no cycle starts after this much time")
		fs.IntVar(&resumeCfg.Payload, "payload", 200, "params size in bytes")
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := childContext(*lifeline)
	defer stop()

	var err error
	switch name {
	case "relay":
		relayCfg.ReadLimit = *readLimit
		err = runRelay(ctx, log, relayCfg)
	case "host":
		hostCfg.ReadLimit = *readLimit
		err = runHost(ctx, hostCfg, func() { fmt.Fprintln(stdout, hostReadyLine) })
	case "tools":
		toolsCfg.ReadLimit = *readLimit
		// The result goes to stdout even on failure, so the orchestrator
		// can say why.
		r, runErr := runTools(ctx, log, toolsCfg)
		if runErr != nil {
			r.Failure = runErr.Error()
		}
		err = errors.Join(runErr, json.NewEncoder(stdout).Encode(r))
	case "idle":
		err = runIdle(ctx, idleURL, idleN, *readLimit, func(n int) { fmt.Fprintln(stdout, idleReadyPrefix+strconv.Itoa(n)) })
	case "resume":
		resumeCfg.ReadLimit = *readLimit
		r, runErr := runResume(ctx, resumeCfg)
		if runErr != nil {
			r.Failure = runErr.Error()
		}
		err = errors.Join(runErr, json.NewEncoder(stdout).Encode(r))
	}
	if err != nil {
		if ctx.Err() != nil {
			return 1 // stopped by the orchestrator or a signal: nothing to add
		}
		log.Error("failed", "cmd", name, "err", err)
		return 1
	}
	return 0
}

// decodeChildOutput reads the result a tools or resume subcommand printed
// (the last line of its stdout) into r, a *result or *resumeResult; name
// is the process's, for errors.
func decodeChildOutput(name string, out []byte, r any) error {
	out = bytes.TrimSpace(out)
	if i := bytes.LastIndexByte(out, '\n'); i >= 0 {
		out = out[i+1:]
	}
	if len(out) == 0 {
		return fmt.Errorf("%s printed no result", name)
	}
	if err := json.Unmarshal(out, r); err != nil {
		return fmt.Errorf("%s printed %q: %w", name, out, err)
	}
	return nil
}
