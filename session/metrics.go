package session

import (
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dccbridge/dccbridge/rpc"
)

// This file is the bridge's Prometheus metrics: the counters a
// Router keeps as it works (Metrics), and the gauges it reads from its
// registry at scrape time (Router as a prometheus.Collector).
//
// Label values are bounded: app is the namespace of a call only when some
// session has that app or offers a method in it, method is the full name
// only when some session offered it when the call was made, else "other";
// and each takes at most Options.MaxLabelValues distinct values, the rest
// "other", so no peer can grow the series without bound. outcome is one of
// a fixed set (see outcomeOf).

// otherLabel is the app or method label of a call to an app or method that
// nothing offered: what peers may call is unbounded, what they offer is not.
const otherLabel = "other"

// Metrics are the counters a Router keeps: calls by outcome and their
// durations, resumes and re-sends, dropped events and frames, websocket
// bytes. They are collected through the Router that uses them (register the
// Router, which is a prometheus.Collector, not the Metrics), so one Metrics
// serves one Router at a time. Safe for concurrent use.
type Metrics struct {
	calls         *prometheus.CounterVec   // app, method, outcome
	duration      *prometheus.HistogramVec // app, outcome
	resumes       prometheus.Counter
	resends       prometheus.Counter
	droppedEvents prometheus.Counter
	slowReaders   prometheus.Counter
	queueDrops    prometheus.Counter
	received      prometheus.Counter
	sent          prometheus.Counter
}

// durationBuckets are the upper bounds of dccbridge_call_duration_seconds:
// from a millisecond (a call answered at once) to the default call timeout
// of 10 minutes (a long render or save).
var durationBuckets = []float64{
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
	1, 2.5, 5, 10, 30, 60, 120, 300, 600,
}

// NewMetrics returns a Metrics with every counter at zero.
func NewMetrics() *Metrics {
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	}
	return &Metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dccbridge_calls_total",
			Help: "Routed calls that ended, by app (namespace), method (full name, or \"other\" when no session offered it) and outcome: ok, error (the callee answered an error), not_found, no_session, timeout, overloaded, callee_gone, unauthorized, shutting_down, cancelled, invalid.",
		}, []string{"app", "method", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "dccbridge_call_duration_seconds",
			Help:    "Time from a routed call's arrival to its end (reply, error or cancel), by app and outcome.",
			Buckets: durationBuckets,
		}, []string{"app", "outcome"}),
		resumes:       counter("dccbridge_resumes_total", "Hellos that resumed a session of the same app, instance and boot (hello result resumed: true)."),
		resends:       counter("dccbridge_resends_total", "Calls re-sent after their callee's instance came back (same boot, or idempotent calls)."),
		droppedEvents: counter("dccbridge_dropped_events_total", "bridge.event notifications dropped for a subscriber that was busy or whose queue was half full."),
		slowReaders:   counter("dccbridge_slow_reader_closures_total", "Sessions closed with 1008 because their outbound queue was full."),
		queueDrops:    counter("dccbridge_queue_drops_total", "Frames discarded unwritten when a slow reader was closed: those in its queue and the one that did not fit."),
		received:      counter("dccbridge_received_bytes_total", "Websocket message payload bytes read from peers."),
		sent:          counter("dccbridge_sent_bytes_total", "Websocket message payload bytes written to peers."),
	}
}

func (m *Metrics) describe(ch chan<- *prometheus.Desc) {
	m.calls.Describe(ch)
	m.duration.Describe(ch)
	for _, c := range m.counters() {
		ch <- c.Desc()
	}
}

func (m *Metrics) collect(ch chan<- prometheus.Metric) {
	m.calls.Collect(ch)
	m.duration.Collect(ch)
	for _, c := range m.counters() {
		ch <- c
	}
}

func (m *Metrics) counters() []prometheus.Counter {
	return []prometheus.Counter{m.resumes, m.resends, m.droppedEvents, m.slowReaders, m.queueDrops, m.received, m.sent}
}

// Descriptions of the gauges a Router reads at scrape time. Immutable.
var (
	sessionsDesc = prometheus.NewDesc("dccbridge_sessions",
		"Sessions by app (empty before bridge.hello) and state: connected, busy, reconnecting.",
		[]string{"app", "state"}, nil)
	callsInFlightDesc = prometheus.NewDesc("dccbridge_calls_in_flight",
		"Routed calls not yet ended: waiting, queued, written or parked.", nil, nil)
	startTimeDesc = prometheus.NewDesc("dccbridge_start_time_seconds",
		"When the router started, in seconds since the Unix epoch (uptime: time() - this).", nil, nil)
	buildInfoDesc = prometheus.NewDesc("dccbridge_build_info",
		"Always 1; the version label is the bridge's version.", []string{"version"}, nil)
)

// sessionStates are the states dccbridge_sessions reports for every app
// present, zero included, so a dashboard's series do not come and go.
var sessionStates = [...]State{StateConnected, StateBusy, StateReconnecting}

// Describe implements prometheus.Collector: the Router's metrics are its
// Metrics' counters and the gauges read from its registry at scrape time.
func (r *Router) Describe(ch chan<- *prometheus.Desc) {
	r.metrics.describe(ch)
	ch <- sessionsDesc
	ch <- callsInFlightDesc
	ch <- startTimeDesc
	ch <- buildInfoDesc
}

