package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i + 1)
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"single p0", []time.Duration{7}, 0, 7},
		{"single p50", []time.Duration{7}, 50, 7},
		{"single p100", []time.Duration{7}, 100, 7},
		{"two p50", []time.Duration{1, 2}, 50, 1},
		{"two p51", []time.Duration{1, 2}, 51, 2},
		{"hundred p0", hundred, 0, 1},
		{"hundred p1", hundred, 1, 1},
		{"hundred p50", hundred, 50, 50},
		{"hundred p90", hundred, 90, 90},
		{"hundred p99", hundred, 99, 99},
		{"hundred p99.5", hundred, 99.5, 100},
		{"hundred p100", hundred, 100, 100},
		{"ten p99", hundred[:10], 99, 10},
		{"ten p50", hundred[:10], 50, 5},
	}
	for _, tt := range tests {
		if got := percentile(tt.sorted, tt.p); got != tt.want {
			t.Errorf("%s: percentile(…, %v) = %v, want %v", tt.name, tt.p, got, tt.want)
		}
	}
}

func TestSummarize(t *testing.T) {
	lat := []time.Duration{4 * time.Microsecond, 1 * time.Microsecond, 3 * time.Microsecond, 2 * time.Microsecond}
	var r result
	summarize(&r, lat, 2*time.Second)
	if r.Calls != 4 || r.CallsPerS != 2 || r.P50us != 2 || r.P99us != 4 || r.MaxUs != 4 {
		t.Errorf("summarize = %+v", r)
	}
	if !slices.IsSorted(lat) {
		t.Errorf("latencies not sorted in place: %v", lat)
	}
}

func TestParseEnvelope(t *testing.T) {
	tests := []struct {
		msg                                string
		id, method, params, result, errMbr string
	}{
		{msg: `{"jsonrpc":"2.0","id":"t3-17","method":"benchhost.echo","params":{"data":"x"}}`,
			id: `"t3-17"`, method: `"benchhost.echo"`, params: `{"data":"x"}`},
		{msg: ` { "id" : -12345678901234567890 , "result" : [1, {"a":"}]"}, "\"q\\"] , "meta":{"app":"x"} } `,
			id: `-12345678901234567890`, result: `[1, {"a":"}]"}, "\"q\\"]`},
		{msg: `{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"parse error"}}`,
			id: `null`, errMbr: `{"code":-32700,"message":"parse error"}`},
		{msg: `{"method":"$/cancelRequest","params":{"id":"x-1"}}`,
			method: `"$/cancelRequest"`, params: `{"id":"x-1"}`},
		{msg: `{"params":{"id":1,"method":"nested"},"id":2,"method":"m"}`,
			id: `2`, method: `"m"`, params: `{"id":1,"method":"nested"}`},
		{msg: `{}`},
	}
	for _, tt := range tests {
		e, err := parseEnvelope([]byte(tt.msg))
		if err != nil {
			t.Errorf("parseEnvelope(%s): %v", tt.msg, err)
			continue
		}
		for _, f := range []struct {
			name      string
			got, want string
		}{
			{"id", string(e.ID), tt.id}, {"method", string(e.Method), tt.method},
			{"params", string(e.Params), tt.params}, {"result", string(e.Result), tt.result},
			{"error", string(e.Error), tt.errMbr},
		} {
			if f.got != f.want {
				t.Errorf("parseEnvelope(%s).%s = %q, want %q", tt.msg, f.name, f.got, f.want)
			}
		}
		// Whatever the scanner finds must be what encoding/json finds.
		var std struct{ ID, Method, Params, Result, Error json.RawMessage }
		if err := json.Unmarshal([]byte(tt.msg), &std); err != nil {
			t.Fatalf("test message %s is not JSON: %v", tt.msg, err)
		}
		if !bytes.Equal(e.ID, std.ID) || !bytes.Equal(e.Params, std.Params) || !bytes.Equal(e.Result, std.Result) {
			t.Errorf("parseEnvelope(%s) disagrees with encoding/json: %+v vs %+v", tt.msg, e, std)
		}
	}
	for _, bad := range []string{``, `[]`, `{"id":1`, `{"id":"unterminated}`, `{"id" 1}`, `{"id":1,}`, `{"a":{"b":1}`, `{"id":}`} {
		if _, err := parseEnvelope([]byte(bad)); err == nil {
			t.Errorf("parseEnvelope(%q) = nil error, want one", bad)
		}
	}
}

