package hostadapters_test

import (
	"bufio"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dccbridge/dccbridge/hostadapters"
	"github.com/dccbridge/dccbridge/internal/bridgetest"
	"github.com/dccbridge/dccbridge/retry"
	"github.com/dccbridge/dccbridge/session"
)

// fakeSkyHook is an HTTP server that answers as SkyHook's does: POST
// {"FunctionName","Parameters"} → 200 {"Time","Success","ReturnValue",
// "Command"}, one request at a time, SKY_LS listing its functions, an
// unknown function a ValueError traceback.
type fakeSkyHook struct {
	t         *testing.T
	addr      string
	functions map[string]func(params map[string]any, w http.ResponseWriter) (any, bool)

	one     sync.Mutex // SkyHook runs one request at a time
	running atomic.Int32
	most    atomic.Int32 // the most requests seen running at once
	srv     *http.Server
}

func newFakeSkyHook(t *testing.T, addr string) *fakeSkyHook {
	return &fakeSkyHook{t: t, addr: addr, functions: map[string]func(map[string]any, http.ResponseWriter) (any, bool){}}
}

// start serves on f.addr (a free port the first time).
func (f *fakeSkyHook) start() {
	f.t.Helper()
	if f.addr == "" {
		f.addr = "127.0.0.1:0"
	}
	var ln net.Listener
	var err error
	for range 100 { // the port of a server just stopped may linger
		if ln, err = net.Listen("tcp", f.addr); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		f.t.Fatal(err)
	}
	f.addr = ln.Addr().String()
	f.srv = &http.Server{Handler: http.HandlerFunc(f.serve)}
	go f.srv.Serve(ln)
	f.t.Cleanup(f.stop)
}

func (f *fakeSkyHook) stop() {
	if f.srv != nil {
		f.srv.Close()
	}
}

func (f *fakeSkyHook) serve(w http.ResponseWriter, r *http.Request) {
	var req struct {
		FunctionName string
		Parameters   map[string]any
	}
	if json.NewDecoder(r.Body).Decode(&req) != nil {
		panic(http.ErrAbortHandler) // SkyHook drops a request that is not JSON
	}
	if req.FunctionName != "SKY_LS" { // the bridge's probes may overlap a call; calls may not
		n := f.running.Add(1)
		defer f.running.Add(-1)
		for m := f.most.Load(); n > m && !f.most.CompareAndSwap(m, n); m = f.most.Load() {
		}
	}
	f.one.Lock()
	defer f.one.Unlock()
	var value any
	ok := true
	switch fn, known := f.functions[req.FunctionName]; {
	case req.FunctionName == "SKY_LS":
		names := []string{"SKY_SHUTDOWN", "SKY_LS", "_private"}
		for name := range f.functions {
			names = append(names, name)
		}
		value = names
	case !known:
		value, ok = "Traceback (most recent call last):\n  File \"server.py\", line 1\nValueError: Function "+req.FunctionName+" not found", false
	default:
		value, ok = fn(req.Parameters, w)
		if value == http.ErrAbortHandler {
			panic(http.ErrAbortHandler) // the DCC died during the call
		}
		if s, isRaw := value.(rawReply); isRaw {
			w.Write([]byte(s))
			return
		}
	}
	json.NewEncoder(w).Encode(map[string]any{"Time": time.Now().Format("15:04:05"), "Success": ok, "ReturnValue": value, "Command": req.FunctionName})
}

// rawReply is a reply written as it is, not wrapped.
type rawReply string

