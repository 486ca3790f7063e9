package hostadapters_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dccbridge/dccbridge/internal/bridgetest"
	"github.com/dccbridge/dccbridge/session"
	"github.com/dccbridge/dccbridge/web"
)

// aeRoutes are the routes of a fake After Effects panel: get_items answers
// with a JSX string as the real one does, get_comp_properties answers
// after a delay given in its params (to answer out of order), render and
// import_file block until released, rename_item throws, close returns
// undefined.
func aeRoutes(release <-chan struct{}) map[string]panelRoute {
	return map[string]panelRoute{
		"AfterEffects.get_items": func(p map[string]any) (any, error) {
			return `[{"id":1,"name":"comp_sh010","type":"comp"}]`, nil
		},
		"AfterEffects.get_comp_properties": func(p map[string]any) (any, error) {
			ms, _ := p["delay_ms"].(float64)
			time.Sleep(time.Duration(ms) * time.Millisecond)
			return p["item_id"], nil
		},
		"AfterEffects.render": func(p map[string]any) (any, error) {
			<-release
			return "rendered", nil
		},
		"AfterEffects.rename_item": func(p map[string]any) (any, error) { return nil, errThrown },
		"AfterEffects.close":       func(p map[string]any) (any, error) { return nil, errUndefined },
	}
}

// A pipeline tool calls an AYON panel that speaks wsrpc, unchanged: the
// call made before the panel is up waits for it (the catalog says a host
// of aftereffects offers get_items), even though a tool already offers
// routes in the aftereffects namespace; the panel gets wsrpc calls (even
// ids from 2, no "jsonrpc", no meta) and its answers come back to the tool
// under the tool's ids; three calls answered out of order each reach
// their caller; a route the panel lacks is -32601, a handler that throws
// an error with the panel's error in data, an undefined result null; no
// notification ever reaches the panel, not even a timed-out call's cancel.
func TestWSRPCPanelAnswersTools(t *testing.T) {
	b, aeURL := startBridge(t, nil, nil)
	buttons := bridgetest.Dial(t, b.WSURL, nil)
	buttons.Hello(map[string]any{"app": "aftereffects", "kind": "tool", "methods": []string{"publish_route"}})
	tool := bridgetest.Dial(t, b.WSURL, nil)
	tool.Hello(map[string]any{"app": "pipeline", "kind": "tool"})

	for _, s := range b.Router.Sessions() {
		if s.App == "aftereffects" && s.AppLabel != "After Effects" {
			t.Errorf("a session of aftereffects: app_label %q, want the catalog's \"After Effects\"", s.AppLabel)
		}
	}

	early := toolCall(tool, "early", "aftereffects.get_items", map[string]any{"comps": true, "folders": false, "footages": false}, nil)
	time.Sleep(300 * time.Millisecond) // the call is waiting, not failed
	panel := newPanel(t, aeURL, aeRoutes(nil))
	panel.connect("AfterEffects.ping")

	fwd := panel.expectCall("AfterEffects.get_items")
	if fwd["id"] != float64(2) || fwd["jsonrpc"] != nil || fwd["meta"] != nil {
		t.Errorf("the panel's first call from the bridge: %v, want id 2, no jsonrpc, no meta", fwd)
	}
	if p, _ := fwd["params"].(map[string]any); p["comps"] != true {
		t.Errorf("params not passed as they are: %v", fwd["params"])
	}
	if r := early(); r["result"] != `[{"id":1,"name":"comp_sh010","type":"comp"}]` {
		t.Fatalf("get_items made before the panel was up: %v, want the panel's answer", r)
	}

	for i, delay := range []int{600, 300, 0} {
		msg, _ := bridgetest.Request("props-"+itoa(i), "aftereffects.get_comp_properties", map[string]any{"item_id": i, "delay_ms": delay})
		tool.Send(msg)
	}
	var order []string
	for range 3 {
		r := tool.Expect(10*time.Second, func(m map[string]any) bool { return m["method"] == nil })
		id, _ := r["id"].(string)
		order = append(order, id)
		if want := "props-" + itoa(int(r["result"].(float64))); id != want {
			t.Errorf("reply %v went to %s, want %s", r, id, want)
		}
	}
	if strings.Join(order, " ") != "props-2 props-1 props-0" {
		t.Errorf("replies came %v, want the panel's order (props-2 first)", order)
	}

	code, _ := rpcError(t, toolCall(tool, "nf", "aftereffects.get_metadata", nil, nil)())
	if code != -32601 {
		t.Errorf("a route the panel lacks: %v, want -32601", code)
	}
	for _, m := range panel.all() {
		if p, ok := m["params"].(map[string]any); m["method"] == "AfterEffects.get_metadata" && (!ok || len(p) != 0) {
			t.Errorf("a call without params reached the panel as %v, want \"params\":{} (its routes read their params)", m)
		}
	}
	code, data := rpcError(t, toolCall(tool, "thrown", "aftereffects.rename_item", map[string]any{"item_id": 1, "item_name": "x"}, nil)())
	if code != -32603 || data["wsrpc_error"] == nil {
		t.Errorf("a handler that throws: %v %v, want -32603 with the panel's error in data", code, data)
	}
	if r := toolCall(tool, "undef", "aftereffects.close", nil, nil)(); r["error"] != nil || r["result"] != nil {
		t.Errorf("an undefined result: %v, want result null", r)
	}
	code, _ = rpcError(t, toolCall(tool, "late", "aftereffects.render", map[string]any{"comp_id": 1}, map[string]any{"timeout_ms": 200})())
	if code != -32002 {
		t.Errorf("render past its timeout: %v, want -32002", code)
	}
	time.Sleep(200 * time.Millisecond)
	for _, m := range panel.all() {
		if m["id"] == nil || m["jsonrpc"] != nil {
			t.Errorf("the panel got %v: a notification or a JSON-RPC 2.0 message, which it would answer with an error", m)
		}
	}
}

