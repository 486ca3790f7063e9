package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"
)

// Targets for the bridge against the relay (issue 8).
const (
	throughputTarget = 0.8 // concurrent callers: bridge calls/s ÷ relay calls/s, at least
	p50Target        = 1.5 // 1 caller: bridge p50 ÷ relay p50, at most
	cpuTarget        = 1.5 // concurrent callers: the server's CPU per call, bridge ÷ relay, at most
)

// resumeP50Target is the most the bridge's median resume latency may be
// (issue 3): from a host's hello after a drop to the re-sent call.
const resumeP50Target = 5 * time.Millisecond

// report is the outcome of one benchmark run.
type report struct {
	GoVersion    string   `json:"go_version"`
	OS           string   `json:"os"`
	Arch         string   `json:"arch"`
	CPUs         int      `json:"cpus"`
	LoadAvg      string   `json:"load_avg,omitempty"` // /proc/loadavg's 1, 5, 15 min when the run started (Linux)
	PayloadBytes int      `json:"payload_bytes"`
	Results      []result `json:"results"`
	Ratios       *ratios  `json:"ratios,omitempty"` // nil unless both targets ran

	// Resume is the resume scenario's result, nil when it did not run
	// (-only relay, -resume-cycles 0).
	Resume *resumeResult `json:"resume,omitempty"`

	// Idle is the idle scenario's result, nil when it did not run
	// (-idle-sessions 0, -only relay).
	Idle *idleResult `json:"idle,omitempty"`
}

// ratios compares the bridge with the relay.
type ratios struct {
	ThroughputScenario string  `json:"throughput_scenario"`
	Throughput         float64 `json:"throughput_bridge_over_relay"`
	ThroughputTarget   float64 `json:"throughput_target_min"`
	P50Scenario        string  `json:"p50_scenario"`
	P50                float64 `json:"p50_bridge_over_relay"`
	P50Target          float64 `json:"p50_target_max"`
	// CPU compares the server process's CPU time per call (0 where /proc
	// is missing).
	CPU       float64 `json:"cpu_bridge_over_relay,omitempty"`
	CPUTarget float64 `json:"cpu_target_max"`
}

// newReport returns an empty report for a run with cfg.
func newReport(cfg benchConfig) *report {
	return &report{
		GoVersion:    runtime.Version(),
		OS:           runtime.GOOS,
		Arch:         runtime.GOARCH,
		CPUs:         runtime.NumCPU(),
		LoadAvg:      loadAvg(),
		PayloadBytes: cfg.Payload,
	}
}

// loadAvg returns the 1, 5 and 15 minute load averages where /proc has
// them, else "". A loaded machine is the first suspect of a noisy run.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// ok reports whether every result is complete and error-free, and the
// resume scenario, if it ran, lost and duplicated nothing.
func (rep *report) ok() bool {
	for _, r := range rep.Results {
		if !r.ok() {
			return false
		}
	}
	return (rep.Resume == nil || rep.Resume.ok()) && (rep.Idle == nil || rep.Idle.Failure == "")
}

// find returns the result of target in scenario.
func (rep *report) find(scenario, target string) (result, bool) {
	for _, r := range rep.Results {
		if r.Scenario == scenario && r.Target == target {
			return r, r.ok()
		}
	}
	return result{}, false
}