// startConnector runs a SkyHook connector for maya at addr until the test
// ends.
func startConnector(t *testing.T, b *bridgetest.Bridge, newConn func(hostadapters.ConnectorOptions) *hostadapters.Connector, app, addr string) *hostadapters.Connector {
	t.Helper()
	catalog, _ := hostadapters.Load("")
	a, _ := catalog.App(app)
	c := newConn(hostadapters.ConnectorOptions{Router: b.Router, App: a, Addr: addr, Backoff: retry.Backoff{Min: 50 * time.Millisecond, Max: 200 * time.Millisecond}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return c
}

// waitSession waits until a session of instance is in state, and returns it.
func waitSession(t *testing.T, b *bridgetest.Bridge, instance string, state session.State) session.SessionInfo {
	t.Helper()
	for range 200 {
		for _, s := range b.Router.Sessions() {
			if s.Instance == instance && s.State == state {
				return s
			}
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("no session of %s %s; sessions: %+v", instance, state, b.Router.Sessions())
	return session.SessionInfo{}
}

// Maya's SkyHook server as a session: it offers what SKY_LS lists (not the
// server commands); a call returns ReturnValue; Success false is an error
// with the traceback in data; an unknown function -32601; array params
// -32602; a reply that is not JSON an error; calls run one at a time; the
// bridge's timeout decides what the caller sees.
func TestSkyHookConnector(t *testing.T) {
	b, _ := startBridge(t, nil, nil)
	sky := newFakeSkyHook(t, "")
	sky.functions["export_abc"] = func(p map[string]any, _ http.ResponseWriter) (any, bool) { return p["path"], true }
	sky.functions["fail"] = func(map[string]any, http.ResponseWriter) (any, bool) {
		return "Traceback (most recent call last):\n  File \"<maya>\", line 3, in fail\nRuntimeError: no such node: pCube1", false
	}
	sky.functions["garbled"] = func(map[string]any, http.ResponseWriter) (any, bool) { return rawReply("<html>oops</html>"), true }
	sky.functions["slow"] = func(p map[string]any, _ http.ResponseWriter) (any, bool) {
		ms, _ := p["ms"].(float64)
		time.Sleep(time.Duration(ms) * time.Millisecond)
		return "slept", true
	}
	sky.start()
	c := startConnector(t, b, hostadapters.NewSkyHookConnector, "maya", sky.addr)
	info := waitSession(t, b, c.Instance(), session.StateConnected)
	if info.Kind != "skyhook" || info.App != "maya" || !strings.Contains(strings.Join(info.Methods, " "), "maya.export_abc") || strings.Contains(strings.Join(info.Methods, " "), "SKY_") {
		t.Errorf("the session: %+v, want kind skyhook, app maya, export_abc offered and no SKY_ command", info)
	}

	tool := bridgetest.Dial(t, b.WSURL, nil)
	tool.Hello(map[string]any{"app": "pipeline", "kind": "tool"})
	if r := toolCall(tool, "abc", "maya.export_abc", map[string]any{"path": "/shots/sh010/cache.abc"}, nil)(); r["result"] != "/shots/sh010/cache.abc" {
		t.Errorf("export_abc: %v, want its ReturnValue", r)
	}
	code, data := rpcError(t, toolCall(tool, "f", "maya.fail", nil, nil)())
	if code != -32603 || !strings.Contains(data["traceback"].(string), "RuntimeError: no such node") {
		t.Errorf("Success false: %v %v, want -32603 with the traceback in data", code, data)
	}
	code, _ = rpcError(t, toolCall(tool, "arr", "maya.export_abc", []any{"/a.abc"}, nil)())
	if code != -32602 {
		t.Errorf("array params: %v, want -32602", code)
	}
	code, _ = rpcError(t, toolCall(tool, "g", "maya.garbled", nil, nil)())
	if code != -32603 {
		t.Errorf("a reply that is not JSON: %v, want -32603", code)
	}
	code, _ = rpcError(t, toolCall(tool, "late", "maya.slow", map[string]any{"ms": 1500}, map[string]any{"timeout_ms": 300})())
	if code != -32002 {
		t.Errorf("a call past the bridge's timeout: %v, want -32002", code)
	}
	for sky.running.Load() > 0 { // the timed-out call still runs on the server
		time.Sleep(20 * time.Millisecond)
	}
	sky.most.Store(0)
	wait := []func() map[string]any{}
	for i := range 3 { // sent together
		wait = append(wait, toolCall(tool, "s"+itoa(i), "maya.slow", map[string]any{"ms": 100}, nil))
	}
	for _, w := range wait {
		if r := w(); r["result"] != "slept" {
			t.Errorf("slow: %v", r)
		}
	}
	if most := sky.most.Load(); most != 1 {
		t.Errorf("%d requests ran at once on the SkyHook server, want 1", most)
	}
}

// A SkyHook server that is down: calls wait (meta.wait_ms), then -32001;
// when it comes up, its session appears and calls reach it; when it dies
// during a call, the call fails -32004 may_have_run; when it comes back
// with other functions, the session offers those.
func TestSkyHookDownAndBack(t *testing.T) {
	b, _ := startBridge(t, &session.Options{HeartbeatInterval: 100 * time.Millisecond, HeartbeatTimeout: 500 * time.Millisecond}, nil)
	tool := bridgetest.Dial(t, b.WSURL, nil)
	tool.Hello(map[string]any{"app": "pipeline", "kind": "tool"})

	free, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := free.Addr().String()
	free.Close()
	c := startConnector(t, b, hostadapters.NewSkyHookConnector, "houdini", addr)
	code, _ := rpcError(t, toolCall(tool, "down", "houdini.cook", nil, map[string]any{"wait_ms": 300})())
	if code != -32001 {
		t.Errorf("a call while the server is down: %v, want -32001 after the wait", code)
	}

	sky := newFakeSkyHook(t, addr)
	sky.functions["cook"] = func(map[string]any, http.ResponseWriter) (any, bool) { return "cooked", true }
	sky.functions["crash"] = func(map[string]any, http.ResponseWriter) (any, bool) { return http.ErrAbortHandler, false }
	pending := toolCall(tool, "up", "houdini.cook", nil, map[string]any{"wait_ms": 10000})
	sky.start()
	if r := pending(); r["result"] != "cooked" {
		t.Fatalf("a call waiting for the server to come up: %v", r)
	}

	code, data := rpcError(t, toolCall(tool, "crash", "houdini.crash", nil, nil)())
	if code != -32004 || data["may_have_run"] != true {
		t.Errorf("the server dying during a call: %v %v, want -32004 may_have_run", code, data)
	}

	sky.stop()
	waitSession(t, b, c.Instance(), session.StateReconnecting)
	sky = newFakeSkyHook(t, addr)
	sky.functions["render_rop"] = func(map[string]any, http.ResponseWriter) (any, bool) { return "rendered", true }
	sky.start()
	info := waitSession(t, b, c.Instance(), session.StateConnected)
	if m := strings.Join(info.Methods, " "); !strings.Contains(m, "houdini.render_rop") || strings.Contains(m, "houdini.cook") {
		t.Errorf("after the server came back with other functions the session offers %s, want render_rop and not cook", m)
	}
	if r := toolCall(tool, "rop", "houdini.render_rop", nil, nil)(); r["result"] != "rendered" {
		t.Errorf("render_rop: %v", r)
	}
}

// Unreal's Remote Control as a session: unreal.call and unreal.property go
// to their routes with the params as the body; a 4xx errorMessage is an
// error with the HTTP status in data.
func TestUnrealConnector(t *testing.T) {
	b, _ := startBridge(t, &session.Options{HeartbeatInterval: 100 * time.Millisecond, HeartbeatTimeout: 500 * time.Millisecond}, nil)
	var got sync.Map
	mux := http.NewServeMux()
	mux.HandleFunc("GET /remote/info", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"HttpRoutes":[{"Path":"/remote/object/call","Verb":"PUT"}]}`))
	})
	mux.HandleFunc("PUT /remote/object/call", func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		json.NewDecoder(r.Body).Decode(&body)
		got.Store("call", body)
		w.Write([]byte(`{"ReturnValue":42}`))
	})
	mux.HandleFunc("PUT /remote/object/property", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte(`{"errorMessage":"Object: /Game/Nope could not be found"}`))
	})
	ue := httptest.NewServer(mux)
	defer ue.Close()
	c := startConnector(t, b, hostadapters.NewUnrealConnector, "unreal", strings.TrimPrefix(ue.URL, "http://"))
	if info := waitSession(t, b, c.Instance(), session.StateConnected); info.Kind != "unreal-remote" {
		t.Errorf("the session's kind: %q, want unreal-remote", info.Kind)
	}
	tool := bridgetest.Dial(t, b.WSURL, nil)
	tool.Hello(map[string]any{"app": "pipeline", "kind": "tool"})
	params := map[string]any{"objectPath": "/Game/Map.Map:PersistentLevel.Actor_1", "functionName": "GetHealth", "parameters": map[string]any{}}
	r := toolCall(tool, "c", "unreal.call", params, nil)()
	if res, _ := r["result"].(map[string]any); res["ReturnValue"] != float64(42) {
		t.Errorf("unreal.call: %v, want the route's reply", r)
	}
	if body, _ := got.Load("call"); body.(map[string]any)["functionName"] != "GetHealth" {
		t.Errorf("the route got %v, want the params as the body", body)
	}
	code, data := rpcError(t, toolCall(tool, "p", "unreal.property", map[string]any{"objectPath": "/Game/Nope", "propertyName": "X", "access": "READ_ACCESS"}, nil)())
	if code != -32602 || data["http_status"] != float64(400) || !strings.Contains(data["errorMessage"].(string), "could not be found") {
		t.Errorf("a 400: %v %v, want -32602 with the status and errorMessage in data", code, data)
	}

	ue.Close() // the editor quits
	waitSession(t, b, c.Instance(), session.StateReconnecting)
	code, _ = rpcError(t, toolCall(tool, "gone", "unreal.call", params, map[string]any{"wait_ms": 300})())
	if code != -32001 {
		t.Errorf("unreal.call while the editor is gone: %v, want -32001 after the wait", code)
	}
}

// Against a stand-in for SkyHook's server written with Python's standard
// library (one request at a time, as SkyHook's HTTPServer), where Python 3
// is installed: a call returns the function's value, a function that
// raises gives its traceback.
func TestSkyHookConnectorAgainstPython(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3 on this machine")
	}
	free, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := free.Addr().String()
	free.Close()
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(python, "testdata/skyhook_standin.py", port)
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if line, _ := bufio.NewReader(out).ReadString('\n'); line != "ready\n" {
		t.Fatalf("the stand-in said %q, want ready", line)
	}

	b, _ := startBridge(t, nil, nil)
	c := startConnector(t, b, hostadapters.NewSkyHookConnector, "maya", addr)
	waitSession(t, b, c.Instance(), session.StateConnected)
	tool := bridgetest.Dial(t, b.WSURL, nil)
	tool.Hello(map[string]any{"app": "pipeline", "kind": "tool"})
	r := toolCall(tool, "abc", "maya.export_abc", map[string]any{"path": "/shots/sh010/cache.abc", "frame_range": []int{1001, 1100}}, nil)()
	if res, _ := r["result"].(map[string]any); res["written"] != "/shots/sh010/cache.abc" {
		t.Errorf("export_abc through the Python stand-in: %v", r)
	}
	code, data := rpcError(t, toolCall(tool, "x", "maya.explode", nil, nil)())
	if code != -32603 || !strings.Contains(data["traceback"].(string), "RuntimeError: no such node: pCube1") {
		t.Errorf("a function that raises: %v %v, want -32603 with the Python traceback", code, data)
	}
	code, _ = rpcError(t, toolCall(tool, "nf", "maya.nope", nil, nil)())
	if code != -32601 {
		t.Errorf("a function the server does not list: %v, want -32601", code)
	}
}

// The connectors' HTTP client follows no redirect: an Unreal that answers
// its probe with a redirect (to another host here) is not reached through
// it, no session appears, and the log says why.
func TestConnectorFollowsNoRedirect(t *testing.T) {
	b, _ := startBridge(t, nil, nil)
	ue := bridgetest.StartHandler(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://pipeline.studio.invalid/remote/info", http.StatusFound)
	}))
	var logs bridgetest.SyncBuffer
	catalog, _ := hostadapters.Load("")
	app, _ := catalog.App("unreal")
	c := hostadapters.NewUnrealConnector(hostadapters.ConnectorOptions{Router: b.Router, App: app, Addr: strings.TrimPrefix(ue, "ws://"),
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	time.Sleep(500 * time.Millisecond)
	cancel()
	<-done
	for _, s := range b.Router.Sessions() {
		if s.Instance == c.Instance() {
			t.Errorf("a session for an Unreal whose probe redirects off loopback: %+v", s)
		}
	}
	if !strings.Contains(logs.String(), "follows no redirect from a command server") {
		t.Errorf("the log does not say the redirect was refused:\n%s", logs.String())
	}
}

// Calls queued behind a slow one: a hundred of them do not end the
// session; one whose time runs out while it waits is answered -32002 and
// never run; when the server dies, the calls still queued are answered
// "not run" (may_have_run false) and never run.
func TestSkyHookQueue(t *testing.T) {
	b, _ := startBridge(t, nil, nil)
	sky := newFakeSkyHook(t, "")
	var mu sync.Mutex
	var ran []string
	sky.functions["record"] = func(p map[string]any, _ http.ResponseWriter) (any, bool) {
		mu.Lock()
		ran = append(ran, p["tag"].(string))
		mu.Unlock()
		return p["tag"], true
	}
	sky.functions["slow"] = func(p map[string]any, _ http.ResponseWriter) (any, bool) {
		ms, _ := p["ms"].(float64)
		time.Sleep(time.Duration(ms) * time.Millisecond)
		if p["crash"] == true {
			return http.ErrAbortHandler, false
		}
		return "slept", true
	}
	sky.start()
	c := startConnector(t, b, hostadapters.NewSkyHookConnector, "maya", sky.addr)
	waitSession(t, b, c.Instance(), session.StateConnected)
	tool := bridgetest.Dial(t, b.WSURL, nil)
	tool.Hello(map[string]any{"app": "pipeline", "kind": "tool"})
	hasRun := func(tag string) bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Contains(ran, tag)
	}

	slow := toolCall(tool, "slow", "maya.slow", map[string]any{"ms": 800}, nil)
	late := toolCall(tool, "late", "maya.record", map[string]any{"tag": "late"}, map[string]any{"timeout_ms": 300})
	if code, _ := rpcError(t, late()); code != -32002 {
		t.Errorf("a call whose time ran out in the queue: %v, want -32002", code)
	}
	slow()
	time.Sleep(200 * time.Millisecond)
	if hasRun("late") {
		t.Error("a call answered -32002 while it waited ran afterwards")
	}

	waits := []func() map[string]any{toolCall(tool, "slow2", "maya.slow", map[string]any{"ms": 300}, nil)}
	for i := range 100 {
		waits = append(waits, toolCall(tool, "r"+itoa(i), "maya.record", map[string]any{"tag": "r" + itoa(i)}, nil))
	}
	for i, w := range waits {
		if r := w(); r["error"] != nil {
			t.Fatalf("call %d of 101 queued behind a slow one: %v", i, r)
		}
	}

	toolCall(tool, "crash", "maya.slow", map[string]any{"ms": 300, "crash": true}, nil)
	for i := range 3 {
		toolCall(tool, "q"+itoa(i), "maya.record", map[string]any{"tag": "q" + itoa(i)}, nil)
	}
	replies := map[string]map[string]any{}
	for len(replies) < 4 { // they come in any order: read them all, one reader
		r := tool.Expect(20*time.Second, func(m map[string]any) bool { return m["method"] == nil && m["id"] != nil })
		replies[r["id"].(string)] = r
	}
	if code, data := rpcError(t, replies["crash"]); code != -32004 || data["may_have_run"] != true {
		t.Errorf("the call the server died in: %v %v, want -32004 may_have_run", code, data)
	}
	for i := range 3 {
		code, data := rpcError(t, replies["q"+itoa(i)])
		if code != -32004 || data["may_have_run"] != false {
			t.Errorf("queued call %d when the server died: %v %v, want -32004 with may_have_run false", i, code, data)
		}
	}
	time.Sleep(300 * time.Millisecond)
	for i := range 3 {
		if hasRun("q" + itoa(i)) {
			t.Errorf("q%d, answered not run, ran", i)
		}
	}
}