// A panel on the bridge's own port, with no app in its URL, is known by
// its start call's prefix. Its buttons reach the tool that offers their
// routes, and the panel gets the answer under its own id, always with
// "result"; a button nobody offers gets an error the panel can show (text,
// no "result").
func TestWSRPCPanelButtonsReachTools(t *testing.T) {
	b, _ := startBridge(t, nil, nil)
	buttons := bridgetest.Dial(t, b.WSURL, nil)
	buttons.Hello(map[string]any{"app": "aftereffects", "kind": "tool", "methods": []string{"publish_route"}})
	panel := newPanel(t, b.WSURL+"/", aeRoutes(nil))
	panel.connect()
	if r := panel.call("AfterEffects.ping", nil); r["id"] != float64(3) || r["error"] != nil {
		t.Errorf("the panel's start ping: %v, want {id:3, result:null}", r)
	}

	done := make(chan map[string]any, 1)
	go func() { done <- panel.call("AfterEffects.publish_route", nil) }()
	req := buttons.Expect(5*time.Second, func(m map[string]any) bool { return m["method"] != nil })
	if req["method"] != "publish_route" {
		t.Fatalf("the tool got %v, want publish_route", req)
	}
	meta, _ := req["meta"].(map[string]any)
	caller, _ := meta["caller"].(map[string]any)
	if caller["app"] != "aftereffects" || !strings.HasPrefix(caller["instance"].(string), "aftereffects@127.0.0.1") {
		t.Errorf("meta.caller %v: want the panel, app aftereffects, instance aftereffects@127.0.0.1", caller)
	}
	buttons.Send(map[string]any{"jsonrpc": "2.0", "id": req["id"], "result": nil})
	r := <-done
	if _, has := r["result"]; !has || r["error"] != nil || r["id"] != float64(5) {
		t.Errorf("the panel's publish_route (id 5, after ping's 3): %v, want {id:5, result:null}", r)
	}

	r = panel.call("AfterEffects.workfiles_route", nil)
	msg, isText := r["error"].(string)
	if _, has := r["result"]; has || !isText || !strings.Contains(msg, "workfiles_route") {
		t.Errorf("a button nobody offers: %v, want an error text naming it and no result", r)
	}
}

// A panel that drops during render (not idempotent) fails the tool's call
// -32004 may_have_run at once; during get_items (idempotent in the
// catalog) the call waits, and the panel, back and silent as wsrpc.js is
// after a reconnect, gets it again under its new connection's ids.
func TestWSRPCPanelDropsAndComesBackSilent(t *testing.T) {
	b, aeURL := startBridge(t, nil, nil)
	tool := bridgetest.Dial(t, b.WSURL, nil)
	tool.Hello(map[string]any{"app": "pipeline", "kind": "tool"})
	release := make(chan struct{})
	defer close(release)
	routes := aeRoutes(release)
	var answerItems atomic.Bool // until set, get_items hangs, like a panel whose host is busy
	routes["AfterEffects.get_items"] = func(map[string]any) (any, error) {
		if !answerItems.Load() {
			<-release
		}
		return "items", nil
	}
	panel := newPanel(t, aeURL, routes)
	panel.connect("AfterEffects.ping")

	render := toolCall(tool, "render", "aftereffects.render", map[string]any{"comp_id": 1}, nil)
	panel.expectCall("AfterEffects.render")
	panel.drop()
	code, data := rpcError(t, render())
	if code != -32004 || data["may_have_run"] != true {
		t.Errorf("render when the panel dropped: %v %v, want -32004 may_have_run", code, data)
	}

	// get_items is not answered by this connection: it drops first.
	panel.connect()
	items := toolCall(tool, "items", "aftereffects.get_items", map[string]any{"comps": true}, nil)
	first := panel.expectCall("AfterEffects.get_items")
	panel.drop()
	answerItems.Store(true)
	start := time.Now()
	panel.connect() // silent, as after a reconnect
	again := panel.expectCall("AfterEffects.get_items")
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("the call came again %v after the silent reconnect, want within about a second", took)
	}
	if again["id"] != float64(2) || first["id"] == nil {
		t.Errorf("re-sent as %v, want id 2: ids are per connection", again)
	}
	if r := items(); r["error"] != nil {
		t.Fatalf("get_items across the drop: %v, want the answer", r)
	}
	var infos []session.SessionInfo
	for _, s := range b.Router.Sessions() {
		if s.App == "aftereffects" {
			infos = append(infos, s)
		}
	}
	if len(infos) != 1 || infos[0].Instance != "aftereffects@127.0.0.1" || infos[0].Kind != "host" || !strings.Contains(infos[0].Label, "After Effects") {
		t.Errorf("sessions of aftereffects: %+v, want one host, instance aftereffects@127.0.0.1, labelled After Effects", infos)
	}
}

