package web_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"

	"github.com/dccbridge/dccbridge/internal/bridgetest"
	"github.com/dccbridge/dccbridge/internal/browsertest"
	"github.com/dccbridge/dccbridge/session"
	"github.com/dccbridge/dccbridge/web"
)

// The status page tests drive Debian's chromium through chromedp
// (internal/browsertest), as clients/js's browser tests do: headless, a
// fresh profile per test, a 1280×800 window. They skip when chromium is missing, unless
// BRIDGE_BROWSER_TESTS is set.

// screenshotPath is where TestStatusPage writes the README's screenshot
// when BRIDGE_SCREENSHOT=1 (so ordinary runs leave the tree clean); other
// runs take the same screenshot into the test's temp dir.
func screenshotPath(t *testing.T) string {
	if os.Getenv("BRIDGE_SCREENSHOT") == "1" {
		return "../docs/status.png"
	}
	return filepath.Join(t.TempDir(), "status.png")
}

// statusPage is the status page in the first tab of its own headless
// chromium.
type statusPage struct{ *browsertest.Page }

// openStatusPage starts chromium and opens url in it, in light mode at
// 1280×800; both end with t.
func openStatusPage(t *testing.T, url string) *statusPage {
	t.Helper()
	br := browsertest.Start(t, chromedp.WindowSize(1280, 800), chromedp.Flag("hide-scrollbars", true))
	p := &statusPage{br.Page}
	p.Do(60*time.Second,
		chromedp.EmulateViewport(1280, 800),
		colorScheme("light"),
		chromedp.Navigate(url))
	return p
}

func colorScheme(scheme string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}},
		})
		return err
	})
}

// pageEval evaluates expr in the page and decodes its value into T.
func pageEval[T any](p *statusPage, expr string) (T, error) {
	return browsertest.TryEval[T](p.Page, 5*time.Second, expr)
}

// waitJS polls the boolean expr until it is true, failing after timeout.
func (p *statusPage) waitJS(timeout time.Duration, what, expr string) {
	p.T.Helper()
	ok, last := p.Poll(timeout, expr)
	if ok {
		return
	}
	state, _ := pageEval[string](p, `JSON.stringify({link: document.getElementById('link').dataset.state,
		sessions: [].map.call(document.querySelectorAll('#sessions tbody tr[data-app]'), function (r) { return r.dataset.app + '/' + r.dataset.instance + ':' + r.dataset.state; }),
		calls: [].map.call(document.querySelectorAll('#calls tbody tr'), function (r) { return r.dataset.method + ':' + r.dataset.state; }),
		log: [].map.call(document.querySelectorAll('#log li'), function (l) { return l.textContent; }).slice(0, 8)})`)
	p.T.Fatalf("waited %v for %s (%s; last error: %v); the page shows %s", timeout, what, expr, last, state)
}

// rowState is an expression for the state shown for app/instance, "" when
// it has no row.
func rowState(app, instance string) string {
	return fmt.Sprintf(`((document.querySelector('#sessions tbody tr[data-app=%q][data-instance=%q]') || {dataset: {}}).dataset.state || '')`, app, instance)
}

// callRow is an expression for the in-flight row of method, or null.
func callRow(method string) string {
	return fmt.Sprintf(`document.querySelector('#calls tbody tr[data-method=%q]')`, method)
}

// peer connects a peer and says hello with params.
func peer(t *testing.T, url string, params map[string]any) *bridgetest.Peer {
	t.Helper()
	p := bridgetest.Dial(t, url, nil)
	p.Hello(params)
	return p
}

// request reads from p until a request for method comes.
func request(p *bridgetest.Peer, method string) map[string]any {
	return p.Expect(10*time.Second, func(m map[string]any) bool { return m["method"] == method && m["id"] != nil })
}

