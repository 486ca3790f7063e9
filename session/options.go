package session

import (
	"log/slog"
	"time"
)

// Options configure a Router. The zero value is usable: every zero field
// takes the default its comment gives.
type Options struct {
	// Logger receives one line per session start and end and per failed
	// call. Default: slog.Default().
	Logger *slog.Logger
	// Version is reported in hello results. Default: "dev".
	Version string
	// TokenHint says where the bridge's token is to be found, in the
	// errors of a hello without it. Default: "`bridge token` prints it".
	TokenHint string
	// Catalog tells what is known of apps' methods before any host of
	// theirs connects (package hostadapters has one). Default: none.
	Catalog Catalog
	// Token, when not empty, admits a session whose upgrade carried no
	// valid token once its bridge.hello carries this token. Default: none.
	Token string

	// HeartbeatInterval is the time between websocket pings. Default 5 s.
	HeartbeatInterval time.Duration
	// HeartbeatTimeout ends a session whose pong has not come within it.
	// Default 15 s.
	HeartbeatTimeout time.Duration
	// WriteTimeout bounds one websocket write. Default 10 s.
	WriteTimeout time.Duration
	// CloseBudget is how long Shutdown waits for sessions to finish the
	// close handshake before dropping them. Default 3 s.
	CloseBudget time.Duration

	// BusyAfter marks a session busy when it has calls in flight and has
	// sent nothing for this long (its JavaScript is blocked in a long host
	// operation); a busy session gets no new calls or events. Default 5 s.
	BusyAfter time.Duration
	// ResumeWait is how long the calls of a session whose connection is
	// gone stay parked, waiting for the same app and instance to say hello
	// again. Default 30 s.
	ResumeWait time.Duration

	// DefaultWait is how long a call waits for a healthy session that
	// offers its method when meta.wait_ms is absent. Default 10 s.
	DefaultWait time.Duration
	// DefaultTimeout is a call's timeout when meta.timeout_ms is absent.
	// Default 10 min.
	DefaultTimeout time.Duration
	// ContextTimeout bounds the set_context calls of bridge.context when
	// the caller gives no meta.timeout_ms. Default 10 s.
	ContextTimeout time.Duration

	// QueueBytes bounds one session's outbound queue, in bytes of frames
	// waiting to be written behind the one at its head (being written or
	// next): a reply, call or control frame pushed when that many wait
	// makes the session a slow reader, closed with 1008; an event pushed
	// when half that many wait is dropped for that session. Default 8 MiB.
	QueueBytes int
	// MaxInFlight is the most calls one caller may have in flight; more
	// are answered -32003. Default 1024.
	MaxInFlight int
	// MaxSessions is the most sessions that have said hello and are
	// connected at once (reconnecting ones do not count); a hello beyond it
	// from a new instance gets -32003 and the connection is closed with
	// 1013. Default 1024.
	MaxSessions int
	// MaxUnhelloed is the most connections that have not said hello yet;
	// more are closed with 1013 at once. They have their own cap so that
	// connections that never say hello cannot lock panels out.
	// Default 256.
	MaxUnhelloed int
	// MaxReconnecting is the most sessions waiting to be resumed; beyond
	// it the one that dropped first leaves for good (its parked calls fail
	// -32004). Default 1024.
	MaxReconnecting int
	// HelloTimeout is how long a new connection has to say bridge.hello;
	// then it is closed with 1008. Default 10 s.
	HelloTimeout time.Duration

	// ContextRetention is how long a context pushed with bridge.context
	// is kept once no session of its app (or instance) is connected.
	// Default 24 h.
	ContextRetention time.Duration
	// MaxContexts is the most stored contexts; beyond it, those of apps
	// and instances not connected go first, oldest push first.
	// Default 10000.
	MaxContexts int
	// MaxLabelValues is the most distinct values of the app label and of
	// the method label of the call metrics; later ones count as "other".
	// Default 1000.
	MaxLabelValues int

	// Metrics receives the Router's counters (calls, durations, resumes,
	// drops, bytes); register the Router, a prometheus.Collector, to expose
	// them with its gauges. Default: a new Metrics of the Router's own.
	Metrics *Metrics
}

func (o Options) withDefaults() Options {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.HeartbeatInterval, 5*time.Second)
	def(&o.HeartbeatTimeout, 15*time.Second)
	def(&o.WriteTimeout, 10*time.Second)
	def(&o.CloseBudget, 3*time.Second)
	def(&o.BusyAfter, 5*time.Second)
	def(&o.ResumeWait, 30*time.Second)
	def(&o.DefaultWait, 10*time.Second)
	def(&o.DefaultTimeout, 10*time.Minute)
	def(&o.ContextTimeout, 10*time.Second)
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Version == "" {
		o.Version = "dev"
	}
	if o.QueueBytes <= 0 {
		o.QueueBytes = 8 << 20
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = 1024
	}
	if o.MaxSessions <= 0 {
		o.MaxSessions = 1024
	}
	if o.MaxUnhelloed <= 0 {
		o.MaxUnhelloed = 256
	}
	def(&o.HelloTimeout, 10*time.Second)
	if o.MaxReconnecting <= 0 {
		o.MaxReconnecting = 1024
	}
	def(&o.ContextRetention, 24*time.Hour)
	if o.MaxContexts <= 0 {
		o.MaxContexts = 10000
	}
	if o.MaxLabelValues <= 0 {
		o.MaxLabelValues = 1000
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics()
	}
	return o
}

// Catalog is what a Router knows of apps' methods beforehand. A call to a
// method the catalog lists waits for a host of its app like any call, even
// while other sessions of the app are connected and none offers it (they
// would otherwise make the method not found at once); it is re-sent after
// a drop when the catalog says it is idempotent, and times out after the
// catalog's timeout, unless its meta says otherwise. Safe for concurrent
// use.
type Catalog interface {
	// Method returns what is known of method name of app (app lower-case,
	// name as called, without the app).
	Method(app, name string) (MethodInfo, bool)
	// AppLabel returns the app's name for people ("After Effects"), or "".
	AppLabel(app string) string
}

// MethodInfo is what a Catalog knows of one method.
type MethodInfo struct {
	// Idempotent: running it twice does no harm (a read), so a call to it
	// is re-sent after its host drops and comes back.
	Idempotent bool
	// Timeout is a call's default timeout; 0 leaves Options.DefaultTimeout.
	Timeout time.Duration
}
