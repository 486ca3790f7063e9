package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/dccbridge/dccbridge/hostadapters"
	"github.com/dccbridge/dccbridge/session"
	"github.com/dccbridge/dccbridge/web"
)

// serveConfig is what `bridge serve` is configured with.
type serveConfig struct {
	common
	allowOrigins      string
	maxMessage        int64
	maxSessions       int
	maxQueue          int64
	maxUnhelloed      int
	maxReconnecting   int
	helloTimeout      time.Duration
	logLevel          string
	logFormat         string
	heartbeatInterval time.Duration
	heartbeatTimeout  time.Duration
	cpuProfile        string
	memProfile        string
	busyAfter         time.Duration
	resumeWait        time.Duration
	listen            []appListener
	catalogDir        string
	skyhook           []appListener // app=host:port of SkyHook servers to connect to
	unreal            []string      // host:port of Unreal Remote Control APIs
	configPath        string
}

// minRemoteToken is the shortest token a bridge reachable from other
// machines takes.
const minRemoteToken = 16

// appListener is one --listen app=host:port: a port whose connections are
// taken for app's (AYON's panels connect to a port per app).
type appListener struct{ app, addr string }

// parseListen parses app=host:port.
func parseListen(v string) (appListener, error) {
	app, addr, ok := strings.Cut(v, "=")
	if !ok || app == "" || addr == "" {
		return appListener{}, fmt.Errorf("--listen %q: want app=host:port, e.g. aftereffects=127.0.0.1:8097", v)
	}
	a, err := listenAddr(addr)
	if err != nil {
		return appListener{}, fmt.Errorf("--listen %q: %w", v, err)
	}
	return appListener{app: app, addr: a}, nil
}

const serveAbout = `Runs the bridge (the default command): websocket JSON-RPC on /ws, POST
/rpc, the status page on /, until Ctrl+C or SIGTERM (or bridge stop).

On loopback (the default, 127.0.0.1:8098) local clients need no token;
the default token file's token only admits file:// panels (CEP). Giving a
token (--token, BRIDGE_TOKEN, --token-file) puts it in force for every
client; a non-loopback address needs one of 16 characters or more.

Example:
  bridge serve
  bridge serve --listen aftereffects=127.0.0.1:8097 --skyhook maya
  bridge serve --addr 0.0.0.0:8098 --token "$(bridge token --new)"

Every flag's environment variable gives its default; a config file
(--config) adds host integrations. README.md, Configuration, has them all.`

