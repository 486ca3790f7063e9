package main

import (
	"math"
	"slices"
	"time"
)

// result is one scenario measured against one target. The tools process
// fills the measurement fields and prints the result as JSON; the parent
// adds Scenario and Target, or Failure when the run did not complete.
type result struct {
	Scenario string `json:"scenario"`
	Target   string `json:"target"`
	Callers  int    `json:"callers"`

	Calls      int     `json:"calls"`      // replies received in the measured phase
	Errors     int     `json:"errors"`     // replies carrying an "error" member
	Mismatches int     `json:"mismatches"` // replies whose id was not the request's
	ElapsedSec float64 `json:"elapsed_s"`
	CallsPerS  float64 `json:"calls_per_s"`
	P50us      float64 `json:"p50_us"`
	P90us      float64 `json:"p90_us"`
	P99us      float64 `json:"p99_us"`
	MaxUs      float64 `json:"max_us"`
	// ServerCPUus is the server process's CPU time (user + system, from
	// /proc) over the measured phase, per call; 0 where it is unknown.
	ServerCPUus float64 `json:"server_cpu_us_per_call,omitempty"`

	Failure string `json:"failure,omitempty"`
}

// ok reports whether r is a complete, error-free measurement.
func (r result) ok() bool {
	return r.Failure == "" && r.Errors == 0 && r.Mismatches == 0 && r.Calls > 0
}

// summarize fills the measurement fields of r from the per-call latencies
// and the wall time of the measured phase. It sorts lat in place.
func summarize(r *result, lat []time.Duration, elapsed time.Duration) {
	slices.Sort(lat)
	r.Calls = len(lat)
	r.ElapsedSec = elapsed.Seconds()
	if elapsed > 0 {
		r.CallsPerS = float64(len(lat)) / elapsed.Seconds()
	}
	r.P50us = micros(percentile(lat, 50))
	r.P90us = micros(percentile(lat, 90))
	r.P99us = micros(percentile(lat, 99))
	r.MaxUs = micros(percentile(lat, 100))
}

// resumeResult is the resume scenario measured against the bridge (see
// resume.go). The resume process fills the measurement fields and prints
// the result as JSON; the parent adds Failure when the run did not
// complete, and the target.
type resumeResult struct {
	Target          string `json:"target"`
	Cycles          int    `json:"cycles"`           // completed drop/resume cycles, one latency each
	CyclesRequested int    `json:"cycles_requested"` // -resume-cycles; fewer ran if -max-duration passed first
	Lost            int    `json:"lost"`             // calls whose result the tool did not get
	Duplicated      int    `json:"duplicated"`       // calls the host got again after answering them, or replies the tool got twice

	ElapsedSec float64 `json:"elapsed_s"`
	P50us      float64 `json:"p50_us"`
	P99us      float64 `json:"p99_us"`
	MinUs      float64 `json:"min_us"`
	MaxUs      float64 `json:"max_us"`
	// ServerCPUus is the server process's CPU time (user + system, from
	// /proc) over the measured phase, per call; 0 where it is unknown.
	ServerCPUus float64 `json:"server_cpu_us_per_call,omitempty"`

	P50TargetUs  float64 `json:"p50_target_max_us"`
	P50TargetMet bool    `json:"p50_target_met"`

	Failure string `json:"failure,omitempty"`
}

// ok reports whether r is a complete measurement with nothing lost or
// duplicated.
func (r resumeResult) ok() bool {
	return r.Failure == "" && r.Lost == 0 && r.Duplicated == 0 && r.Cycles > 0
}

// summarizeResume fills the latency fields of r from the per-cycle resume
// latencies and the wall time of the cycles. It sorts lat in place.
func summarizeResume(r *resumeResult, lat []time.Duration, elapsed time.Duration) {
	slices.Sort(lat)
	r.Cycles = len(lat)
	r.ElapsedSec = elapsed.Seconds()
	r.P50us = micros(percentile(lat, 50))
	r.P99us = micros(percentile(lat, 99))
	r.MinUs = micros(percentile(lat, 0))
	r.MaxUs = micros(percentile(lat, 100))
}

// percentile returns the p-th percentile (0 ≤ p ≤ 100) of sorted by the
// nearest-rank method: the smallest value such that at least p% of the
// values are ≤ it. It returns 0 for an empty slice; sorted must be in
// ascending order.
func percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(n)))
	rank = max(1, min(rank, n))
	return sorted[rank-1]
}

// micros converts d to microseconds with sub-microsecond precision.
func micros(d time.Duration) float64 {
	return float64(d) / float64(time.Microsecond)
}