// TestStatusPage: the page follows the bridge live, without reload: a
// host's row appears, goes reconnecting when it drops and back when it
// returns; a call shows in flight and goes when answered; a failed call
// shows in the log, which filters by app; the page survives a restart of
// the bridge on the same port. On the way it takes the screenshot of the
// README (docs/status.png, written with BRIDGE_SCREENSHOT=1).
func TestStatusPage(t *testing.T) {
	so := session.Options{ResumeWait: time.Minute, BusyAfter: 1500 * time.Millisecond}
	version := binaryVersion(t) // the README's picture shows the version the binary reports
	first := bridgetest.Start(t, &so, &web.Options{Version: version})
	p := openStatusPage(t, first.URL+"/")
	p.waitJS(10*time.Second, "the page to go live", `document.getElementById('link').dataset.state === 'live'`)
	if v, _ := pageEval[string](p, `document.getElementById('version').textContent + ' ' + document.getElementById('address').textContent`); v != version+" "+first.Addr {
		t.Errorf("version and address shown: %q", v)
	}
	p.waitJS(10*time.Second, "the empty texts once the data came", `document.getElementById('sessions-empty').textContent === 'No panel or tool is connected.'`)

	// A host connects: its row appears, connected.
	aeHello := map[string]any{"app": "aftereffects", "kind": "host", "instance": "ae-7f3a", "boot": "b-1", "replay": true,
		"label": "AYON panel", "version": "1.4.0", "methods": []string{"get_items", "open", "save", "render", "set_context"}}
	ae := peer(t, first.WSURL, aeHello)
	p.waitJS(10*time.Second, "the host's row", rowState("aftereffects", "ae-7f3a")+` === 'connected'`)
	p.waitJS(10*time.Second, "the session count", `document.getElementById('t-sessions').textContent === '1'`)
	// Its methods show on expand.
	p.Do(10*time.Second, chromedp.Click(chromedp.CSS(`#sessions tbody tr[data-instance="ae-7f3a"] button.toggle`)))
	p.waitJS(10*time.Second, "the host's methods", `[].map.call(document.querySelectorAll('#sessions tr.methods .chip'), function (c) { return c.textContent; }).join(' ') === 'aftereffects.get_items aftereffects.open aftereffects.save aftereffects.render aftereffects.set_context'`)

	// It drops: reconnecting; it comes back (same boot): connected, one resume.
	ae.Conn.CloseNow()
	p.waitJS(10*time.Second, "the host reconnecting", rowState("aftereffects", "ae-7f3a")+` === 'reconnecting'`)
	ae = peer(t, first.WSURL, aeHello)
	p.waitJS(10*time.Second, "the host back", rowState("aftereffects", "ae-7f3a")+` === 'connected'`)
	p.waitJS(10*time.Second, "the resume counted", `document.getElementById('t-resumes').textContent === '1'`)
	p.waitJS(10*time.Second, "the state changes in the log",
		`[].some.call(document.querySelectorAll('#log li[data-topic="session.state"]'), function (l) { return /ae-7f3a is reconnecting/.test(l.textContent); })`)

	// A call the host does not answer yet is in flight; answered, it goes.
	tool := peer(t, first.WSURL, map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-1", "label": "publisher", "version": "2.0"})
	tool.Send(map[string]any{"jsonrpc": "2.0", "id": "c1", "method": "aftereffects.get_items", "params": map[string]any{"comps": true},
		"meta": map[string]any{"target": "ae-7f3a"}})
	req := request(ae, "get_items")
	p.waitJS(10*time.Second, "the call in flight", callRow("aftereffects.get_items")+` && `+callRow("aftereffects.get_items")+`.textContent.indexOf('pipeline/pub-1') >= 0`)
	ae.Send(map[string]any{"jsonrpc": "2.0", "id": req["id"], "result": []string{"main"}})
	tool.Expect(10*time.Second, func(m map[string]any) bool { return m["id"] == "c1" })
	p.waitJS(10*time.Second, "the call gone", `!`+callRow("aftereffects.get_items"))

	// A call that fails shows in the log; the log filters by app.
	ps := peer(t, first.WSURL, map[string]any{"app": "photoshop", "kind": "host", "instance": "ps-2", "label": "AYON panel", "version": "1.4.0",
		"methods": []string{"export", "save"}})
	tool.Send(map[string]any{"jsonrpc": "2.0", "id": "c2", "method": "aftereffects.render", "meta": map[string]any{"timeout_ms": 200}})
	p.waitJS(10*time.Second, "the failed call in the log",
		`[].some.call(document.querySelectorAll('#log li[data-topic="bridge.call.failed"]'), function (l) { return /aftereffects\.render/.test(l.textContent) && /-32002/.test(l.textContent); })`)
	filter := func(app string) {
		p.T.Helper()
		if _, err := pageEval[bool](p, fmt.Sprintf(`(function () { var s = document.getElementById('log-app'); s.value = %q; s.dispatchEvent(new Event('change')); return s.value === %q; })()`, app, app)); err != nil {
			t.Fatal(err)
		}
	}
	p.waitJS(10*time.Second, "photoshop in the filter", `[].some.call(document.getElementById('log-app').options, function (o) { return o.value === 'photoshop'; })`)
	filter("photoshop")
	p.waitJS(10*time.Second, "the log filtered to photoshop", `(function () {
		var li = document.querySelectorAll('#log li');
		return li.length > 0 && [].every.call(li, function (l) { return l.dataset.app.split(' ').indexOf('photoshop') >= 0; });
	})()`)
	filter("aftereffects")
	p.waitJS(10*time.Second, "the log filtered to aftereffects", `(function () {
		var li = document.querySelectorAll('#log li');
		return document.querySelector('#log li[data-topic="bridge.call.failed"]') && [].every.call(li, function (l) { return l.dataset.app.split(' ').indexOf('aftereffects') >= 0; });
	})()`)
	filter("")
	// The errors total shows the failed calls in the log, and again every event.
	p.Do(10*time.Second, chromedp.Click(chromedp.CSS(`#errors-card`)))
	p.waitJS(10*time.Second, "only failed calls", `(function () {
		var li = document.querySelectorAll('#log li');
		return li.length > 0 && [].every.call(li, function (l) { return l.dataset.topic === 'bridge.call.failed'; });
	})()`)
	p.Do(10*time.Second, chromedp.Click(chromedp.CSS(`#errors-card`)))
	p.waitJS(10*time.Second, "every event again", `document.querySelector('#log li[data-topic="session.joined"]')`)

	// The filter lists the apps that connected, not a namespace a failed
	// call named.
	tool.Send(map[string]any{"jsonrpc": "2.0", "id": "nope", "method": "nope.thing", "meta": map[string]any{"wait_ms": 0}})
	p.waitJS(10*time.Second, "the failed call to nope.thing in the log",
		`[].some.call(document.querySelectorAll('#log li[data-topic="bridge.call.failed"]'), function (l) { return /nope\.thing/.test(l.textContent); })`)
	p.waitJS(10*time.Second, "the filter without nope", `(function () {
		var v = [].map.call(document.getElementById('log-app').options, function (o) { return o.value; });
		return v.indexOf('nope') < 0 && v.indexOf('pipeline') >= 0 && v.indexOf('photoshop') >= 0;
	})()`)

	// The screenshot: sessions in every state, calls in flight.
	resultOf := func(r map[string]any) {
		t.Helper()
		if r["error"] != nil {
			t.Fatalf("call failed: %v", r["error"])
		}
	}
	tool.Send(map[string]any{"jsonrpc": "2.0", "id": "ctx", "method": "bridge.context", "params": map[string]any{"app": "aftereffects",
		"context": map[string]any{"project": "Heist", "folder": "/shots/sh010", "task": "comp"}}})
	setCtx := request(ae, "set_context")
	ae.Send(map[string]any{"jsonrpc": "2.0", "id": setCtx["id"], "result": true})
	resultOf(tool.Expect(10*time.Second, func(m map[string]any) bool { return m["id"] == "ctx" }))
	blender := peer(t, first.WSURL, map[string]any{"app": "blender", "kind": "host", "instance": "bl-lighting", "boot": "b-9", "replay": true,
		"label": "bridge addon", "version": "4.2", "methods": []string{"render", "open"}})
	maya := peer(t, first.WSURL, map[string]any{"app": "maya", "kind": "host", "instance": "maya-anim-03", "label": "dccbridge shelf", "version": "2025",
		"methods": []string{"open", "export_abc"}})
	_ = maya
	tool.Send(map[string]any{"jsonrpc": "2.0", "id": "c3", "method": "photoshop.export", "params": map[string]any{"psd": "/shots/sh010/comp.psd"}})
	request(ps, "export") // unanswered: photoshop goes busy after 1.5 s
	tool.Send(map[string]any{"jsonrpc": "2.0", "id": "c4", "method": "blender.render", "params": map[string]any{"frames": "1001-1100"}})
	render := request(blender, "render")
	// A long call shows its last progress.
	blender.Send(map[string]any{"jsonrpc": "2.0", "method": "$/progress", "params": map[string]any{"id": render["id"], "value": map[string]any{"frame": 1042}}})
	p.waitJS(10*time.Second, "the render's progress", callRow("blender.render")+` && /1042/.test(`+callRow("blender.render")+`.textContent)`)
	blender.Conn.CloseNow() // its call is parked while it is away
	tool.Send(map[string]any{"jsonrpc": "2.0", "id": "c5", "method": "houdini.cook", "meta": map[string]any{"wait_ms": 60000}})
	p.waitJS(10*time.Second, "photoshop busy", rowState("photoshop", "ps-2")+` === 'busy'`)
	p.waitJS(10*time.Second, "blender reconnecting with a parked call", rowState("blender", "bl-lighting")+` === 'reconnecting' && `+callRow("blender.render")+`.dataset.state === 'parked'`)
	p.waitJS(10*time.Second, "three calls in flight", `document.querySelectorAll('#calls tbody tr').length === 3`)
	p.waitJS(10*time.Second, "the context shown", `/sh010/.test(document.querySelector('#sessions tbody tr[data-instance="ae-7f3a"] td.context').textContent)`)
	if bg, _ := pageEval[string](p, `getComputedStyle(document.body).backgroundColor`); bg != "rgb(244, 246, 248)" {
		t.Errorf("light mode background %q", bg)
	}
	// Readable on a laptop: at 1280 px the tables fit, methods column included.
	if over, _ := pageEval[string](p, `[].filter.call(document.querySelectorAll('.scroll'), function (s) { return s.scrollWidth > s.clientWidth; }).map(function (s) { return s.firstElementChild.id + ' ' + s.scrollWidth + '>' + s.clientWidth; }).join(', ')`); over != "" {
		t.Errorf("tables wider than the 1280 px window: %s", over)
	}
	p.Do(10*time.Second, chromedp.MouseEvent(input.DispatchMouseEventTypeMouseMoved, 1, 1)) // no hover highlight in the picture
	shot := screenshotPath(t)
	p.Do(10*time.Second, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		png, err := chromedp.FullScreenshot(100)(ctx, tg)
		if err != nil {
			return err
		}
		if len(png) < 10_000 {
			return fmt.Errorf("screenshot of %d bytes: the page did not render", len(png))
		}
		return os.WriteFile(shot, png, 0o644)
	}))
	// Dark mode follows the system.
	p.Do(10*time.Second, colorScheme("dark"))
	if bg, _ := pageEval[string](p, `getComputedStyle(document.body).backgroundColor`); bg != "rgb(14, 17, 21)" {
		t.Errorf("dark mode background %q", bg)
	}
	p.Do(10*time.Second, colorScheme("light"))

	// The bridge restarts on the same port: the page shows it unreachable,
	// then recovers by itself and shows the new bridge's sessions.
	first.Stop()
	p.waitJS(10*time.Second, "the page offline", `document.getElementById('link').dataset.state === 'offline'`)
	second := bridgetest.StartOn(t, first.Addr, &so, &web.Options{Version: "0.4.0"})
	peer(t, second.WSURL, map[string]any{"app": "houdini", "kind": "host", "instance": "hou-fx-1", "methods": []string{"cook"}})
	p.waitJS(20*time.Second, "the new bridge's host", rowState("houdini", "hou-fx-1")+` === 'connected'`)
	p.waitJS(10*time.Second, "only the new bridge's sessions", `document.querySelectorAll('#sessions tbody tr[data-app]').length === 1`)
	p.waitJS(10*time.Second, "the page live again", `document.getElementById('link').dataset.state === 'live'`)
	p.waitJS(10*time.Second, "the restart in the log, then the new bridge's events", `(function () {
		var li = document.querySelectorAll('#log li');
		return li.length >= 2 && li[1].dataset.topic === 'local.restarted' && li[0].dataset.topic === 'session.joined' && /hou-fx-1/.test(li[0].textContent);
	})()`)
	if n, _ := pageEval[string](p, `document.getElementById('t-calls').textContent`); n != "0" {
		t.Errorf("calls on the new bridge: %s", n)
	}
}