func serve(args []string, stdout, stderr io.Writer) int {
	var cfg serveConfig
	sc := newSubcommand("serve", "[flags]", serveAbout, stdout, stderr)
	fs := sc.fs
	cfg.common.registerAddr(fs)
	fs.StringVar(&cfg.token, "token", os.Getenv("BRIDGE_TOKEN"), "the bridge's `token`, in force for every client (env BRIDGE_TOKEN)")
	fs.StringVar(&cfg.tokenFile, "token-file", os.Getenv("BRIDGE_TOKEN_FILE"), "a `file` holding the token, in force for every client (env BRIDGE_TOKEN_FILE)")
	fs.StringVar(&cfg.allowOrigins, "allow-origin", os.Getenv("BRIDGE_ALLOW_ORIGIN"), "comma-separated origin `patterns` to admit (host or scheme://host, path.Match syntax); \"null\" admits file:// panels without a token (env BRIDGE_ALLOW_ORIGIN)")
	fs.Int64Var(&cfg.maxMessage, "max-message", envInt("BRIDGE_MAX_MESSAGE", 16<<20), "largest message in `bytes`; larger closes the connection with 1009 (env BRIDGE_MAX_MESSAGE)")
	fs.Int64Var(&cfg.maxQueue, "max-queue", envInt("BRIDGE_MAX_QUEUE", 8<<20), "most `bytes` waiting to be written to one peer; a peer that lets more pile up is a slow reader, closed with 1008 (env BRIDGE_MAX_QUEUE)")
	fs.IntVar(&cfg.maxSessions, "max-sessions", int(envInt("BRIDGE_MAX_SESSIONS", 1024)), "most connected sessions that have said hello; a new instance's hello beyond it gets -32003 and close 1013 (env BRIDGE_MAX_SESSIONS)")
	fs.IntVar(&cfg.maxUnhelloed, "max-unhelloed", int(envInt("BRIDGE_MAX_UNHELLOED", 256)), "most connections that have not said hello yet; beyond it the oldest is closed with 1013 (env BRIDGE_MAX_UNHELLOED)")
	fs.IntVar(&cfg.maxReconnecting, "max-reconnecting", int(envInt("BRIDGE_MAX_RECONNECTING", 1024)), "most dropped sessions waiting to be resumed; beyond it the one that dropped first leaves for good (env BRIDGE_MAX_RECONNECTING)")
	fs.DurationVar(&cfg.helloTimeout, "hello-timeout", envDuration("BRIDGE_HELLO_TIMEOUT", 10*time.Second), "how long a new connection has to say bridge.hello; then it is closed with 1008 (env BRIDGE_HELLO_TIMEOUT)")
	fs.StringVar(&cfg.logLevel, "log-level", envOr("BRIDGE_LOG_LEVEL", "info"), "debug, info, warn or error (env BRIDGE_LOG_LEVEL)")
	fs.StringVar(&cfg.logFormat, "log-format", envOr("BRIDGE_LOG_FORMAT", "text"), "text or json (env BRIDGE_LOG_FORMAT)")
	fs.DurationVar(&cfg.heartbeatInterval, "heartbeat-interval", 5*time.Second, "time between websocket pings")
	fs.DurationVar(&cfg.heartbeatTimeout, "heartbeat-timeout", 15*time.Second, "a session whose pong has not come within this is gone")
	fs.DurationVar(&cfg.busyAfter, "busy-after", envDuration("BRIDGE_BUSY_AFTER", 5*time.Second), "a session with calls in flight that sends nothing for this long is busy: no new calls or events go to it (env BRIDGE_BUSY_AFTER)")
	fs.DurationVar(&cfg.resumeWait, "resume-wait", envDuration("BRIDGE_RESUME_WAIT", 30*time.Second), "how long a dropped session's calls stay parked waiting for its instance to come back (env BRIDGE_RESUME_WAIT)")
	for _, v := range splitList(os.Getenv("BRIDGE_LISTEN")) {
		l, err := parseListen(v)
		if err != nil {
			fmt.Fprintln(stderr, "bridge serve: BRIDGE_LISTEN:", err)
			return exitUsage
		}
		cfg.listen = append(cfg.listen, l)
	}
	fs.Func("listen", "also listen on `app=host:port` for app's panels: a connection there that says nothing is taken for app's wsrpc panel (AYON: aftereffects=127.0.0.1:8097, photoshop=127.0.0.1:8099); repeat for more (env BRIDGE_LISTEN, comma-separated)", func(v string) error {
		l, err := parseListen(v)
		cfg.listen = append(cfg.listen, l)
		return err
	})
	for _, v := range splitList(os.Getenv("BRIDGE_SKYHOOK")) {
		cfg.skyhook = append(cfg.skyhook, appListener{app: v})
	}
	cfg.unreal = splitList(os.Getenv("BRIDGE_UNREAL"))
	fs.Func("skyhook", "connect to the SkyHook server of `app[=host:port]` (maya, houdini, blender, substance_painter; the port defaults to the catalog's, e.g. 65501 for maya) and offer its functions as app.function; repeat for more (env BRIDGE_SKYHOOK, comma-separated)", func(v string) error {
		cfg.skyhook = append(cfg.skyhook, appListener{app: v})
		return nil
	})
	fs.Func("unreal", "connect to Unreal Editor's Remote Control API at `host:port` (its default: 127.0.0.1:30010) and offer unreal.call, unreal.property and unreal.info (env BRIDGE_UNREAL, comma-separated)", func(v string) error {
		cfg.unreal = append(cfg.unreal, v)
		return nil
	})
	fs.StringVar(&cfg.configPath, "config", os.Getenv("BRIDGE_CONFIG"), "a JSON `file` of host integrations (listen, skyhook, unreal, catalog), added to by flags and environment (env BRIDGE_CONFIG; default "+defaultConfigForHelp()+", when it exists)")
	fs.StringVar(&cfg.catalogDir, "catalog", os.Getenv("BRIDGE_CATALOG"), "a `dir` of app catalog files (*.json) added to the built-in catalog; `bridge catalog` prints the result (env BRIDGE_CATALOG)")
	fs.StringVar(&cfg.memProfile, "memprofile", os.Getenv("BRIDGE_MEMPROFILE"), "when SIGINT or SIGTERM comes, write a heap profile to `file` before shutting down, for `go tool pprof` (env BRIDGE_MEMPROFILE)")
	fs.StringVar(&cfg.cpuProfile, "cpuprofile", os.Getenv("BRIDGE_CPUPROFILE"), "write a CPU profile to `file` until the bridge stops, for `go tool pprof` (env BRIDGE_CPUPROFILE)")
	pos, code, ok := sc.parse(args)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		return sc.fail(usageError("unexpected argument %q", pos[0]))
	}
	path, explicit := cfg.configPath, cfg.configPath != ""
	if !explicit {
		path, _ = defaultConfigFile()
	}
	if path != "" {
		cf, err := loadConfigFile(path, explicit)
		if err == nil {
			err = cf.apply(&cfg)
		}
		if err != nil {
			fmt.Fprintln(stderr, "bridge serve:", err)
			return exitUsage
		}
	}
	log, err := newLogger(stderr, cfg.logLevel, cfg.logFormat)
	if err != nil {
		fmt.Fprintln(stderr, "bridge serve:", err)
		return exitUsage
	}
	if err := runServer(cfg, log); err != nil {
		log.Error("bridge stopped", "error", err)
		return exitRPCError
	}
	return exitOK
}

