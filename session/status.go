package session

import (
	"time"

	dto "github.com/prometheus/client_model/go"
)

// This file is what the status page (web/status.go) reads besides
// Sessions, Calls and Stats. Safe for concurrent use.

// Started returns when the router was made, by its clock.
func (r *Router) Started() time.Time {
	return r.started // set once by New, never written again
}

// Resumes returns how many hellos have resumed a session of the same app,
// instance and boot since the router started: dccbridge_resumes_total.
func (r *Router) Resumes() uint64 {
	var m dto.Metric
	if err := r.metrics.resumes.Write(&m); err != nil {
		return 0
	}
	return uint64(m.GetCounter().GetValue())
}