// Collect implements prometheus.Collector. The gauges are read under the
// Router's lock and sent after it is released. Safe for concurrent use.
func (r *Router) Collect(ch chan<- prometheus.Metric) {
	r.metrics.collect(ch)

	type key struct {
		app   string
		state State
	}
	counts := map[key]int{}
	r.mu.Lock()
	for _, s := range r.registry.sessions {
		app := r.labels.apps.value(s.app)
		for _, st := range sessionStates {
			counts[key{app, st}] += 0 // every state of a present app
		}
		counts[key{app, s.state()}]++
	}
	inFlight := len(r.calls.byFID)
	r.unlock()

	for k, n := range counts {
		// App names come from JSON strings, valid UTF-8; should one not
		// be a valid label value, its series is left out, not the scrape.
		if m, err := prometheus.NewConstMetric(sessionsDesc, prometheus.GaugeValue, float64(n), k.app, string(k.state)); err == nil {
			ch <- m
		}
	}
	ch <- prometheus.MustNewConstMetric(callsInFlightDesc, prometheus.GaugeValue, float64(inFlight))
	ch <- prometheus.MustNewConstMetric(startTimeDesc, prometheus.GaugeValue, float64(r.started.UnixNano())/1e9)
	ch <- prometheus.MustNewConstMetric(buildInfoDesc, prometheus.GaugeValue, 1, r.opts.Version)
}

var _ prometheus.Collector = (*Router)(nil)

// callLabels are the app and method labels of one call, fixed when it
// starts: whether a method was offered is a fact of that moment.
type callLabels struct{ app, method string }

// labelSet bounds the values of the app and method labels. Guarded by
// Router.mu.
type labelSet struct{ apps, methods boundedLabel }

func newLabelSet(max int) labelSet {
	return labelSet{apps: boundedLabel{max: max}, methods: boundedLabel{max: max}}
}

// boundedLabel is one label's values: the first max distinct ones, after
// which any new one is "other".
type boundedLabel struct {
	seen map[string]struct{}
	max  int
}

func (b *boundedLabel) value(v string) string {
	if _, ok := b.seen[v]; ok {
		return v
	}
	if len(b.seen) >= b.max {
		return otherLabel
	}
	if b.seen == nil {
		b.seen = map[string]struct{}{}
	}
	b.seen[v] = struct{}{}
	return v
}

// labelsFor returns the labels of a call to full (namespace ns) made now;
// r.mu is held. Only what sessions announced becomes a label value.
func (r *Router) labelsFor(ns, full string) callLabels {
	switch {
	case ns == "":
		return callLabels{otherLabel, otherLabel}
	case len(r.registry.offers[full]) > 0:
		return callLabels{r.labels.apps.value(ns), r.labels.methods.value(full)}
	case r.registry.present(ns, ""):
		return callLabels{r.labels.apps.value(ns), otherLabel}
	}
	for offered := range r.registry.offers {
		if n, _, _ := splitMethod(offered); n == ns {
			return callLabels{r.labels.apps.value(ns), otherLabel}
		}
	}
	return callLabels{otherLabel, otherLabel}
}

// outcomeOf names the outcome of a call the bridge ended with an error of
// code.
func outcomeOf(code int64) string {
	switch code {
	case rpc.CodeMethodNotFound:
		return "not_found"
	case rpc.CodeNoSession:
		return "no_session"
	case rpc.CodeTimeout:
		return "timeout"
	case rpc.CodeOverloaded:
		return "overloaded"
	case rpc.CodeCalleeGone:
		return "callee_gone"
	case rpc.CodeUnauthorized:
		return "unauthorized"
	case rpc.CodeShuttingDown:
		return "shutting_down"
	case rpc.CodeCancelled:
		return "cancelled"
	case rpc.CodeInvalidRequest, rpc.CodeInvalidParams:
		return "invalid"
	}
	return "error"
}

// callEnded counts cl, which has just ended with outcome; r.mu is held.
func (r *Router) callEnded(cl *call, outcome string) {
	r.metrics.calls.WithLabelValues(cl.labels.app, cl.labels.method, outcome).Inc()
	r.metrics.duration.WithLabelValues(cl.labels.app, outcome).Observe(time.Since(cl.started).Seconds())
}

// callAnswered counts cl, which its callee has just answered; r.mu is held.
func (r *Router) callAnswered(cl *call, ok bool) {
	if ok {
		r.callEnded(cl, "ok")
	} else {
		r.callEnded(cl, "error")
	}
}

// callRejected counts the routed call m, answered at once with an error of
// code before it became a call in flight (a notification, a built-in or a
// $/ message is not a routed call); r.mu is held.
func (r *Router) callRejected(m *rpc.Message, code int64) {
	if m.IsNotification() || strings.HasPrefix(m.Method, "bridge.") || strings.HasPrefix(m.Method, "$/") {
		return
	}
	ns, full, _ := splitMethod(m.Method)
	l := r.labelsFor(ns, full)
	outcome := outcomeOf(code)
	r.metrics.calls.WithLabelValues(l.app, l.method, outcome).Inc()
	r.metrics.duration.WithLabelValues(l.app, outcome).Observe(0)
}

// tookOver counts a hello that took over from an earlier connection of its
// instance: a resume when it had the same boot, and the calls re-sent.
func (r *Router) tookOver(sameBoot bool, resent int) {
	if sameBoot {
		r.stats.Resumes++
		r.metrics.resumes.Inc()
	}
	r.metrics.resends.Add(float64(resent))
}

// slowReaderClosed counts a slow reader's closure and the frames it lost:
// those discarded from its queue and the one that did not fit.
func (r *Router) slowReaderClosed(discarded int) {
	r.metrics.slowReaders.Inc()
	r.metrics.queueDrops.Add(float64(discarded + 1))
}