// A wsrpc client that is not a panel (AYON's second launch, which calls
// set_context through wsrpc-aiohttp's Python client on the panel's port)
// reaches the tool that offers the route and gets its own integer id
// back; it is a tool, not an After Effects host.
func TestWSRPCClientCallsATool(t *testing.T) {
	b, aeURL := startBridge(t, nil, nil)
	ctxTool := bridgetest.Dial(t, b.WSURL, nil)
	ctxTool.Hello(map[string]any{"app": "aftereffects", "kind": "tool", "methods": []string{"set_context"}})

	client := bridgetest.Dial(t, aeURL, nil)
	client.Send(`{"id": 2, "method": "AfterEffects.set_context", "params": {"project": "demo", "folder": "/shots/sh010", "task": "comp"}}`)
	req := ctxTool.Expect(5*time.Second, func(m map[string]any) bool { return m["method"] == "set_context" })
	if p := req["params"].(map[string]any); p["folder"] != "/shots/sh010" {
		t.Errorf("set_context params: %v", p)
	}
	ctxTool.Send(map[string]any{"jsonrpc": "2.0", "id": req["id"], "result": nil})
	raw := client.ReadRaw(5 * time.Second)
	if !bytes.Equal(raw, []byte(`{"id":2,"result":null}`)) {
		t.Errorf("the client got %s, want {\"id\":2,\"result\":null}", raw)
	}
	for _, s := range b.Router.Sessions() {
		if s.App == "aftereffects" && s.Kind == "host" {
			t.Errorf("the client was taken for a panel: %+v", s)
		}
	}
}

// A silent connection to the bridge's own port (no app in its URL) is
// asked: the bridge calls each wsrpc app's probe route, the Photoshop
// panel answers After Effects' with "Route not found" and its own with a
// value, and it is then a photoshop host that tools reach.
func TestWSRPCSilentPanelIsProbed(t *testing.T) {
	b, _ := startBridge(t, nil, nil)
	tool := bridgetest.Dial(t, b.WSURL, nil)
	tool.Hello(map[string]any{"app": "pipeline", "kind": "tool"})
	ps := newPanel(t, b.URL[len("http://"):], map[string]panelRoute{
		"Photoshop.get_active_document_name": func(map[string]any) (any, error) { return "sh010_paint.psd", nil },
		"Photoshop.get_layers":               func(map[string]any) (any, error) { return `[{"id":3,"name":"bg"}]`, nil },
	})
	ps.url = "ws://" + ps.url + "/ws/"
	ps.connect()
	if r := toolCall(tool, "layers", "photoshop.get_layers", nil, nil)(); r["result"] != `[{"id":3,"name":"bg"}]` {
		t.Fatalf("photoshop.get_layers to a probed panel: %v", r)
	}
	var probes []string
	for _, m := range ps.all() {
		probes = append(probes, m["method"].(string))
	}
	if len(probes) < 2 || probes[0] != "AfterEffects.get_active_document_name" || probes[1] != "Photoshop.get_active_document_name" {
		t.Errorf("the bridge sent %v, want the After Effects probe, then Photoshop's", probes)
	}
}

