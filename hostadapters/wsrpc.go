package hostadapters

import (
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/dccbridge/dccbridge/session"
)

// Hint is what is known of a connection before it sends anything: the app
// its listener serves (--listen aftereffects=…) or its URL names (?app=),
// and the host it comes from.
type Hint struct {
	App        string
	RemoteHost string
}

// WSRPCOptions configure the wsrpc dialect. The zero value is usable.
type WSRPCOptions struct {
	// Catalog knows the apps whose panels speak wsrpc. Required.
	Catalog *Catalog
	// Logger receives a line per connection identified. Default:
	// slog.Default().
	Logger *slog.Logger
	// Silence is how long a connection whose app is known may stay silent
	// before it is taken for that app's panel (a wsrpc panel says nothing
	// after a reconnect; a JSON-RPC 2.0 client says bridge.hello at once).
	// Default 500 ms.
	Silence time.Duration
}

// WSRPC decides the dialect of each websocket connection and makes the
// wsrpc ones look like JSON-RPC 2.0 sessions to the session core. It also
// names the panels: a wsrpc panel has no instance id of its own, so a
// panel of app A from host H is instance "A@H" (then "A@H#2", … while
// that one is connected), and the panel that reconnects after a drop gets
// its predecessor's name back and resumes its session. Safe for
// concurrent use.
type WSRPC struct {
	opts WSRPCOptions
	log  *slog.Logger

	mu    sync.Mutex
	names map[string]bool // instance names of connected wsrpc panels
}

// NewWSRPC returns the dialect adapter for opts.
func NewWSRPC(opts WSRPCOptions) *WSRPC {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Silence <= 0 {
		opts.Silence = 500 * time.Millisecond
	}
	return &WSRPC{opts: opts, log: opts.Logger, names: map[string]bool{}}
}

// Wrap returns conn as the session core should see it: as it is for a
// JSON-RPC 2.0 client, translated for a wsrpc one. Which it is, is decided
// by its first message (a wsrpc message has no "jsonrpc" member), or by
// its silence when hint names a wsrpc app, or by probing a silent
// connection with each wsrpc app's probe route. The adapter writes to conn
// from the reading goroutine too (probes, the answer to a panel's start
// call), so conn's Write must be safe for concurrent use, as the
// websocket one is.
func (w *WSRPC) Wrap(conn session.Conn, hint Hint) session.Conn {
	c := &wsrpcConn{inner: conn, hub: w, host: hint.RemoteHost, nextID: 2}
	if a, ok := w.opts.Catalog.App(hint.App); ok && a.WSRPC != nil {
		c.hint = a
	}
	return c
}

// claimName returns a free instance name for a panel of app from host.
func (w *WSRPC) claimName(app, host string) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	base := app + "@" + host
	name := base
	for n := 2; w.names[name]; n++ {
		name = base + "#" + strconv.Itoa(n)
	}
	w.names[name] = true
	return name
}

// releaseName frees a name claimed by claimName.
func (w *WSRPC) releaseName(name string) {
	w.mu.Lock()
	delete(w.names, name)
	w.mu.Unlock()
}

// wsrpcApps returns the catalog's apps whose panels speak wsrpc.
func (w *WSRPC) wsrpcApps() []*App {
	var apps []*App
	for _, a := range w.opts.Catalog.Apps() {
		if a.WSRPC != nil && a.WSRPC.Probe != "" {
			apps = append(apps, a)
		}
	}
	return apps
}