// TestStatusPageToken: with the token in force, the page asks for it once,
// then works (polls with Authorization: Bearer, the event stream with
// ?token=) and keeps it for the tab across a reload.
func TestStatusPageToken(t *testing.T) {
	const token = "page-token-1"
	b := bridgetest.Start(t, nil, &web.Options{Token: token, TokenInForce: true})
	p := openStatusPage(t, b.URL+"/")
	p.waitJS(10*time.Second, "the token prompt", `!document.getElementById('token-box').hidden && document.getElementById('link').dataset.state === 'token'`)
	// While it waits for the token, the page says so: it never claims that
	// nothing is connected before it has seen the data. It says where the
	// token is, as the bridge tells it.
	p.waitJS(10*time.Second, "the waiting texts", `['sessions-empty', 'calls-empty', 'log-empty'].every(function (id) {
		return /Waiting for the token/.test(document.getElementById(id).textContent);
	}) && /bridge token/.test(document.getElementById('token-why').textContent)`)
	p.Do(10*time.Second,
		chromedp.SendKeys(chromedp.CSS(`#token-input`), token),
		chromedp.Click(chromedp.CSS(`#token-box button`)))
	p.waitJS(10*time.Second, "the page live", `document.getElementById('token-box').hidden && document.getElementById('link').dataset.state === 'live'`)
	h := bridgetest.Dial(t, b.WSURL+"?token="+token, nil)
	h.Hello(map[string]any{"app": "premiere", "instance": "pr-1"})
	p.waitJS(10*time.Second, "the row", rowState("premiere", "pr-1")+` === 'connected'`)
	p.waitJS(10*time.Second, "the event through the stream", `document.querySelector('#log li[data-topic="session.joined"]')`)
	if s, _ := pageEval[string](p, `document.getElementById('token-state').textContent`); s != "in force" {
		t.Errorf("token state shown: %q", s)
	}

	p.Do(30*time.Second, chromedp.Reload())
	p.waitJS(10*time.Second, "the page live after a reload, without asking", `document.getElementById('token-box').hidden && document.getElementById('link').dataset.state === 'live' && `+rowState("premiere", "pr-1")+` === 'connected'`)

	// A wrong token kept from before (the bridge restarted with another):
	// the page asks again.
	if _, err := pageEval[bool](p, `sessionStorage.setItem('dccbridge.token', 'stale'), true`); err != nil {
		t.Fatal(err)
	}
	p.Do(30*time.Second, chromedp.Reload())
	p.waitJS(10*time.Second, "the prompt again", `!document.getElementById('token-box').hidden && /refused/.test(document.getElementById('token-why').textContent)`)
	if n, _ := pageEval[string](p, `String(document.querySelectorAll('#sessions tbody tr').length)`); n != "0" {
		t.Errorf("rows shown without a valid token: %s", n)
	}
}

// binaryVersion is the version cmd/bridge reports (its version variable).
func binaryVersion(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../cmd/bridge/main.go")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`var version = "([^"]+)"`).FindSubmatch(b)
	if m == nil {
		t.Fatal("cmd/bridge/main.go has no version variable")
	}
	return string(m[1])
}