func TestParseEnvelopeAllocs(t *testing.T) {
	msg := []byte(`{"jsonrpc":"2.0","id":"t3-17","result":{"data":"xxxxxxxx"},"meta":{"app":"benchhost"}}`)
	if n := testing.AllocsPerRun(100, func() { parseEnvelope(msg) }); n != 0 {
		t.Errorf("parseEnvelope allocates %v times per call, want 0", n)
	}
}

func TestRoutePrefix(t *testing.T) {
	for msg, want := range map[string]string{
		`{"jsonrpc":"2.0","id":"t31-99","result":{"id":"t0-1"}}`: "t31",
		`{"jsonrpc":"2.0","id":"t0-1","result":null}`:            "t0",
		`{"jsonrpc":"2.0","id":7,"result":{"id":"t1-2"}}`:        "t1", // documented limit: first match wins
		`{"jsonrpc":"2.0","id":"nodash","result":1}`:             "",
		`{"jsonrpc":"2.0","id":"-1","result":1}`:                 "",
		`{"jsonrpc":"2.0","result":1}`:                           "",
	} {
		got, ok := routePrefix([]byte(msg))
		if string(got) != want || ok != (want != "") {
			t.Errorf("routePrefix(%s) = %q, %v; want %q", msg, got, ok, want)
		}
	}
}

func TestAppendEcho(t *testing.T) {
	got := string(appendEcho(nil, []byte(`"x-1"`), []byte(`{"a":[1,2]}`)))
	if want := `{"jsonrpc":"2.0","id":"x-1","result":{"a":[1,2]}}`; got != want {
		t.Errorf("appendEcho = %s, want %s", got, want)
	}
	if got := string(appendEcho(nil, []byte(`5`), nil)); got != `{"jsonrpc":"2.0","id":5,"result":null}` {
		t.Errorf("appendEcho without params = %s", got)
	}
}

func TestMakePayload(t *testing.T) {
	for _, n := range []int{12, 200, 4096} {
		p := makePayload(n)
		if len(p) != n || !json.Valid(p) {
			t.Errorf("makePayload(%d) = %d bytes, valid=%v", n, len(p), json.Valid(p))
		}
	}
}

// TestRelayOnlyEndToEnd builds the harness (with -race when the test runs
// with it) and runs the relay-only mode as a user would, with tiny counts:
// relay, host peer and tool peers each in their own process.
func TestRelayOnlyEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the harness")
	}
	bin := buildHarness(t)

	rep, stdout := runHarness(t, bin, "-only", "relay", "-calls", "200", "-callers", "2",
		"-warmup", "200ms", "-max-duration", "30s", "-json")
	if len(rep.Results) != 2 {
		t.Fatalf("got %d results, want 2 (1 caller, 2 callers):\n%s", len(rep.Results), stdout)
	}
	for i, want := range []struct {
		scenario string
		callers  int
	}{{"1 caller", 1}, {"2 callers", 2}} {
		r := rep.Results[i]
		if r.Scenario != want.scenario || r.Target != "relay" || r.Callers != want.callers {
			t.Errorf("result %d is %q/%q with %d callers, want %q/relay with %d", i, r.Scenario, r.Target, r.Callers, want.scenario, want.callers)
		}
		if r.Failure != "" || r.Errors != 0 || r.Mismatches != 0 {
			t.Errorf("%s: failure %q, %d error replies, %d id mismatches; want none", r.Scenario, r.Failure, r.Errors, r.Mismatches)
		}
		if r.Calls != 200 || r.CallsPerS <= 0 || r.P50us <= 0 || r.P99us < r.P50us {
			t.Errorf("%s: calls %d, %.0f calls/s, p50 %.1fµs, p99 %.1fµs; want 200 calls and positive rates", r.Scenario, r.Calls, r.CallsPerS, r.P50us, r.P99us)
		}
	}
	if rep.Ratios != nil {
		t.Errorf("ratios reported without a bridge run: %+v", rep.Ratios)
	}
	if rep.Resume != nil {
		t.Errorf("resume scenario reported without a bridge run: %+v", rep.Resume)
	}
}

