package js_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dccbridge/dccbridge/internal/bridgetest"
	"github.com/dccbridge/dccbridge/internal/browsertest"
	"github.com/dccbridge/dccbridge/session"
	"github.com/dccbridge/dccbridge/web"
)

// The browser tests drive Debian's chromium through chromedp: file:// pages
// (Origin null, so they need the bridge's default token) load the SDK from
// the bridge's /sdk/ and connect to it. Each flow runs with the ES module
// and with the classic-script build.

const pageToken = "browser-test-token"

// builds are the two forms of the SDK a page can load.
var builds = []string{"module", "classic"}

// page is one tab of the browser, with the helpers of these tests.
type page struct{ *browsertest.Page }

// open opens url in a new tab of br, closed when t ends.
func open(t *testing.T, br *browsertest.Browser, url string) *page {
	t.Helper()
	return &page{br.Open(t, url)}
}

// eval evaluates expr in the page and decodes its value into T (awaiting
// a promise), failing the test after timeout.
func eval[T any](p *page, timeout time.Duration, expr string) T {
	p.T.Helper()
	return browsertest.Eval[T](p.Page, timeout, expr)
}

// waitJS polls the boolean expr until it is true, failing after timeout.
func (p *page) waitJS(timeout time.Duration, expr string) {
	p.T.Helper()
	ok, last := p.Poll(timeout, expr)
	if ok {
		return
	}
	state, _ := browsertest.TryEval[string](p.Page, 5*time.Second, "JSON.stringify({state: T.bridge && T.bridge.state, states: T.states, runs: T.runs})")
	p.T.Fatalf("waited %v for %s (last error: %v; page: %s)", timeout, expr, last, state)
}

// harness is the page's test code, shared by both builds: setup connects
// with the given connectBridge and offers the handlers the tests call.
const harness = `
window.T = {runs: {}, events: [], states: [], progress: [], ctx: null, aborted: false, abortCode: null};
function setup(connectBridge, cfg) {
  var T = window.T;
  var count = function (name) { T.runs[name] = (T.runs[name] || 0) + 1; return T.runs[name]; };
  var opts = {url: cfg.url, app: cfg.app, token: cfg.token, label: 'browser test', version: '1.0',
    onState: function (s, d) { T.states.push(s + (d && d.code ? ':' + d.code : '')); }};
  if (cfg.instance) opts.instance = cfg.instance;
  var b = connectBridge(opts);
  T.bridge = b;
  b.handle('echo', function (params, ctx) {
    count('echo');
    return {params: params, caller: ctx.caller, attempt: ctx.attempt, id: ctx.id};
  });
  // block holds the JavaScript thread, as a long ExtendScript call does.
  b.handle('block', function (params, ctx) {
    var n = count('block');
    var end = Date.now() + params.ms;
    while (Date.now() < end) {}
    return {runs: n, attempt: ctx.attempt};
  });
  // wait answers after params.ms without blocking.
  b.handle('wait', function (params, ctx) {
    var n = count('wait');
    return new Promise(function (resolve) { setTimeout(function () { resolve({runs: n, attempt: ctx.attempt}); }, params.ms); });
  });
  // long reports progress, then waits to be cancelled.
  b.handle('long', function (params, ctx) {
    count('long');
    ctx.progress({pct: 50});
    return new Promise(function (resolve, reject) {
      ctx.signal.addEventListener('abort', function () {
        T.aborted = ctx.signal.aborted;
        T.abortCode = ctx.signal.reason && ctx.signal.reason.code;
        reject(ctx.signal.reason);
      });
    });
  });
  b.handle('fail', async function () {
    var e = new Error('it failed');
    e.code = 4242;
    e.data = {why: 'test'};
    throw e;
  });
  b.handle('set_context', function (params) { T.ctx = params; return true; });
  b.on('test.*', function (data, ev) { T.events.push({topic: ev.topic, data: data}); });
}
// start calls method and keeps the outcome in T.results[key].
T.results = {};
function start(key, method, params, options) {
  T.results[key] = null;
  options = options || {};
  options.onProgress = function (v) { T.progress.push({key: key, value: v}); };
  T.bridge.call(method, params, options).then(
    function (r) { T.results[key] = {result: r}; },
    function (e) { T.results[key] = {error: {code: e.code, message: e.message, data: e.data}}; });
  return true;
}
`

