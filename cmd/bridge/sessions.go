package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// sessionsTimeout bounds the bridge.sessions call.
const sessionsTimeout = 10 * time.Second

const sessionsAbout = `
List the sessions connected to the bridge that have said bridge.hello: which
app and instance, their state, round-trip time, calls in flight, and the
methods each offers. --json prints what bridge.sessions returns.

Exit codes: 0 ok, 1 JSON-RPC error, 2 bad usage, 3 bridge unreachable.
`

// sessionRow is the part of a bridge.sessions entry the table shows.
type sessionRow struct {
	App         string    `json:"app"`
	Kind        string    `json:"kind"`
	Instance    string    `json:"instance"`
	State       string    `json:"state"`
	Label       string    `json:"label"`
	AppLabel    string    `json:"app_label"` // the catalog's name of the app, shown when the session gave no label
	Version     string    `json:"version"`
	RTTMS       float64   `json:"rtt_ms"`
	InFlight    int       `json:"in_flight"`
	Parked      int       `json:"parked"`
	Methods     []string  `json:"methods"`
	ConnectedAt time.Time `json:"connected_at"`
}

// sessionsCmd runs `bridge sessions`.
func sessionsCmd(args []string, stdout, stderr io.Writer) int {
	var (
		c           common
		asJSON      bool
		listMethods bool
		app         string
	)
	sc := newSubcommand("sessions", "[flags]", sessionsAbout, stdout, stderr)
	c.register(sc.fs)
	sc.fs.BoolVar(&asJSON, "json", false, "print the sessions as JSON (all fields) instead of a table")
	sc.fs.BoolVar(&listMethods, "methods", false, "list the methods each session offers instead of counting them")
	sc.fs.StringVar(&app, "app", "", "only the sessions of this `app` (e.g. aftereffects)")
	pos, code, ok := sc.parse(args)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		return sc.fail(usageError("unexpected argument %q", pos[0]))
	}
	conn, err := dialBridge(context.Background(), &c, nil, stderr)
	if err != nil {
		return sc.fail(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), sessionsTimeout)
	defer cancel()
	var params any
	if app != "" {
		params = map[string]string{"app": app}
	}
	var result json.RawMessage
	if err := conn.Call(ctx, "bridge.sessions", params, &result); err != nil {
		return reportCallError(sc, conn, err, sessionsTimeout)
	}
	if asJSON {
		writeJSON(stdout, result)
		return exitOK
	}
	var rows []sessionRow
	if err := json.Unmarshal(result, &rows); err != nil {
		return sc.fail(fmt.Errorf("unexpected bridge.sessions result (%v); --json prints it as it came", err))
	}
	writeSessionTable(stdout, rows, listMethods, time.Now())
	return exitOK
}

// writeSessionTable prints rows as an aligned table; now dates CONNECTED.
func writeSessionTable(w io.Writer, rows []sessionRow, listMethods bool, now time.Time) {
	if len(rows) == 0 {
		fmt.Fprintln(w, "no sessions (none has said bridge.hello)")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "APP\tKIND\tINSTANCE\tSTATE\tLABEL\tVERSION\tRTT\tIN-FLIGHT\tMETHODS\tCONNECTED")
	for _, r := range rows {
		methods := strconv.Itoa(len(r.Methods))
		if listMethods {
			methods = orDash(strings.Join(r.Methods, ","))
		}
		rtt := "-"
		if r.RTTMS > 0 {
			rtt = strconv.FormatFloat(r.RTTMS, 'f', 1, 64) + "ms"
		}
		inFlight := strconv.Itoa(r.InFlight)
		if r.Parked > 0 {
			inFlight += " (+" + strconv.Itoa(r.Parked) + " parked)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			orDash(r.App), orDash(r.Kind), orDash(r.Instance), orDash(r.State), orDash(cmp.Or(r.Label, r.AppLabel)), orDash(r.Version),
			rtt, inFlight, methods, connectedFor(r.ConnectedAt, now))
	}
	_ = tw.Flush()
}

// connectedFor says how long ago t was, to the second ("4m12s").
func connectedFor(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return max(now.Sub(t), 0).Round(time.Second).String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
