package web

import (
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/dccbridge/dccbridge/session"
)

// metricsHandler returns the handler of GET /metrics: the Prometheus text
// exposition of a registry of the Server's own, made here, that holds the
// Router (its dccbridge_* counters and the gauges it reads at scrape time),
// the Go runtime collector and the process collector. Each Server has its
// own registry: nothing is registered in prometheus.DefaultRegisterer, so
// two bridges in one process (tests) never collide, and a Router is
// registered once per Server that serves it.
func metricsHandler(rt *session.Router, log *slog.Logger) http.HandlerFunc {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		rt,
	)
	h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:            slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ErrorHandling:       promhttp.ContinueOnError, // a failing collector does not hide the others
		MaxRequestsInFlight: 4,
	})
	return h.ServeHTTP
}