func TestTableOutput(t *testing.T) {
	rep := &report{Results: []result{
		{Scenario: "1 caller", Target: "relay", Callers: 1, Calls: 10, CallsPerS: 12000, P50us: 80, P99us: 1500},
		{Scenario: "1 caller", Target: "bridge", Callers: 1, Calls: 10, CallsPerS: 6000, P50us: 160, P99us: 2500},
		{Scenario: "32 callers", Target: "relay", Callers: 32, Calls: 10, CallsPerS: 40000, P50us: 700, P99us: 3000},
		{Scenario: "32 callers", Target: "bridge", Callers: 32, Failure: "tools-bridge exited: exit status 1"},
	}}
	rep.computeRatios()
	if rep.Ratios != nil {
		t.Fatalf("ratios computed from a failed run: %+v", rep.Ratios)
	}
	rep.Results[2].ServerCPUus = 30
	rep.Results[3] = result{Scenario: "32 callers", Target: "bridge", Callers: 32, Calls: 10, CallsPerS: 16000, P50us: 1900, P99us: 5000, ServerCPUus: 42}
	rep.computeRatios()
	var buf bytes.Buffer
	if err := rep.writeTable(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"scenario", "32 callers  bridge  16000", "80.0µs", "1.50ms",
		"32 callers throughput bridge/relay = 0.40 (target ≥ 0.8, MISSED)", "1 caller p50 bridge/relay = 2.00 (target ≤ 1.5, MISSED)",
		"server CPU/call", "42.0µs", "32 callers server CPU per call bridge/relay = 1.40 (target ≤ 1.5, met)"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	for line := range strings.Lines(out) {
		if strings.HasSuffix(strings.TrimSuffix(line, "\n"), " ") {
			t.Errorf("trailing space in %q", line)
		}
	}
}

// TestResumeEndToEnd builds the harness (with -race when the test runs
// with it), lets it build the bridge, and runs the bridge-only scenarios
// that have their own blocks in the report, each with its peers in
// processes of their own: resume latency (a few cycles), and memory per
// idle session with calls routed to one of them.
func TestResumeEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the harness and the bridge and runs them")
	}
	bin := buildHarness(t)

	const cycles, idle = 5, 200
	rep, stdout := runHarness(t, bin, "-only", "bridge", "-calls", "50", "-callers", "1",
		"-warmup", "0", "-max-duration", "30s", "-resume-cycles", strconv.Itoa(cycles), "-idle-sessions", strconv.Itoa(idle), "-json")
	// The idle scenario: a bridge of its own holding 200 idle sessions of
	// another process, its memory read from /proc (Linux only).
	switch i := rep.Idle; {
	case i == nil:
		t.Errorf("no idle result:\n%s", stdout)
	case runtime.GOOS != "linux":
		if i.Failure == "" {
			t.Errorf("idle: measured without /proc: %+v", i)
		}
	case i.Failure != "" || i.Sessions != idle || i.RSSBeforeKiB <= 0 || i.RSSAfterKiB <= i.RSSBeforeKiB || i.PerSessionKiB <= 0 || i.GoalKiB != 20:
		t.Errorf("idle: %+v, want %d sessions, RSS grown, a per-session figure and the 20 KiB goal", i, idle)
	case i.Calls == nil || !i.Calls.ok() || i.Calls.Calls != 2000 || i.Calls.P50us <= 0 || i.RSSAfterCallsKiB <= 0:
		t.Errorf("idle: calls to one of the idle sessions: %+v, want 2000 answered and timed, and the RSS after them", i.Calls)
	}
	r := rep.Resume
	if r == nil {
		t.Fatalf("no resume result:\n%s", stdout)
	}
	if r.Target != "bridge" || r.Failure != "" || r.Lost != 0 || r.Duplicated != 0 {
		t.Errorf("resume: target %q, failure %q, %d lost, %d duplicated; want bridge and none", r.Target, r.Failure, r.Lost, r.Duplicated)
	}
	if r.Cycles != cycles || r.CyclesRequested != cycles {
		t.Errorf("resume: %d of %d cycles, want %d of %d", r.Cycles, r.CyclesRequested, cycles, cycles)
	}
	if r.MinUs <= 0 || r.P50us < r.MinUs || r.P99us < r.P50us || r.MaxUs < r.P99us {
		t.Errorf("resume latencies out of order: min %.1fµs, p50 %.1fµs, p99 %.1fµs, max %.1fµs", r.MinUs, r.P50us, r.P99us, r.MaxUs)
	}
	if r.P50TargetUs != 5000 || r.P50TargetMet != (r.P50us <= 5000) {
		t.Errorf("resume target: %.0fµs, met %v, with p50 %.1fµs", r.P50TargetUs, r.P50TargetMet, r.P50us)
	}
	if len(rep.Results) != 1 || !rep.Results[0].ok() {
		t.Errorf("want one complete 1-caller bridge result, got %+v", rep.Results)
	}
}

