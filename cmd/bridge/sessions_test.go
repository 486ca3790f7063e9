package main

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestSessions lists a connected host that has a call in flight, and the
// `bridge call` that made it (a tool named for the command, user, machine
// and process), as a table, with --methods, and as JSON.
func TestSessions(t *testing.T) {
	b := startBridge(t, nil)
	addr := addrOf(b)
	expectOut(t, runCLI(t, nil, "", "sessions", "--addr", addr), "no sessions")

	host := connectHost(t, b, "d-1", "echo", "render")
	call := startCLI(t, nil, "", "call", "demo.render", "--addr", addr)
	f := readCall(t, host) // in flight at the host from now on

	r := runCLI(t, nil, "", "sessions", "--addr", addr)
	expect(t, r, exitOK)
	t.Logf("bridge sessions:\n%s", r.stdout)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 {
		t.Fatalf("want a header and two rows (the bridge call, the host): %v", r)
	}
	cols := regexp.MustCompile(`\s{2,}`)
	header := cols.Split(strings.TrimSpace(lines[0]), -1)
	wantHeader := []string{"APP", "KIND", "INSTANCE", "STATE", "LABEL", "VERSION", "RTT", "IN-FLIGHT", "METHODS", "CONNECTED"}
	if strings.Join(header, "|") != strings.Join(wantHeader, "|") {
		t.Fatalf("header %q", header)
	}
	cli := cols.Split(strings.TrimSpace(lines[1]), -1)
	if len(cli) != len(wantHeader) || cli[0] != "cli" || cli[1] != "tool" || !strings.HasPrefix(cli[4], "bridge call (") {
		t.Fatalf("first row %q, want the bridge call as app cli, kind tool, label \"bridge call (…)\"", cli)
	}
	row := cols.Split(strings.TrimSpace(lines[2]), -1)
	if len(row) != len(wantHeader) {
		t.Fatalf("row %q", row)
	}
	want := []string{"demo", "host", "d-1", "connected", "Demo panel", "1.2.3", "", "1", "2", ""}
	for i, w := range want {
		if w != "" && row[i] != w {
			t.Fatalf("%s is %q, want %q; table:\n%s", wantHeader[i], row[i], w, r.stdout)
		}
	}
	if d, err := time.ParseDuration(row[9]); err != nil || d < 0 || d > time.Minute {
		t.Fatalf("CONNECTED %q is not a recent duration", row[9])
	}

	r = runCLI(t, nil, "", "sessions", "--methods", "--addr", addr)
	expectOut(t, r, "demo.echo,demo.render")

	r = runCLI(t, nil, "", "sessions", "--addr", addr, "--json")
	expect(t, r, exitOK)
	var list []struct {
		App, Kind, Instance, State, Label, Version, Session string
		Methods                                             []string
		InFlight                                            int       `json:"in_flight"`
		ConnectedAt                                         time.Time `json:"connected_at"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatalf("--json is not JSON: %v\n%v", err, r)
	}
	if len(list) == 2 && list[0].App == "cli" {
		list = list[1:]
	}
	if len(list) != 1 || list[0].App != "demo" || list[0].Kind != "host" || list[0].Instance != "d-1" || list[0].InFlight != 1 ||
		strings.Join(list[0].Methods, ",") != "demo.echo,demo.render" || list[0].Session == "" || list[0].ConnectedAt.IsZero() {
		t.Fatalf("--json: %+v", list)
	}
	if !strings.Contains(r.stdout, "\n  {\n    \"session\"") {
		t.Fatalf("--json is not indented:\n%s", r.stdout)
	}

	// --app filters.
	expectOut(t, runCLI(t, nil, "", "sessions", "--app", "other", "--addr", addr), "no sessions")

	answer(host, f, `true`)
	expect(t, call.wait(t, 10*time.Second), exitOK)
}

func TestSessionsErrors(t *testing.T) {
	expect(t, runCLI(t, nil, "", "sessions", "--addr", "127.0.0.1:"+freePort(t)), exitUnreachable, "bridge serve")
	expect(t, runCLI(t, nil, "", "sessions", "extra"), exitUsage, `unexpected argument "extra"`, "usage: bridge sessions")
	expect(t, runCLI(t, nil, "", "sessions", "--bogus"), exitUsage, "-bogus")
}

// expectOut fails unless r exited 0 and its stdout contains want.
func expectOut(t *testing.T, r result, want string) {
	t.Helper()
	expect(t, r, exitOK)
	if !strings.Contains(r.stdout, want) {
		t.Fatalf("stdout lacks %q: %v", want, r)
	}
}
