package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/sourcegraph/jsonrpc2"

	"github.com/dccbridge/dccbridge/session"
)

const contextAbout = `Pushes the artist's context (project, folder, task, any keys) to the
hosts of an app through bridge.context, and prints which sessions took it;
"get" prints the context stored for the app (or an instance of it).

  bridge context set --app APP [--target INSTANCE] [--timeout 10s] key=value ... | JSON
  bridge context get --app APP [--target INSTANCE]

Example:
  bridge context set --app aftereffects project=P folder=/shots/sh010 task=comp

Exit codes: 0 every host took it, 1 a host refused or failed (see the
table) or the bridge refused it, 2 bad usage, 3 the bridge is unreachable.`

func contextCmd(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var (
		c       common
		app     string
		target  string
		timeout time.Duration
		asJSON  bool
	)
	sc := newSubcommand("context", "set|get --app APP [flags] [key=value ... | JSON]", contextAbout, stdout, stderr)
	c.register(sc.fs)
	sc.fs.StringVar(&app, "app", "", "the `app` whose hosts get the context, e.g. aftereffects (required)")
	sc.fs.StringVar(&target, "target", "", "only this `instance` of the app")
	sc.fs.DurationVar(&timeout, "timeout", 0, "how long each host has to take it (meta.timeout_ms); 0: the bridge's default (10s)")
	sc.fs.BoolVar(&asJSON, "json", false, "print bridge.context's result as JSON")
	pos, code, ok := sc.parse(args)
	if !ok {
		return code
	}
	if len(pos) == 0 || (pos[0] != "set" && pos[0] != "get") {
		return sc.fail(usageError("say set or get"))
	}
	if app == "" {
		return sc.fail(usageError("--app is required (e.g. --app aftereffects)"))
	}
	params := map[string]any{"app": app}
	if target != "" {
		params["target"] = target
	}
	if pos[0] == "set" {
		ctxParams, err := buildParams(pos[1:], stdin)
		if err != nil {
			return sc.fail(err)
		}
		if ctxParams == nil || ctxParams[0] != '{' {
			return sc.fail(usageError("give the context as key=value pairs or a JSON object, e.g. project=P folder=/shots/sh010 task=comp"))
		}
		params["context"] = ctxParams
	} else if len(pos) > 1 {
		return sc.fail(usageError("get takes no context"))
	}

	conn, err := dialBridge(context.Background(), &c, nil, stderr)
	if err != nil {
		return sc.fail(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), max(timeout, 10*time.Second)+helloTimeout+replyGrace)
	defer cancel()
	if err := conn.hello(ctx, "context"); err != nil {
		return reportCallError(sc, conn, err, helloTimeout)
	}
	var opts []jsonrpc2.CallOption
	if timeout > 0 {
		opts = append(opts, jsonrpc2.Meta(map[string]any{"timeout_ms": timeout.Milliseconds()}))
	}
	var result session.ContextResult
	var raw json.RawMessage
	if err := conn.Call(ctx, "bridge.context", params, &raw, opts...); err != nil {
		return reportCallError(sc, conn, err, timeout+replyGrace)
	}
	_ = json.Unmarshal(raw, &result)
	if asJSON || pos[0] == "get" {
		writeJSON(stdout, raw)
		for _, s := range result.Sessions {
			if !s.OK {
				return exitRPCError // as the table's exit code: a host did not take it
			}
		}
		return exitOK
	}
	if len(result.Sessions) == 0 {
		fmt.Fprintf(stdout, "stored the context of %s; no %s host that takes set_context is connected (one that says hello later finds it)\n", result.App, result.App)
		return exitOK
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "INSTANCE\tSESSION\tTOOK IT")
	failed := 0
	for _, s := range result.Sessions {
		took := "yes"
		if !s.OK {
			failed++
			took = "no: " + errorText(s.Error)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", s.Instance, s.Session, took)
	}
	tw.Flush()
	if failed > 0 {
		fmt.Fprintf(stderr, "bridge context: %d of %d %s hosts did not take the context\n", failed, len(result.Sessions), result.App)
		return exitRPCError
	}
	return exitOK
}

// errorText is a JSON-RPC error object as "message (code)".
func errorText(raw json.RawMessage) string {
	var e struct {
		Code    int64  `json:"code"`
		Message string `json:"message"`
	}
	if json.Unmarshal(raw, &e) != nil || e.Message == "" {
		return string(raw)
	}
	return fmt.Sprintf("%s (%d)", e.Message, e.Code)
}