func TestScenarios(t *testing.T) {
	names := func(cfg benchConfig) []string {
		var out []string
		for _, sc := range scenarios(cfg) {
			out = append(out, sc.name)
		}
		return out
	}
	base := benchConfig{Callers: 32, ResumeCycles: 100}
	for _, tt := range []struct {
		edit func(*benchConfig)
		want []string
	}{
		{func(*benchConfig) {}, []string{"1 caller", "32 callers", "resume"}},
		{func(c *benchConfig) { c.Only = "bridge" }, []string{"1 caller", "32 callers", "resume"}},
		{func(c *benchConfig) { c.Only = "relay" }, []string{"1 caller", "32 callers"}},
		{func(c *benchConfig) { c.ResumeCycles = 0 }, []string{"1 caller", "32 callers"}},
		{func(c *benchConfig) { c.Callers = 1 }, []string{"1 caller", "resume"}},
	} {
		cfg := base
		tt.edit(&cfg)
		if got := names(cfg); !slices.Equal(got, tt.want) {
			t.Errorf("scenarios(%+v) = %q, want %q", cfg, got, tt.want)
		}
	}
	resume := scenarios(base)[2]
	if resume.kind != resumeScenario || resume.cycles != 100 {
		t.Errorf("resume scenario = %+v", resume)
	}
	if resume.runsOn(&target{name: "relay"}) || !resume.runsOn(&target{name: "bridge"}) {
		t.Error("the resume scenario must run on the bridge only")
	}
	if load := scenarios(base)[0]; !load.runsOn(&target{name: "relay"}) || !load.runsOn(&target{name: "bridge"}) {
		t.Error("load scenarios must run on every target")
	}
}

func TestObjectMember(t *testing.T) {
	obj := []byte(` {"caller":{"app":"x","attempt":9},"timeout_ms":599812, "attempt" : 2 ,"s":"a\"b"} `)
	for name, want := range map[string]string{
		"attempt":    "2",
		"timeout_ms": "599812",
		"caller":     `{"app":"x","attempt":9}`,
		"s":          `"a\"b"`,
		"app":        "", // nested members are not found
		"missing":    "",
	} {
		if got := string(objectMember(obj, name)); got != want {
			t.Errorf("objectMember(…, %q) = %q, want %q", name, got, want)
		}
	}
	for _, bad := range []string{``, `[]`, `{"attempt"`, `{"attempt":}`, `{"a":1 "attempt":2}`, `null`} {
		if got := objectMember([]byte(bad), "attempt"); got != nil {
			t.Errorf("objectMember(%q) = %q, want nil", bad, got)
		}
	}
	if n := testing.AllocsPerRun(100, func() { objectMember(obj, "attempt") }); n != 0 {
		t.Errorf("objectMember allocates %v times per call, want 0", n)
	}
}