// pageConfig is what a test page connects with.
type pageConfig struct {
	URL      string `json:"url"`
	App      string `json:"app"`
	Token    string `json:"token"`
	Instance string `json:"instance,omitempty"`
}

// writePage writes a file:// page that loads the SDK (build "module" or
// "classic") from sdkBase (the bridge's http://host:port) and connects with
// cfg; it returns the page's URL.
func writePage(t *testing.T, build, sdkBase string, cfg pageConfig) string {
	t.Helper()
	c, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var load string
	switch build {
	case "module":
		load = `<script type="module">
import {connectBridge} from '` + sdkBase + `/sdk/bridge.js';
setup(connectBridge, ` + string(c) + `);
</script>`
	case "classic":
		load = `<script src="` + sdkBase + `/sdk/bridge.classic.js"></script>
<script>setup(DccBridge.connectBridge, ` + string(c) + `);</script>`
	default:
		t.Fatalf("unknown build %q", build)
	}
	html := "<!doctype html>\n<meta charset=\"utf-8\">\n<title>dccbridge " + build + "</title>\n<script>" + harness + "</script>\n" + load + "\n"
	path := filepath.Join(t.TempDir(), build+".html")
	if err := os.WriteFile(path, []byte(html), 0o644); err != nil {
		t.Fatal(err)
	}
	return "file://" + path
}

// waitReady waits until the page's bridge says it is ready.
func (p *page) waitReady() {
	p.T.Helper()
	p.waitJS(30*time.Second, "window.T && T.bridge && T.bridge.state === 'ready'")
}

