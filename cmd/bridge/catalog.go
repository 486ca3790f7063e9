package main

import (
	"cmp"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dccbridge/dccbridge/hostadapters"
)

// catalogCmd prints the app catalog: every app in a table, or one app's
// methods; --json prints it as the catalog files hold it.
func catalogCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bridge catalog", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("catalog", os.Getenv("BRIDGE_CATALOG"), "a `dir` of app catalog files (*.json) added to the built-in catalog, as `bridge serve --catalog` (env BRIDGE_CATALOG)")
	asJSON := fs.Bool("json", false, "print JSON, in the catalog files' form")
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: bridge catalog [--json] [--catalog DIR] [APP]\n\nPrints the apps the bridge knows, or one app's methods: whether a call may be re-sent after a drop (idempotent) and its default timeout.\n\n")
		fs.PrintDefaults()
	}
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return usageExit(err)
	}
	catalog, err := hostadapters.Load(*dir)
	if err != nil {
		fmt.Fprintln(stderr, "bridge catalog:", err)
		return exitUsage
	}
	var v any = catalog.Apps()
	var app *hostadapters.App
	switch len(pos) {
	case 0:
	case 1:
		var ok bool
		if app, ok = catalog.App(pos[0]); !ok {
			fmt.Fprintf(stderr, "bridge catalog: no app %q (bridge catalog lists them)\n", pos[0])
			return exitUsage
		}
		v = app
	default:
		fs.Usage()
		return exitUsage
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(v); err != nil {
			return exitRPCError
		}
		return exitOK
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	if app == nil {
		fmt.Fprintln(tw, "APP\tLABEL\tDIALECT\tPORTS\tMETHODS\tALIASES")
		for _, a := range catalog.Apps() {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", a.Name, a.Label, a.Dialect, ints(a.Ports), len(a.Methods), strings.Join(a.Aliases, ", "))
		}
	} else {
		fmt.Fprintf(stdout, "%s (%s): dialect %s, ports %s, aliases %s\n", app.Label, app.Name, app.Dialect, ints(app.Ports), strings.Join(app.Aliases, ", "))
		if app.WSRPC != nil {
			fmt.Fprintf(stdout, "wsrpc panel: routes %s.*; it calls on the pipeline side: %s\n", app.WSRPC.Prefix, strings.Join(app.WSRPC.ServerRoutes, ", "))
		}
		fmt.Fprintln(tw, "\nMETHOD\tPARAMS\tRE-SENT AFTER A DROP\tTIMEOUT")
		for _, m := range app.Methods {
			resend := "no"
			if m.Idempotent {
				resend = "yes (idempotent)"
			}
			timeout := "default"
			if t := cmp.Or(m.TimeoutMS, app.TimeoutMS); t > 0 {
				timeout = (time.Duration(t) * time.Millisecond).String()
			}
			fmt.Fprintf(tw, "%s.%s\t%s\t%s\t%s\n", app.Name, m.Name, strings.Join(m.Params, ", "), resend, timeout)
		}
	}
	if tw.Flush() != nil {
		return exitRPCError
	}
	return exitOK
}

func ints(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ", ")
}