// computeRatios sets rep.Ratios when both targets completed the sequential
// scenario and the last (most concurrent) one.
func (rep *report) computeRatios() {
	if len(rep.Results) == 0 {
		return
	}
	seq := rep.Results[0].Scenario
	conc := rep.Results[len(rep.Results)-1].Scenario
	rs, ok1 := rep.find(seq, "relay")
	bs, ok2 := rep.find(seq, "bridge")
	rc, ok3 := rep.find(conc, "relay")
	bc, ok4 := rep.find(conc, "bridge")
	if !ok1 || !ok2 || !ok3 || !ok4 || rc.CallsPerS == 0 || rs.P50us == 0 {
		return
	}
	rep.Ratios = &ratios{
		ThroughputScenario: conc,
		Throughput:         bc.CallsPerS / rc.CallsPerS,
		ThroughputTarget:   throughputTarget,
		P50Scenario:        seq,
		P50:                bs.P50us / rs.P50us,
		P50Target:          p50Target,
		CPUTarget:          cpuTarget,
	}
	if rc.ServerCPUus > 0 && bc.ServerCPUus > 0 {
		rep.Ratios.CPU = bc.ServerCPUus / rc.ServerCPUus
	}
}

// writeJSON writes rep as indented JSON.
func (rep *report) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// writeTable writes rep as a table followed by the ratios line.
func (rep *report) writeTable(w io.Writer) error {
	machine := fmt.Sprintf("%s %s/%s, %d CPUs", rep.GoVersion, rep.OS, rep.Arch, rep.CPUs)
	if rep.LoadAvg != "" {
		machine += ", load average " + rep.LoadAvg
	}
	fmt.Fprintf(w, "%s; payload %d bytes\n", machine, rep.PayloadBytes)
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\ttarget\tcalls/s\tp50\tp99\tcalls\tserver CPU/call\tnotes")
	for _, r := range rep.Results {
		if r.Failure != "" {
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\t-\tFAILED: %s\n", r.Scenario, r.Target, firstLine(r.Failure))
			continue
		}
		cpu := "-"
		if r.ServerCPUus > 0 {
			cpu = fmtMicros(r.ServerCPUus)
		}
		fmt.Fprintf(tw, "%s\t%s\t%.0f\t%s\t%s\t%d\t%s\t%s\n", r.Scenario, r.Target, r.CallsPerS,
			fmtMicros(r.P50us), fmtMicros(r.P99us), r.Calls, cpu, notes(r))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for line := range strings.Lines(buf.String()) {
		if _, err := io.WriteString(w, strings.TrimRight(line, " \n")+"\n"); err != nil {
			return err
		}
	}
	if _, err := fmt.Fprintln(w, rep.ratiosLine()); err != nil {
		return err
	}
	if rep.Resume != nil {
		if err := rep.Resume.writeTable(w); err != nil {
			return err
		}
	}
	if rep.Idle != nil {
		return rep.Idle.write(w)
	}
	return nil
}

// write writes r as its own block: what was measured and the verdict.
func (r *idleResult) write(w io.Writer) error {
	if r.Failure != "" {
		_, err := fmt.Fprintf(w, "\nidle sessions: %d, FAILED: %s\n", r.Sessions, firstLine(r.Failure))
		return err
	}
	verdict := "met"
	if r.PerSessionKiB > r.GoalKiB {
		verdict = "not met"
	}
	if _, err := fmt.Fprintf(w, "\nidle sessions (clients in another process, %v to settle)\nbridge RSS %.1f MiB → %.1f MiB with %d sessions: %.1f KiB per session (goal ≤ %.0f KiB, %s)\n",
		time.Duration(r.SettleSeconds*float64(time.Second)), float64(r.RSSBeforeKiB)/1024, float64(r.RSSAfterKiB)/1024, r.Sessions, r.PerSessionKiB, r.GoalKiB, verdict); err != nil {
		return err
	}
	switch c := r.Calls; {
	case c == nil:
		return nil
	case c.Failure != "":
		_, err := fmt.Fprintf(w, "calls to one of them: FAILED: %s\n", firstLine(c.Failure))
		return err
	default:
		_, err := fmt.Fprintf(w, "calls to one of them, 1 caller: %d calls, p50 %s, p99 %s, %d errors; bridge RSS after them %.1f MiB\n",
			c.Calls, fmtMicros(c.P50us), fmtMicros(c.P99us), c.Errors+c.Mismatches, float64(r.RSSAfterCallsKiB)/1024)
		return err
	}
}

// writeTable writes r as its own block: a heading, one row and a verdict
// line.
func (r *resumeResult) writeTable(w io.Writer) error {
	var buf bytes.Buffer
	buf.WriteString("\nresume latency (hello sent → re-sent call received)\n")
	tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "target\tcycles\tp50\tp99\tmin\tmax\tlost\tduplicated\tnotes")
	var note string
	switch {
	case r.Failure != "":
		note = "FAILED: " + firstLine(r.Failure)
	case r.Cycles == 0:
		note = "no cycles completed"
	case r.Cycles < r.CyclesRequested:
		note = fmt.Sprintf("stopped by -max-duration after %d of %d cycles", r.Cycles, r.CyclesRequested)
	}
	if r.Cycles == 0 {
		fmt.Fprintf(tw, "%s\t0\t-\t-\t-\t-\t%d\t%d\t%s\n", r.Target, r.Lost, r.Duplicated, note)
	} else {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", r.Target, r.Cycles,
			fmtMicros(r.P50us), fmtMicros(r.P99us), fmtMicros(r.MinUs), fmtMicros(r.MaxUs), r.Lost, r.Duplicated, note)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for line := range strings.Lines(buf.String()) {
		if _, err := io.WriteString(w, strings.TrimRight(line, " \n")+"\n"); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintln(w, r.verdictLine())
	return err
}

// verdictLine checks r's median against its target in one line.
func (r *resumeResult) verdictLine() string {
	if !r.ok() {
		return fmt.Sprintf("resume: p50 n/a (target ≤ %s): the run lost, duplicated or failed", fmtMicros(r.P50TargetUs))
	}
	return fmt.Sprintf("resume: p50 = %s over %d drops (target ≤ %s, %s)",
		fmtMicros(r.P50us), r.Cycles, fmtMicros(r.P50TargetUs), verdict(r.P50TargetMet))
}

// ratiosLine summarizes rep.Ratios in one line.
func (rep *report) ratiosLine() string {
	q := rep.Ratios
	if q == nil {
		return "ratios: n/a (needs complete relay and bridge runs)"
	}
	line := fmt.Sprintf("ratios: %s throughput bridge/relay = %.2f (target ≥ %.1f, %s); %s p50 bridge/relay = %.2f (target ≤ %.1f, %s)",
		q.ThroughputScenario, q.Throughput, q.ThroughputTarget, verdict(q.Throughput >= q.ThroughputTarget),
		q.P50Scenario, q.P50, q.P50Target, verdict(q.P50 <= q.P50Target))
	if q.CPU > 0 {
		line += fmt.Sprintf("; %s server CPU per call bridge/relay = %.2f (target ≤ %.1f, %s)",
			q.ThroughputScenario, q.CPU, q.CPUTarget, verdict(q.CPU <= q.CPUTarget))
	}
	return line
}

// verdict words a target check.
func verdict(met bool) string {
	if met {
		return "met"
	}
	return "MISSED"
}

// notes describes what is wrong with a completed result, if anything.
func notes(r result) string {
	var parts []string
	if r.Errors > 0 {
		parts = append(parts, fmt.Sprintf("%d error replies", r.Errors))
	}
	if r.Mismatches > 0 {
		parts = append(parts, fmt.Sprintf("%d id mismatches", r.Mismatches))
	}
	if r.Calls == 0 {
		parts = append(parts, "no calls completed")
	}
	return strings.Join(parts, ", ")
}

// fmtMicros formats a latency given in microseconds.
func fmtMicros(us float64) string {
	if us >= 1000 {
		return fmt.Sprintf("%.2fms", us/1000)
	}
	return fmt.Sprintf("%.1fµs", us)
}

// firstLine returns s up to its first newline.
func firstLine(s string) string {
	first, _, _ := strings.Cut(s, "\n")
	return first
}