// runServer listens, serves until SIGINT/SIGTERM, then shuts down: sessions
// closed in parallel with 1001 (3 s budget), calls in flight answered
// -32006, all within 5 s.
func runServer(cfg serveConfig, log *slog.Logger) error {
	if cfg.cpuProfile != "" {
		stop, err := startCPUProfile(cfg.cpuProfile)
		if err != nil {
			return err
		}
		defer stop()
	}
	addr, err := listenAddr(cfg.addr)
	if err != nil {
		return err
	}
	host, _, _ := net.SplitHostPort(addr)
	token, err := cfg.explicitToken()
	if err != nil {
		return err
	}
	inForce := token != ""
	if !isLoopback(host) && !inForce {
		return fmt.Errorf("refusing to listen on %s without a token: a non-loopback address is reachable from other machines; give --token, BRIDGE_TOKEN or --token-file (`bridge token --new` makes one)", addr)
	}
	if !isLoopback(host) && len(token) < minRemoteToken {
		return fmt.Errorf("refusing to listen on %s with a token of %d characters: other machines can reach it, and a short token is guessed; use %d or more (`bridge token --new` makes one)", addr, len(token), minRemoteToken)
	}
	tokenHint := "the token this bridge was started with (its --token, BRIDGE_TOKEN or --token-file); `bridge token` prints it only when given the same"
	if token == "" {
		tokenHint = "`bridge token` prints it (the default token file)"
		path, err := defaultTokenFile()
		if err == nil {
			token, err = ensureTokenFile(path)
		}
		if err != nil {
			log.Warn("no default token: file:// and null-origin panels will be refused", "error", err)
		}
	}

	catalog, err := hostadapters.Load(cfg.catalogDir)
	if err != nil {
		return err
	}
	for _, l := range cfg.listen {
		if _, ok := catalog.App(l.app); !ok {
			return fmt.Errorf("--listen %s=%s: no app %q in the catalog (`bridge catalog` lists them; --catalog adds one)", l.app, l.addr, l.app)
		}
		if h, _, _ := net.SplitHostPort(l.addr); !isLoopback(h) && !inForce {
			return fmt.Errorf("refusing to listen on %s without a token: a non-loopback address is reachable from other machines; give --token, BRIDGE_TOKEN or --token-file", l.addr)
		}
	}

	connectors, err := newConnectors(cfg, catalog)
	if err != nil {
		return err
	}

	stopAsked := make(chan struct{}) // closed by POST /admin/shutdown
	var stopOnce sync.Once

	router := session.New(session.Options{
		Logger:            log,
		Version:           version,
		Catalog:           catalog,
		TokenHint:         tokenHint,
		Token:             token,
		HeartbeatInterval: cfg.heartbeatInterval,
		HeartbeatTimeout:  cfg.heartbeatTimeout,
		BusyAfter:         cfg.busyAfter,
		ResumeWait:        cfg.resumeWait,
		MaxSessions:       cfg.maxSessions,
		QueueBytes:        int(cfg.maxQueue),
		MaxUnhelloed:      cfg.maxUnhelloed,
		MaxReconnecting:   cfg.maxReconnecting,
		HelloTimeout:      cfg.helloTimeout,
	})
	handler := web.New(web.Options{
		Router:       router,
		Logger:       log,
		Addr:         addr,
		Token:        token,
		TokenInForce: inForce,
		AllowOrigins: splitList(cfg.allowOrigins),
		MaxMessage:   cfg.maxMessage,
		Version:      version,
		TokenHint:    tokenHint,
		Dialects:     hostadapters.NewWSRPC(hostadapters.WSRPCOptions{Catalog: catalog, Logger: log}),
		Shutdown:     func() { stopOnce.Do(func() { close(stopAsked) }) },
	})

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		if isAddrInUse(err) {
			return fmt.Errorf("%s is in use: is another bridge running? (`bridge health --addr %s` checks; --addr picks another port)", addr, addr)
		}
		return err
	}
	servers := []*http.Server{web.NewHTTPServer(handler, log)}
	listeners := []net.Listener{ln}
	for _, l := range cfg.listen {
		app, _ := catalog.App(l.app)
		aln, err := net.Listen("tcp", l.addr)
		if err != nil {
			for _, ln := range listeners {
				ln.Close()
			}
			if isAddrInUse(err) {
				return fmt.Errorf("--listen %s=%s: the port is in use: is AYON's own server for %s running? (quit it, or pick another port)", l.app, l.addr, app.Label)
			}
			return fmt.Errorf("--listen %s=%s: %w", l.app, l.addr, err)
		}
		listeners = append(listeners, aln)
		servers = append(servers, web.NewHTTPServer(handler.ForApp(app.Name), log))
		log.Info("listening for "+app.Label+" panels", "app", app.Name, "url", "ws://"+aln.Addr().String()+"/ws/")
	}
	errc := make(chan error, len(servers))
	for i, srv := range servers {
		go func() { errc <- srv.Serve(listeners[i]) }()
	}
	bound := ln.Addr().String()
	dial := bound
	if isWildcard(host) {
		_, boundPort, _ := net.SplitHostPort(bound)
		dial = net.JoinHostPort("127.0.0.1", boundPort)
		bound += " (every interface)"
	}
	log.Info("dccbridge listening", "on", bound, "url", "ws://"+dial+"/ws", "status", "http://"+dial+"/", "version", version, "token_in_force", inForce)

	connCtx, stopConnectors := context.WithCancel(context.Background())
	var connectorsDone sync.WaitGroup
	for _, spec := range connectors {
		c := spec.build(hostadapters.ConnectorOptions{Router: router, App: spec.app, Addr: spec.addr, Logger: log})
		log.Info("connecting to "+spec.app.Label+"'s command server", "app", spec.app.Name, "addr", spec.addr, "kind", spec.kind, "instance", c.Instance())
		connectorsDone.Go(func() { c.Run(connCtx) })
	}
	defer func() { stopConnectors(); connectorsDone.Wait() }()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	case <-stopAsked:
	}
	stop()
	if cfg.memProfile != "" {
		if err := writeHeapProfile(cfg.memProfile); err != nil {
			log.Error("heap profile not written", "error", err)
		} else {
			logMemStats(log, cfg.memProfile)
		}
	}
	log.Info("shutting down: closing sessions, failing calls in flight with -32006")
	sctx, cancel := context.WithTimeout(context.Background(), 4500*time.Millisecond)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = router.Shutdown(sctx) // first: calls running on a command server fail -32006, not -32004
		stopConnectors()
		handler.Close() // ends the status page's event streams, which Shutdown would wait for
		for _, srv := range servers {
			if err := srv.Shutdown(sctx); err != nil {
				_ = srv.Close()
			}
		}
	}()
	// The budget is a promise: a connection that will not let go (a close
	// handshake that blocks past it) does not keep the process alive.
	select {
	case <-done:
	case <-sctx.Done():
		for _, srv := range servers {
			_ = srv.Close()
		}
		log.Warn("shutdown budget spent: dropping the connections left")
	}
	log.Info("stopped")
	return nil
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("bad --log-level %q: use debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(newGuardedHandler(slog.NewTextHandler(w, opts))), nil
	case "json":
		return slog.New(newGuardedHandler(slog.NewJSONHandler(w, opts))), nil
	}
	return nil, fmt.Errorf("bad --log-format %q: use text or json", format)
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func envDuration(name string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(name)); err == nil {
		return d
	}
	return def
}