func TestResumeTableOutput(t *testing.T) {
	rep := &report{Resume: &resumeResult{Target: "bridge", Cycles: 100, CyclesRequested: 100,
		P50us: 210, P99us: 1500, MinUs: 120, MaxUs: 2100, P50TargetUs: 5000, P50TargetMet: true}}
	var buf bytes.Buffer
	if err := rep.writeTable(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"resume latency (hello sent → re-sent call received)",
		"target  cycles  p50      p99     min      max     lost  duplicated  notes",
		"bridge  100     210.0µs  1.50ms  120.0µs  2.10ms  0     0",
		"resume: p50 = 210.0µs over 100 drops (target ≤ 5.00ms, met)"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if !rep.ok() {
		t.Error("report with a clean resume result is not ok")
	}

	rep.Resume = &resumeResult{Target: "bridge", Cycles: 3, CyclesRequested: 100, Lost: 1, P50us: 200, P99us: 300, MinUs: 100, MaxUs: 300,
		P50TargetUs: 5000, Failure: "cycle 4: host: waiting for the re-sent call: timeout\nmore"}
	buf.Reset()
	if err := rep.writeTable(&buf); err != nil {
		t.Fatal(err)
	}
	out = buf.String()
	for _, want := range []string{"  1     0           FAILED: cycle 4: host: waiting for the re-sent call: timeout\n",
		"resume: p50 n/a (target ≤ 5.00ms): the run lost, duplicated or failed"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if rep.ok() {
		t.Error("report with a lost call is ok")
	}
	for line := range strings.Lines(out) {
		if strings.HasSuffix(strings.TrimSuffix(line, "\n"), " ") {
			t.Errorf("trailing space in %q", line)
		}
	}
}

// buildHarness builds this command into a temporary directory, with -race
// when the test binary has it, and returns the binary's path.
// runHarness runs the built harness with args, requires it to succeed, and
// returns its JSON report and its standard output; a data race reported
// by any of its subprocesses fails the test.
func runHarness(t *testing.T, bin string, args ...string) (report, *bytes.Buffer) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Run(); err != nil {
		t.Fatalf("bridgebench: %v\nstdout:\n%s\nstderr:\n%s", err, &stdout, &stderr)
	}
	if strings.Contains(stderr.String(), "DATA RACE") {
		t.Errorf("a subprocess reported a data race:\n%s", &stderr)
	}
	var rep report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("output is not a JSON report: %v\n%s", err, &stdout)
	}
	return rep, &stdout
}

func buildHarness(t *testing.T) string {
	t.Helper()
	goCmd, err := exec.LookPath("go")
	if err != nil {
		goCmd = "go" // not on PATH: exec reports it clearly
	}
	bin := filepath.Join(t.TempDir(), "bridgebench")
	if runtime.GOOS == "windows" {
		bin += ".exe"
	}
	build := []string{"build", "-o", bin}
	if raceEnabled() {
		build = append(build, "-race")
	}
	if out, err := exec.CommandContext(t.Context(), goCmd, append(build, ".")...).CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// raceEnabled reports whether this test binary was built with -race.
func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// processCPU reads a process's CPU time from /proc: this process's own
// grows while it computes, and a process that is not there is an error.
func TestProcessCPU(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc (Linux)")
	}
	before, err := processCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	var after time.Duration
	x := 1
	for start := time.Now(); after <= before && time.Since(start) < 5*time.Second; {
		for range 1_000_000 {
			x = x*31 + 7
		}
		if after, err = processCPU(os.Getpid()); err != nil {
			t.Fatal(err)
		}
	}
	if after <= before {
		t.Errorf("CPU time did not grow over 5 s of computing (%v → %v, x=%d)", before, after, x)
	}
	if _, err := processCPU(0); err == nil {
		t.Error("processCPU(0): no error")
	}
}
