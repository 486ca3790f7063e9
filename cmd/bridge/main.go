// Command bridge is dccbridge: a websocket JSON-RPC bridge between host
// application panels (After Effects, Photoshop, Maya, …) and pipeline tools.
//
//	bridge [serve] [flags]        run the bridge (the default)
//	bridge call METHOD [PARAMS]   call a method through the bridge
//	bridge sessions               list connected sessions
//	bridge token                  print the bridge's token
//	bridge health                 exit 0 when the bridge answers /healthz
//	bridge catalog [APP]          print the apps the bridge knows, or one's methods
//	bridge ensure                 start a bridge in the background unless one runs
//	bridge stop                   stop the bridge gracefully
//	bridge context set|get        push or read an app's context (project, folder, task)
//
// Every subcommand finds the bridge through --addr, BRIDGE_ADDR or
// WEBSOCKET_URL, and its token through --token, BRIDGE_TOKEN, --token-file
// or the default token file. Run `bridge help` for details.
package main

import (
	"fmt"
	"io"
	"os"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "0.1.0-dev"

// Exit codes of the client subcommands.
const (
	exitOK          = 0
	exitRPCError    = 1 // the bridge answered with a JSON-RPC error (or serve failed)
	exitUsage       = 2
	exitUnreachable = 3
	exitRefused     = 4 // the bridge refused the token (or its absence): retrying will not help
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run dispatches to a subcommand and returns the exit code.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(args, stdout, stderr)
	case "call":
		return callCmd(args, stdin, stdout, stderr)
	case "sessions":
		return sessionsCmd(args, stdout, stderr)
	case "token":
		return tokenCmd(args, stdout, stderr)
	case "health":
		return healthCmd(args, stdout, stderr)
	case "catalog":
		return catalogCmd(args, stdout, stderr)
	case "ensure":
		return ensureCmd(args, stdout, stderr)
	case "stop":
		return stopCmd(args, stdout, stderr)
	case "context":
		return contextCmd(args, stdin, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	case "version":
		fmt.Fprintln(stdout, "dccbridge", version)
		return exitOK
	default:
		fmt.Fprintf(stderr, "bridge: unknown command %q\n\n%s", cmd, usage)
		return exitUsage
	}
}

const usage = `dccbridge: a websocket JSON-RPC bridge between host panels and pipeline tools.

Usage:
  bridge [serve] [flags]                  run the bridge (ws://127.0.0.1:8098/ws)
  bridge call [flags] METHOD [PARAMS]     call METHOD; PARAMS is JSON, key=value pairs, or - (stdin)
  bridge sessions [--json] [flags]        list connected sessions
  bridge token [flags]                    print the bridge's token
  bridge health [flags]                   exit 0 when the bridge answers /healthz
  bridge catalog [--json] [APP]           the apps the bridge knows, or APP's methods
  bridge ensure [flags] [-- serve flags]  start a bridge in the background unless one runs; print its URL
  bridge stop [flags]                     stop the bridge gracefully
  bridge context set --app APP k=v ...    push the artist's context to APP's hosts (get reads it)
  bridge version

Run "bridge COMMAND -h" for a command's flags. Flags may come before or after
the method. Exit codes: 0 ok, 1 JSON-RPC error, 2 bad usage, 3 bridge unreachable,
4 refused: the bridge wants another token (retrying will not help).
`