// result waits for T.results[key] and returns it.
func (p *page) result(key string, timeout time.Duration) map[string]any {
	p.T.Helper()
	p.waitJS(timeout, "T.results["+jsString(key)+"]")
	return eval[map[string]any](p, 10*time.Second, "T.results["+jsString(key)+"]")
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// tool connects a pipeline tool (a local process: no Origin, no token)
// offering methods as app "pipeline".
func tool(t *testing.T, wsURL, instance string, methods ...string) *bridgetest.Peer {
	t.Helper()
	p := bridgetest.Dial(t, wsURL, nil)
	if methods == nil {
		methods = []string{}
	}
	p.Hello(map[string]any{"app": "pipeline", "kind": "tool", "instance": instance, "methods": methods})
	return p
}

// reply waits up to timeout for the reply to id (skipping other messages).
func reply(t *testing.T, p *bridgetest.Peer, id string, timeout time.Duration) map[string]any {
	t.Helper()
	return p.Expect(timeout, func(m map[string]any) bool {
		_, isReq := m["method"]
		return !isReq && m["id"] == id
	})
}

// request waits up to timeout for a request of method.
func request(t *testing.T, p *bridgetest.Peer, method string, timeout time.Duration) map[string]any {
	t.Helper()
	return p.Expect(timeout, func(m map[string]any) bool { return m["method"] == method })
}

// call sends a request without waiting for its reply.
func call(p *bridgetest.Peer, id, method string, params any) {
	msg := map[string]any{"jsonrpc": "2.0", "id": id, "method": method}
	if params != nil {
		msg["params"] = params
	}
	p.Send(msg)
}

func resultOf(t *testing.T, m map[string]any) map[string]any {
	t.Helper()
	r, ok := m["result"].(map[string]any)
	if !ok {
		t.Fatalf("want a result object, got %v", m)
	}
	return r
}

func errorOf(t *testing.T, m map[string]any) map[string]any {
	t.Helper()
	e, ok := m["error"].(map[string]any)
	if !ok {
		t.Fatalf("want an error, got %v", m)
	}
	return e
}

// TestBrowserBasic: a page's handler answers a Go tool, the page calls the
// tool, events reach the page, progress reaches the caller, a cancel aborts
// the handler's signal, errors carry code and data, context reaches the page.
func TestBrowserBasic(t *testing.T) {
	br := browsertest.Start(t)
	for _, build := range builds {
		t.Run(build, func(t *testing.T) {
			b := bridgetest.Start(t, &session.Options{}, &web.Options{Token: pageToken})
			app := "basic" + build
			p := open(t, br, writePage(t, build, b.URL, pageConfig{URL: b.WSURL, App: app, Token: pageToken}))
			tl := tool(t, b.WSURL, "tool-1", "publish")
			p.waitReady()

			// The instance is kept in localStorage; the boot is new per load.
			inst := eval[string](p, 10*time.Second, "T.bridge.instance")
			kept := eval[string](p, 10*time.Second, "localStorage.getItem('dccbridge.instance."+app+"') || ''")
			if inst == "" || inst != kept {
				t.Errorf("instance %q, localStorage has %q", inst, kept)
			}
			if boot := eval[string](p, 10*time.Second, "T.bridge.boot"); boot == "" {
				t.Error("no boot id")
			}

			// The page offers its handlers, with label and version.
			sessions := tl.Call("s", "bridge.sessions", map[string]any{"app": app})
			list, _ := sessions["result"].([]any)
			if len(list) != 1 {
				t.Fatalf("bridge.sessions: %v", sessions)
			}
			info := list[0].(map[string]any)
			if info["instance"] != inst || info["label"] != "browser test" || info["version"] != "1.0" || info["boot"] == "" {
				t.Errorf("session info: %v", info)
			}
			methods := fmt.Sprint(info["methods"])
			for _, m := range []string{"echo", "block", "wait", "long", "fail", "set_context"} {
				if !strings.Contains(methods, app+"."+m) {
					t.Errorf("methods %s lack %s", methods, m)
				}
			}

			// Go tool → page handler.
			r := resultOf(t, tl.Call("c1", app+".echo", map[string]any{"x": 1}))
			if fmt.Sprint(r["params"]) != "map[x:1]" || fmt.Sprint(r["caller"]) != "map[app:pipeline instance:tool-1]" || r["attempt"] != 1.0 || r["id"] == "" {
				t.Errorf("echo result: %v", r)
			}

			// Page → Go tool, and the reply back.
			eval[bool](p, 10*time.Second, `start("pub", "pipeline.publish", {path: "/a"}, {timeoutMs: 20000})`)
			req := request(t, tl, "publish", 10*time.Second)
			if fmt.Sprint(req["params"]) != "map[path:/a]" {
				t.Errorf("publish params: %v", req["params"])
			}
			// The callee's progress reaches the page's onProgress.
			tl.Send(map[string]any{"jsonrpc": "2.0", "method": "$/progress", "params": map[string]any{"id": req["id"], "value": 0.5}})
			p.waitJS(10*time.Second, "T.progress.length === 1 && T.progress[0].key === 'pub' && T.progress[0].value === 0.5")
			tl.Send(map[string]any{"jsonrpc": "2.0", "id": req["id"], "result": map[string]any{"published": true}})
			if got := p.result("pub", 10*time.Second); fmt.Sprint(got) != "map[result:map[published:true]]" {
				t.Errorf("page's call: %v", got)
			}

			// An error reply reaches the page's promise with code and data.
			eval[bool](p, 10*time.Second, `start("err", "pipeline.publish", {}, {})`)
			req = request(t, tl, "publish", 10*time.Second)
			tl.Send(map[string]any{"jsonrpc": "2.0", "id": req["id"], "error": map[string]any{"code": 1234, "message": "no", "data": map[string]any{"k": "v"}}})
			if got := p.result("err", 10*time.Second); fmt.Sprint(got) != "map[error:map[code:1234 data:map[k:v] message:no]]" {
				t.Errorf("page's failed call: %v", got)
			}

			// A page handler's error reaches the tool with code and data.
			e := errorOf(t, tl.Call("c2", app+".fail", nil))
			if e["code"] != 4242.0 || e["message"] != "it failed" || fmt.Sprint(e["data"]) != "map[why:test]" {
				t.Errorf("fail error: %v", e)
			}

			// Events reach the page through on().
			if n := resultOf(t, tl.Call("c3", "bridge.publish", map[string]any{"topic": "test.hello", "data": map[string]any{"n": 1}})); fmt.Sprint(n) == "" {
				t.Error("no publish result")
			}
			p.waitJS(10*time.Second, "T.events.length === 1")
			if ev := eval[[]any](p, 10*time.Second, "T.events"); fmt.Sprint(ev) != "[map[data:map[n:1] topic:test.hello]]" {
				t.Errorf("events: %v", ev)
			}

			// Progress reaches the caller; the caller's cancel aborts the signal.
			call(tl, "c4", app+".long", nil)
			prog := request(t, tl, "$/progress", 10*time.Second)
			if fmt.Sprint(prog["params"]) != "map[id:c4 value:map[pct:50]]" {
				t.Errorf("progress: %v", prog)
			}
			tl.Send(map[string]any{"jsonrpc": "2.0", "method": "$/cancelRequest", "params": map[string]any{"id": "c4"}})
			if e := errorOf(t, reply(t, tl, "c4", 10*time.Second)); e["code"] != -32800.0 {
				t.Errorf("cancelled call: %v", e)
			}
			p.waitJS(10*time.Second, "T.aborted === true && T.abortCode === -32800")

			// Context pushed by a tool reaches set_context and bridge.context.
			resultOf(t, tl.Call("c5", "bridge.context", map[string]any{"app": app, "context": map[string]any{"project": "P", "task": "comp"}}))
			p.waitJS(10*time.Second, "T.ctx && T.ctx.project === 'P' && T.bridge.context && T.bridge.context.task === 'comp'")

			if runs := eval[map[string]float64](p, 10*time.Second, "T.runs"); runs["echo"] != 1 || runs["long"] != 1 {
				t.Errorf("runs: %v", runs)
			}
		})
	}
}

// proxy is a TCP proxy between the page and the bridge whose connections a
// test can cut (close both sides) while it keeps accepting new ones.
type proxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	accepted int
	refuse   bool         // close new connections at once
	down     bytes.Buffer // everything the bridge sent to pages
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	px := &proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	px.wg.Add(1)
	go px.serve()
	t.Cleanup(px.close)
	return px
}