func envInt(name string, def int64) int64 {
	var v int64
	if _, err := fmt.Sscan(os.Getenv(name), &v); err == nil {
		return v
	}
	return def
}

// usageExit maps a flag parse error to an exit code (-h is not an error).
func usageExit(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	return exitUsage
}

// writeHeapProfile writes the live heap, after a collection, to path.
func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("--memprofile: %w", err)
	}
	runtime.GC()
	if err := pprof.WriteHeapProfile(f); err != nil {
		f.Close()
		return fmt.Errorf("--memprofile: %w", err)
	}
	return f.Close()
}

// logMemStats logs where the process's memory is, next to the heap profile
// written to path: the profile shows the live heap only, not goroutine
// stacks or memory the collector has not yet given back.
func logMemStats(log *slog.Logger, path string) {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	log.Info("heap profile written", "file", path,
		"goroutines", runtime.NumGoroutine(),
		"heap_live_kib", m.HeapAlloc>>10,
		"heap_in_use_kib", m.HeapInuse>>10,
		"heap_free_kept_kib", (m.HeapIdle-m.HeapReleased)>>10,
		"stacks_kib", m.StackInuse>>10,
		"runtime_other_kib", (m.Sys-m.HeapSys-m.StackSys)>>10)
}

// startCPUProfile profiles the process into path until the returned stop is
// called.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// connectorSpec is one DCC command server to keep connected.
type connectorSpec struct {
	app   *hostadapters.App
	addr  string
	kind  string
	build func(hostadapters.ConnectorOptions) *hostadapters.Connector
}