// The token a panel puts in its URL (it cannot set headers) admits it, and
// appears in no log line and nowhere on the status page's data.
func TestWSRPCTokenInURLIsNeverShown(t *testing.T) {
	const token = "s3cret-token-in-the-url-0123456789"
	var logs bridgetest.SyncBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	b, aeURL := startBridge(t, &session.Options{Logger: log}, &web.Options{Token: token, TokenInForce: true, Logger: log})
	panel := newPanel(t, aeURL+"?token="+token, aeRoutes(nil))
	panel.connect("AfterEffects.ping")
	tool := bridgetest.Dial(t, b.WSURL+"?token="+token, nil)
	tool.Hello(map[string]any{"app": "pipeline", "kind": "tool"})
	if r := toolCall(tool, "i", "aftereffects.get_items", nil, nil)(); r["error"] != nil {
		t.Fatalf("get_items: %v", r)
	}
	sessions, _ := json.Marshal(b.Router.Sessions())
	for what, text := range map[string]string{"the log": logs.String(), "the sessions": string(sessions)} {
		if strings.Contains(text, token) {
			t.Errorf("%s shows the token:\n%s", what, text)
		}
	}
}

// How a connection is known, in the cases a panel meets in the field: a
// button clicked while the bridge was away comes first, queued (odd id,
// not the start call), and it is the panel; Photoshop's panel on After
// Effects' port (AYON's port search spans both) is Photoshop's, and its
// start call is answered; a probe answered slowly (the host busy in a
// render) still identifies the panel; a probe answered with a Python
// client's error object identifies nothing; a JSON-RPC client that is
// silent too long on an app's port is closed with 1013, to connect again.
func TestWSRPCHowConnectionsAreKnown(t *testing.T) {
	b, aeURL := startBridge(t, nil, nil)
	tool := bridgetest.Dial(t, b.WSURL, nil)
	tool.Hello(map[string]any{"app": "pipeline", "kind": "tool"})
	hostOf := func(app string) *session.SessionInfo {
		for _, s := range b.Router.Sessions() {
			if s.App == app && s.Kind == "host" {
				return &s
			}
		}
		return nil
	}

	step(t, "a queued button call first", func(t *testing.T) {
		panel := newPanel(t, b.WSURL+"/", aeRoutes(nil))
		panel.connect("AfterEffects.publish_route")
		waitFor(t, func() bool { return hostOf("aftereffects") != nil }, "an aftereffects host")
		panel.drop()
		waitFor(t, func() bool {
			return hostOf("aftereffects") == nil || hostOf("aftereffects").State != session.StateConnected
		}, "the panel gone")
	})

	step(t, "Photoshop's panel on After Effects' port", func(t *testing.T) {
		ps := newPanel(t, aeURL, map[string]panelRoute{"Photoshop.get_layers": func(map[string]any) (any, error) { return "[]", nil }})
		ps.connect()
		if r := ps.call("Photoshop.ping", nil); r["error"] != nil {
			t.Errorf("Photoshop.ping on the After Effects port: %v, want it answered", r)
		}
		if r := toolCall(tool, "ps", "photoshop.get_layers", nil, nil)(); r["result"] != "[]" {
			t.Errorf("photoshop.get_layers: %v", r)
		}
		ps.drop()
	})

	step(t, "a slow answer to the probe", func(t *testing.T) {
		ps := newPanel(t, b.WSURL+"/", map[string]panelRoute{
			"Photoshop.get_active_document_name": func(map[string]any) (any, error) { time.Sleep(2500 * time.Millisecond); return "matte.psd", nil },
			"Photoshop.read":                     func(map[string]any) (any, error) { return "layers", nil },
		})
		ps.connect()
		if r := toolCall(tool, "read", "photoshop.read", nil, map[string]any{"wait_ms": 10000})(); r["result"] != "layers" {
			t.Errorf("photoshop.read once the busy panel answered its probe: %v", r)
		}
		ps.drop()
	})

	step(t, "a Python client's error to the probe", func(t *testing.T) {
		client := bridgetest.Dial(t, b.WSURL+"/", nil)
		probe := client.Read()
		client.Send(map[string]any{"id": probe["id"], "error": map[string]any{"type": "NotImplementedError", "message": "Callback function not implemented"}})
		time.Sleep(300 * time.Millisecond)
		for _, s := range b.Router.Sessions() {
			if s.Kind == "host" && s.State == session.StateConnected && (s.App == "aftereffects" || s.App == "photoshop") {
				t.Errorf("a client that answered the probe with an error became %+v", s)
			}
		}
	})

	step(t, "a slow JSON-RPC client on an app's port", func(t *testing.T) {
		slow := bridgetest.Dial(t, aeURL, nil)
		time.Sleep(800 * time.Millisecond)
		slow.Send(`{"jsonrpc":"2.0","id":1,"method":"bridge.hello","params":{"app":"pipeline","kind":"tool"}}`)
		if code := slow.Closed(5 * time.Second); code != 1013 {
			t.Errorf("a JSON-RPC client silent for 0.8 s on the After Effects port ended with %d, want 1013 (connect again)", code)
		}
	})
}

func step(t *testing.T, name string, f func(t *testing.T)) {
	t.Helper()
	if !t.Run(name, f) {
		t.FailNow()
	}
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	for range 200 {
		if cond() {
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("%s never came", what)
}