func (px *proxy) addr() string { return px.ln.Addr().String() }

func (px *proxy) serve() {
	defer px.wg.Done()
	for {
		c, err := px.ln.Accept()
		if err != nil {
			return
		}
		px.mu.Lock()
		refuse := px.refuse
		px.mu.Unlock()
		if refuse {
			c.Close()
			continue
		}
		u, err := net.DialTimeout("tcp", px.target, 5*time.Second)
		if err != nil {
			c.Close()
			continue
		}
		px.mu.Lock()
		px.accepted++
		px.conns[c], px.conns[u] = struct{}{}, struct{}{}
		px.mu.Unlock()
		px.wg.Add(2)
		go px.pipe(u, c, false)
		go px.pipe(c, u, true)
	}
}

// pipe copies from src to dst; down marks the bridge → page direction,
// which is recorded.
func (px *proxy) pipe(dst, src net.Conn, down bool) {
	defer px.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if down {
				px.mu.Lock()
				px.down.Write(buf[:n])
				px.mu.Unlock()
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	dst.Close()
	src.Close()
}

// cut closes every proxied connection, both sides.
func (px *proxy) cut() {
	px.mu.Lock()
	defer px.mu.Unlock()
	for c := range px.conns {
		c.Close()
	}
	clear(px.conns)
}

func (px *proxy) setRefuse(v bool) {
	px.mu.Lock()
	px.refuse = v
	px.mu.Unlock()
}

func (px *proxy) connections() int {
	px.mu.Lock()
	defer px.mu.Unlock()
	return px.accepted
}

// seen counts s in what the bridge sent to pages.
func (px *proxy) seen(s string) int {
	px.mu.Lock()
	defer px.mu.Unlock()
	return bytes.Count(px.down.Bytes(), []byte(s))
}

// waitSeen waits until s has been sent n times, failing after timeout.
func (px *proxy) waitSeen(t *testing.T, s string, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for px.seen(s) < n {
		if time.Now().After(deadline) {
			t.Fatalf("the bridge did not send %s %d times within %v (seen %d)", s, n, timeout, px.seen(s))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (px *proxy) close() {
	px.ln.Close()
	px.cut()
	px.wg.Wait()
}

// sessionOf returns the bridge's view of app's session, if there is one.
func sessionOf(r *session.Router, app string) (session.SessionInfo, bool) {
	for _, s := range r.Sessions() {
		if s.App == app {
			return s, true
		}
	}
	return session.SessionInfo{}, false
}

// TestBrowserResume: the page's handler blocks the JavaScript thread for 3 s
// while its connection is cut (a TCP proxy between page and bridge); the
// page reconnects, the bridge re-sends the call with the same forwarded id,
// the SDK answers from its result cache, the Go tool gets the result and the
// handler ran once. Then the same with a handler still running (not
// blocking) when the re-sent call arrives, and a page's own call whose reply
// the bridge holds while the page is away.
func TestBrowserResume(t *testing.T) {
	br := browsertest.Start(t)
	for _, build := range builds {
		t.Run(build, func(t *testing.T) {
			b := bridgetest.Start(t, &session.Options{}, &web.Options{Token: pageToken})
			px := startProxy(t, strings.TrimPrefix(b.URL, "http://"))
			app := "resume" + build
			p := open(t, br, writePage(t, build, b.URL, pageConfig{URL: "ws://" + px.addr() + "/ws", App: app, Token: pageToken, Instance: "panel-" + build}))
			tl := tool(t, b.WSURL, "tool-1", "slow")
			p.waitReady()

			t.Run("blocked", func(t *testing.T) {
				call(tl, "c-block", app+".block", map[string]any{"ms": 3000})
				px.waitSeen(t, `"method":"block"`, 1, 10*time.Second)
				time.Sleep(200 * time.Millisecond) // the handler is now blocking the page
				conns := px.connections()
				px.cut()
				r := resultOf(t, reply(t, tl, "c-block", 30*time.Second))
				if r["runs"] != 1.0 || r["attempt"] != 1.0 {
					t.Errorf("result %v: want the first run's reply (runs 1, attempt 1)", r)
				}
				if px.connections() <= conns {
					t.Errorf("the page did not reconnect through the proxy (%d connections)", px.connections())
				}
				if n := px.seen(`"method":"block"`); n < 2 {
					t.Errorf("the bridge sent the call %d times; want it re-sent after the reconnect", n)
				}
				if px.seen(`"attempt":2`) < 1 {
					t.Error("no re-sent call with meta.attempt 2")
				}
				p.waitReady()
				if n := eval[float64](p, 10*time.Second, "T.runs.block"); n != 1 {
					t.Errorf("the handler ran %v times, want 1", n)
				}
			})

			t.Run("running", func(t *testing.T) {
				call(tl, "c-wait", app+".wait", map[string]any{"ms": 3000})
				px.waitSeen(t, `"method":"wait"`, 1, 10*time.Second)
				p.waitJS(10*time.Second, "T.runs.wait === 1")
				px.cut()
				// The re-sent call arrives while the handler still runs.
				px.waitSeen(t, `"method":"wait"`, 2, 20*time.Second)
				r := resultOf(t, reply(t, tl, "c-wait", 30*time.Second))
				if r["runs"] != 1.0 || r["attempt"] != 1.0 {
					t.Errorf("result %v: want the first run's reply (runs 1, attempt 1)", r)
				}
				if n := eval[float64](p, 10*time.Second, "T.runs.wait"); n != 1 {
					t.Errorf("the handler ran %v times, want 1", n)
				}
			})

			t.Run("held reply", func(t *testing.T) {
				eval[bool](p, 10*time.Second, `start("slow", "pipeline.slow", {n: 7}, {timeoutMs: 60000})`)
				req := request(t, tl, "slow", 10*time.Second)
				px.setRefuse(true)
				px.cut()
				deadline := time.Now().Add(20 * time.Second)
				for {
					if s, ok := sessionOf(b.Router, app); ok && s.State == session.StateReconnecting {
						break
					}
					if time.Now().After(deadline) {
						t.Fatal("the bridge never saw the page's session as reconnecting")
					}
					time.Sleep(10 * time.Millisecond)
				}
				// The reply comes while the page is away: the bridge holds it.
				tl.Send(map[string]any{"jsonrpc": "2.0", "id": req["id"], "result": map[string]any{"n": 7}})
				time.Sleep(200 * time.Millisecond)
				if got := eval[any](p, 10*time.Second, `T.results.slow`); got != nil {
					t.Fatalf("the page has a result before reconnecting: %v", got)
				}
				px.setRefuse(false)
				if got := p.result("slow", 30*time.Second); fmt.Sprint(got) != "map[result:map[n:7]]" {
					t.Errorf("page's call across the reconnect: %v", got)
				}
			})
		})
	}
}

// TestBrowserBridgeRestart: the bridge stops and a new one starts on the same
// port under a connected page; the page reconnects and registers again by
// itself, a call it made while the bridge was down goes out after the new
// hello, and a new call runs the handler again (a new bridge never reuses a
// forwarded id, so the result cache does not answer it).
func TestBrowserBridgeRestart(t *testing.T) {
	br := browsertest.Start(t)
	for _, build := range builds {
		t.Run(build, func(t *testing.T) {
			first := bridgetest.Start(t, &session.Options{}, &web.Options{Token: pageToken})
			wsURL := first.WSURL
			app := "restart" + build
			p := open(t, br, writePage(t, build, first.URL, pageConfig{URL: wsURL, App: app, Token: pageToken, Instance: "panel-" + build}))
			p.waitReady()
			firstSession := eval[string](p, 10*time.Second, "T.bridge.session")

			tl := tool(t, wsURL, "tool-1")
			r := resultOf(t, tl.Call("c1", app+".echo", map[string]any{"n": 1}))
			firstID, _ := r["id"].(string)
			if n := eval[float64](p, 10*time.Second, "T.runs.echo"); n != 1 {
				t.Fatalf("echo ran %v times, want 1", n)
			}

			first.Stop()
			p.waitJS(20*time.Second, "T.bridge.state === 'reconnecting'")
			// A call made while the bridge is down waits in the SDK.
			eval[bool](p, 10*time.Second, `start("queued", "pipeline.publish", {q: 1}, {waitMs: 20000})`)

			bridgetest.StartOn(t, first.Addr, &session.Options{}, &web.Options{Token: pageToken})
			tl2 := tool(t, wsURL, "tool-2", "publish")
			req := request(t, tl2, "publish", 30*time.Second)
			tl2.Send(map[string]any{"jsonrpc": "2.0", "id": req["id"], "result": "done"})
			if got := p.result("queued", 10*time.Second); fmt.Sprint(got) != "map[result:done]" {
				t.Errorf("the call made while the bridge was down: %v", got)
			}

			// The page is registered on the new bridge with its methods.
			p.waitReady()
			var info map[string]any
			deadline := time.Now().Add(20 * time.Second)
			for info == nil {
				list, _ := tl2.Call("s", "bridge.sessions", map[string]any{"app": app})["result"].([]any)
				if len(list) == 1 {
					info, _ = list[0].(map[string]any)
				} else if time.Now().After(deadline) {
					t.Fatalf("the new bridge does not list the page: %v", list)
				} else {
					time.Sleep(50 * time.Millisecond)
				}
			}
			if info["instance"] != "panel-"+build || !strings.Contains(fmt.Sprint(info["methods"]), app+".echo") {
				t.Errorf("the new bridge's view of the page: %v", info)
			}
			if s := eval[string](p, 10*time.Second, "T.bridge.session"); s == firstSession || s != info["session"] {
				t.Errorf("page session %q after the restart (before %q, bridge says %v)", s, firstSession, info["session"])
			}

			r = resultOf(t, tl2.Call("c1", app+".echo", map[string]any{"n": 2}))
			if id, _ := r["id"].(string); id == "" || id == firstID {
				t.Errorf("forwarded id %q after the restart (before %q)", id, firstID)
			}
			if n := eval[float64](p, 10*time.Second, "T.runs.echo"); n != 2 {
				t.Errorf("echo ran %v times, want 2", n)
			}
		})
	}
}