// newConnectors checks --skyhook and --unreal against the catalog: each
// names an app whose dialect fits, and an address (the catalog's port on
// 127.0.0.1 when none is given).
func newConnectors(cfg serveConfig, catalog *hostadapters.Catalog) ([]connectorSpec, error) {
	var specs []connectorSpec
	for _, sh := range cfg.skyhook {
		name, addr, _ := strings.Cut(sh.app, "=")
		app, ok := catalog.App(name)
		switch {
		case !ok:
			return nil, fmt.Errorf("--skyhook %s: no app %q in the catalog (`bridge catalog` lists them)", sh.app, name)
		case app.Dialect != hostadapters.DialectSkyHook:
			return nil, fmt.Errorf("--skyhook %s: %s does not run SkyHook (its dialect is %s); SkyHook apps: maya, houdini, blender, substance_painter", sh.app, app.Label, app.Dialect)
		}
		addr, err := connectorAddr(addr, app)
		if err != nil {
			return nil, fmt.Errorf("--skyhook %s: %w", sh.app, err)
		}
		specs = append(specs, connectorSpec{app: app, addr: addr, kind: "skyhook", build: hostadapters.NewSkyHookConnector})
	}
	for _, given := range cfg.unreal {
		app, _ := catalog.App("unreal")
		addr, err := connectorAddr(given, app)
		if err != nil {
			return nil, fmt.Errorf("--unreal %s: %w", given, err)
		}
		specs = append(specs, connectorSpec{app: app, addr: addr, kind: "unreal-remote", build: hostadapters.NewUnrealConnector})
	}
	// The same server given twice (config file and flag, say) is one
	// connector: two would replace each other's session forever.
	seen := map[string]bool{}
	unique := specs[:0]
	for _, sp := range specs {
		if key := sp.app.Name + "@" + sp.addr; !seen[key] {
			seen[key] = true
			unique = append(unique, sp)
		}
	}
	return unique, nil
}

// connectorAddr returns addr (an empty host is 127.0.0.1), or the app's
// catalog port on 127.0.0.1 when addr is empty.
func connectorAddr(addr string, app *hostadapters.App) (string, error) {
	if addr == "" {
		if app == nil || len(app.Ports) == 0 {
			return "", errors.New("no address given and the catalog has no port for it")
		}
		return "127.0.0.1:" + strconv.Itoa(app.Ports[0]), nil
	}
	return listenAddr(addr)
}

func defaultConfigForHelp() string {
	if p, err := defaultConfigFile(); err == nil {
		return p
	}
	return "dccbridge/config.json in the user config dir"
}
