package session_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/coder/websocket"

	"github.com/dccbridge/dccbridge/internal/bridgetest"
	"github.com/dccbridge/dccbridge/session"
	"github.com/dccbridge/dccbridge/web"
)

// When a panel drops or stalls (DESIGN §4): busy sessions routed around,
// reconnecting sessions with parked calls, same-boot resume re-sending them
// with the same forwarded id, new boots and non-replay clients told -32004
// may_have_run, replies held for replay callers, and the resume wait
// against the call's own timeout. Real sockets on 127.0.0.1 with
// millisecond-scale options, except the timer paths, which run in synctest
// bubbles over net.Pipe (DESIGN §7).

// ---- helpers ----

// rsWait bounds every wait for a message that must come.
const rsWait = 5 * time.Second

// rsStart serves a bridge whose logs feed a logWatch.
func rsStart(t *testing.T, so session.Options) (*bridgetest.Bridge, *logWatch) {
	t.Helper()
	logs, logger := newLogWatch(t)
	so.Logger = logger
	return bridgetest.Start(t, &so, &web.Options{Logger: logger}), logs
}

// next reads p's next message, whatever it is, failing the test when none
// comes.
func (p *rawPeer) next() map[string]any {
	p.t.Helper()
	m, err := p.read(rsWait)
	if err != nil {
		p.t.Fatalf("waiting for a message: %v", err)
	}
	return m
}

// helloFirst says bridge.hello and requires the very next message to be
// its result, which it returns.
func (p *rawPeer) helloFirst(params map[string]any) map[string]any {
	p.t.Helper()
	p.send(map[string]any{"jsonrpc": "2.0", "id": "hello", "method": "bridge.hello", "params": params})
	m := p.next()
	res, ok := m["result"].(map[string]any)
	if m["id"] != "hello" || !ok {
		p.t.Fatalf("want the hello result first, got %v", m)
	}
	return res
}

// nextCall reads p's next message and requires it to be a forwarded call
// of method with attempt; it returns the forwarded id and the params.
func (p *rawPeer) nextCall(method string, attempt int) (fid string, params map[string]any) {
	p.t.Helper()
	m := p.next()
	fid, _ = m["id"].(string)
	meta, _ := m["meta"].(map[string]any)
	if fid == "" || m["method"] != method || meta == nil || meta["attempt"] != float64(attempt) {
		p.t.Fatalf("want call %s attempt %d, got %v", method, attempt, m)
	}
	params, _ = m["params"].(map[string]any)
	return fid, params
}

// answer sends the result of the forwarded call fid.
func (p *rawPeer) answer(fid string, result any) {
	p.t.Helper()
	p.send(map[string]any{"jsonrpc": "2.0", "id": fid, "result": result})
}

// replies reads p's messages until it has the replies to every id (in any
// order; requests and events in between are skipped) and returns them by id.
func replies(t *testing.T, p *bridgetest.Peer, ids ...string) map[string]map[string]any {
	t.Helper()
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	got := map[string]map[string]any{}
	deadline := time.Now().Add(rsWait)
	for len(got) < len(want) {
		left := time.Until(deadline)
		if left <= 0 {
			t.Fatalf("replies: got %v, want %v", got, ids)
		}
		var m map[string]any
		if err := json.Unmarshal(p.ReadRaw(left), &m); err != nil {
			continue
		}
		if id, ok := m["id"].(string); ok && m["method"] == nil && want[id] {
			if got[id] != nil {
				t.Fatalf("a second reply to %q: %v", id, m)
			}
			got[id] = m
		}
	}
	return got
}

// reply returns the reply to id, skipping other messages.
func reply(t *testing.T, p *bridgetest.Peer, id string) map[string]any {
	t.Helper()
	return replies(t, p, id)[id]
}

// wantMayHaveRun requires reply to be -32004 with may_have_run true about
// method of instance.
func wantMayHaveRun(t *testing.T, reply map[string]any, instance, method string) {
	t.Helper()
	code, data := rpcError(t, reply)
	if code != -32004 || data["may_have_run"] != true || data["instance"] != instance || data["method"] != method {
		t.Fatalf("want -32004 may_have_run for %s on %s, got %v", method, instance, reply)
	}
}

// sessionOf returns what bridge.sessions says of app's instance (nil when
// it is not listed).
func sessionOf(t *testing.T, p *bridgetest.Peer, app, instance string) map[string]any {
	t.Helper()
	r := p.Call("sessions-"+instance, "bridge.sessions", map[string]any{"app": app})
	list, ok := r["result"].([]any)
	if !ok {
		t.Fatalf("bridge.sessions: %v", r)
	}
	for _, s := range list {
		if s := s.(map[string]any); s["instance"] == instance {
			return s
		}
	}
	return nil
}

// wantState requires app's instance to be listed by bridge.sessions with
// state, in_flight and parked.
func wantState(t *testing.T, p *bridgetest.Peer, app, instance, state string, inFlight, parked int) {
	t.Helper()
	s := sessionOf(t, p, app, instance)
	if s == nil || s["state"] != state || s["in_flight"] != float64(inFlight) || s["parked"] != float64(parked) {
		t.Fatalf("bridge.sessions for %s %s: %v, want state %s, in_flight %d, parked %d", app, instance, s, state, inFlight, parked)
	}
}

// stateEvent waits for the session.state event of instance with state and
// returns its data.
func stateEvent(t *testing.T, watch *bridgetest.Peer, instance, state string) map[string]any {
	t.Helper()
	m := watch.Expect(rsWait, func(m map[string]any) bool {
		p, _ := m["params"].(map[string]any)
		d, _ := p["data"].(map[string]any)
		return m["method"] == "bridge.event" && p["topic"] == "session.state" && d["instance"] == instance && d["state"] == state
	})
	return m["params"].(map[string]any)["data"].(map[string]any)
}

// dedupeHost is what a replay client does: it runs each forwarded id once,
// keeps the result, and answers a re-sent call from what it kept. It counts
// runs per logical call (params.n).
type dedupeHost struct {
	runs  map[int]int
	cache map[string]map[string]any
}

func (h *dedupeHost) run(fid string, params map[string]any) map[string]any {
	if res, ok := h.cache[fid]; ok {
		return res
	}
	n := int(params["n"].(float64))
	h.runs[n]++
	res := map[string]any{"n": n, "saved": true}
	h.cache[fid] = res
	return res
}

// ---- 1. drop and resume, many times ----

// A replay host's connection is cut (no close frame) while a call runs, 100
// times; each time it comes back with the same instance and boot, is told
// resumed with one pending call, gets that call again right after the hello
// result with the same forwarded id and attempt 2, answers it from its
// cache, and the tool gets the result. No call is lost, none runs twice.
// Every other cycle the host reconnects before the bridge has noticed the
// drop, so the new hello replaces a connection the bridge still thinks
// live; the others wait until it is reconnecting.
func TestResumeDropCyclesRunOnce(t *testing.T) {
	b, logs := rsStart(t, session.Options{ResumeWait: 5 * time.Second})
	tool := bridgetest.Dial(t, b.WSURL, nil)
	tool.Hello(map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-1"})
	hello := map[string]any{"app": "aftereffects", "instance": "ae-1", "boot": "b-1", "replay": true, "methods": []string{"save"}}
	host := dialRaw(t, b.WSURL, nil)
	if res := host.helloFirst(hello); res["resumed"] != false || res["pending"] != float64(0) {
		t.Fatalf("first hello: %v", res)
	}
	sid := sessionOf(t, tool, "aftereffects", "ae-1")["session"].(string)

	h := &dedupeHost{runs: map[int]int{}, cache: map[string]map[string]any{}}
	const cycles = 100
	for i := range cycles {
		id := fmt.Sprintf("save-%d", i)
		tool.Send(map[string]any{"jsonrpc": "2.0", "id": id, "method": "aftereffects.save", "params": map[string]any{"n": i}})
		fid, params := host.nextCall("save", 1)
		h.run(fid, params) // it runs; the reply never leaves
		_ = host.conn.CloseNow()
		if i%2 == 0 {
			logs.wait(t, rsWait, "session state", "session", sid, "state", "reconnecting")
		}

		host = dialRaw(t, b.WSURL, nil)
		res := host.helloFirst(hello)
		if res["resumed"] != true || res["pending"] != float64(1) {
			t.Fatalf("cycle %d: hello result %v, want resumed with 1 pending", i, res)
		}
		sid = res["session"].(string)
		again, params := host.nextCall("save", 2)
		if again != fid {
			t.Fatalf("cycle %d: re-sent with forwarded id %q, first sent as %q", i, again, fid)
		}
		host.answer(again, h.run(again, params))
		r := reply(t, tool, id)
		if res, _ := r["result"].(map[string]any); res["n"] != float64(i) || res["saved"] != true {
			t.Fatalf("cycle %d: tool got %v", i, r)
		}
	}
	for i := range cycles {
		if h.runs[i] != 1 {
			t.Fatalf("call %d ran %d times", i, h.runs[i])
		}
	}
	if len(h.runs) != cycles {
		t.Fatalf("%d calls ran, want %d", len(h.runs), cycles)
	}
	wantState(t, tool, "aftereffects", "ae-1", "connected", 0, 0)
	rtQuiet(t, tool)
}

// ---- 2. new boot ----

// The host comes back as a new boot (reloaded: its cache is gone): the call
// it had received fails -32004 may_have_run as the new hello arrives, long
// before the resume wait would end; an idempotent call is re-sent to the new
// boot instead.
func TestResumeNewBootMayHaveRun(t *testing.T) {
	b, logs := rsStart(t, session.Options{ResumeWait: time.Minute})
	tool := bridgetest.Dial(t, b.WSURL, nil)
	tool.Hello(map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-1"})
	hello := map[string]any{"app": "aftereffects", "instance": "ae-1", "boot": "b-1", "replay": true, "methods": []string{"save", "get_items"}}
	host := dialRaw(t, b.WSURL, nil)
	sid := host.helloFirst(hello)["session"].(string)

	tool.Send(`{"jsonrpc":"2.0","id":"save","method":"aftereffects.save"}`)
	saveFID, _ := host.nextCall("save", 1)
	tool.Send(`{"jsonrpc":"2.0","id":"items","method":"aftereffects.get_items","meta":{"idempotent":true}}`)
	itemsFID, _ := host.nextCall("get_items", 1)
	_ = host.conn.CloseNow()
	logs.wait(t, rsWait, "session state", "session", sid, "state", "reconnecting")
	wantState(t, tool, "aftereffects", "ae-1", "reconnecting", 0, 2) // both parked, neither failed yet

	hello["boot"] = "b-2"
	host = dialRaw(t, b.WSURL, nil)
	if res := host.helloFirst(hello); res["resumed"] != false || res["pending"] != float64(1) {
		t.Fatalf("hello of the new boot: %v, want not resumed, 1 pending", res)
	}
	again, _ := host.nextCall("get_items", 2)
	if again != itemsFID {
		t.Fatalf("idempotent call re-sent as %q, first sent as %q", again, itemsFID)
	}
	wantMayHaveRun(t, reply(t, tool, "save"), "ae-1", "aftereffects.save")
	host.answer(again, []string{"comp 1"})
	if r := reply(t, tool, "items"); r["result"] == nil {
		t.Fatalf("idempotent call after the new boot: %v", r)
	}
	// The new boot never gets save.
	tool.Send(`{"jsonrpc":"2.0","id":"save2","method":"aftereffects.save"}`)
	if fid, _ := host.nextCall("save", 1); fid == saveFID {
		t.Fatalf("the failed save was re-sent to the new boot")
	}
	rtQuiet(t, tool)
}

// ---- 3. non-replay host ----

// A host that does not replay: a written non-idempotent call fails -32004
// may_have_run as soon as it drops, and is never sent to it again when it
// comes back (same boot); an idempotent call waits and is re-sent.
func TestResumeNonReplayHostFailsAtOnce(t *testing.T) {
	b, _ := rsStart(t, session.Options{ResumeWait: time.Minute})
	tool := bridgetest.Dial(t, b.WSURL, nil)
	tool.Hello(map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-1"})
	hello := map[string]any{"app": "aftereffects", "instance": "ae-1", "boot": "b-1", "methods": []string{"save", "get_items"}}
	host := dialRaw(t, b.WSURL, nil)
	host.helloFirst(hello)

	tool.Send(`{"jsonrpc":"2.0","id":"save","method":"aftereffects.save"}`)
	saveFID, _ := host.nextCall("save", 1)
	tool.Send(`{"jsonrpc":"2.0","id":"items","method":"aftereffects.get_items","meta":{"idempotent":true}}`)
	itemsFID, _ := host.nextCall("get_items", 1)
	_ = host.conn.CloseNow()
	wantMayHaveRun(t, reply(t, tool, "save"), "ae-1", "aftereffects.save")
	wantState(t, tool, "aftereffects", "ae-1", "reconnecting", 0, 1)

	host = dialRaw(t, b.WSURL, nil)
	if res := host.helloFirst(hello); res["resumed"] != true || res["pending"] != float64(1) {
		t.Fatalf("hello after the drop: %v, want resumed, 1 pending (the idempotent call)", res)
	}
	again, _ := host.nextCall("get_items", 2)
	if again != itemsFID {
		t.Fatalf("idempotent call re-sent as %q, first sent as %q", again, itemsFID)
	}
	// The next thing the host gets is a new call, not the failed save.
	tool.Send(`{"jsonrpc":"2.0","id":"save2","method":"aftereffects.save"}`)
	save2FID, _ := host.nextCall("save", 1)
	if save2FID == saveFID {
		t.Fatalf("the failed save was re-sent")
	}
	host.answer(again, []string{"comp 1"})
	host.answer(save2FID, "saved")
	got := replies(t, tool, "items", "save2")
	if got["items"]["result"] == nil || got["save2"]["result"] != "saved" {
		t.Fatalf("after the reconnect: %v", got)
	}
	rtQuiet(t, tool)
}

// ---- 4. busy ----

// Instance A gets a long call and sends nothing for BusyAfter: it is busy
// (bridge.sessions and a session.state event say so), untargeted calls go
// to instance B, a call only A offers and a call targeted at A wait, events
// for A are dropped and counted. A's next message (the long call's answer)
// makes it connected again, the waiting calls go to it, and untargeted calls
// come back to it.
func TestBusyRoutedAroundThenBack(t *testing.T) {
	b, _ := rsStart(t, session.Options{BusyAfter: 100 * time.Millisecond})
	watch := bridgetest.Dial(t, b.WSURL, nil)
	watch.Hello(map[string]any{"app": "monitor", "kind": "tool", "instance": "mon-1"})
	if r := watch.Call("sub", "bridge.subscribe", map[string]any{"topics": []string{"session.state"}}); r["result"] == nil {
		t.Fatalf("subscribe: %v", r)
	}
	tool := bridgetest.Dial(t, b.WSURL, nil)
	tool.Hello(map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-1"})
	startEchoHost(t, b.WSURL, "aftereffects", "ae-b", "whoami")
	a := dialRaw(t, b.WSURL, nil)
	a.helloFirst(map[string]any{"app": "aftereffects", "instance": "ae-a", "methods": []string{"whoami", "render", "export"}})
	if r := a.call("sub", "bridge.subscribe", map[string]any{"topics": []string{"news"}}); r["result"] == nil {
		t.Fatalf("subscribe: %v", r)
	}

	// A spoke last, so an untargeted call goes to A.
	tool.Send(`{"jsonrpc":"2.0","id":"w1","method":"aftereffects.whoami"}`)
	fid, _ := a.nextCall("whoami", 1)
	a.answer(fid, map[string]any{"instance": "ae-a"})
	if r := reply(t, tool, "w1"); r["meta"].(map[string]any)["instance"] != "ae-a" {
		t.Fatalf("whoami before the long call: %v", r)
	}
	// Had A been slow enough to look busy already, those state events are
	// queued before this pong: the watch skips them here.
	watch.Call("sync", "bridge.ping", nil)

	tool.Send(`{"jsonrpc":"2.0","id":"long","method":"aftereffects.render"}`)
	longFID, _ := a.nextCall("render", 1)
	if d := stateEvent(t, watch, "ae-a", "busy"); d["in_flight"] != float64(1) {
		t.Fatalf("session.state busy: %v", d)
	}
	wantState(t, tool, "aftereffects", "ae-a", "busy", 1, 0)
	wantState(t, tool, "aftereffects", "ae-b", "connected", 0, 0)

	for i := range 3 {
		id := fmt.Sprintf("w-busy-%d", i)
		tool.Send(map[string]any{"jsonrpc": "2.0", "id": id, "method": "aftereffects.whoami"})
		if r := reply(t, tool, id); r["meta"].(map[string]any)["instance"] != "ae-b" {
			t.Fatalf("untargeted whoami while A is busy: %v", r)
		}
	}
	if r := tool.Call("pub", "bridge.publish", map[string]any{"topic": "news", "data": 1}); r["result"].(map[string]any)["delivered"] != float64(0) {
		t.Fatalf("publish to busy A: %v", r)
	}
	if s := sessionOf(t, tool, "aftereffects", "ae-a"); s["dropped_events"] != float64(1) {
		t.Fatalf("busy A's dropped_events: %v", s)
	}
	tool.Send(`{"jsonrpc":"2.0","id":"targeted","method":"aftereffects.whoami","meta":{"target":"ae-a","wait_ms":30000}}`)
	tool.Send(`{"jsonrpc":"2.0","id":"export","method":"aftereffects.export","meta":{"wait_ms":30000}}`)
	wantState(t, tool, "aftereffects", "ae-a", "busy", 1, 0) // both wait in the bridge

	// A answers the long call: connected again, and the waiting calls go.
	a.answer(longFID, "rendered")
	stateEvent(t, watch, "ae-a", "connected")
	got := map[string]string{}
	for range 2 {
		m := a.next()
		fid, _ := m["id"].(string)
		method, _ := m["method"].(string)
		if fid == "" || (method != "whoami" && method != "export") || got[method] != "" {
			t.Fatalf("A after answering: %v", m)
		}
		got[method] = fid
	}
	a.answer(got["whoami"], map[string]any{"instance": "ae-a"})
	a.answer(got["export"], "exported")
	rs := replies(t, tool, "long", "targeted", "export")
	if rs["long"]["result"] != "rendered" || rs["export"]["result"] != "exported" ||
		rs["targeted"]["meta"].(map[string]any)["instance"] != "ae-a" {
		t.Fatalf("after A is back: %v", rs)
	}

	// A spoke last again: untargeted calls come back to it.
	tool.Send(`{"jsonrpc":"2.0","id":"w2","method":"aftereffects.whoami"}`)
	fid, _ = a.nextCall("whoami", 1)
	a.answer(fid, map[string]any{"instance": "ae-a"})
	if r := reply(t, tool, "w2"); r["meta"].(map[string]any)["instance"] != "ae-a" {
		t.Fatalf("whoami after A is back: %v", r)
	}
	rtQuiet(t, tool)
}

// ---- 5. wait for the panel ----

// A call made before the panel has connected waits (meta.wait_ms) and goes
// through when the panel says hello.
func TestWaitForPanel(t *testing.T) {
	b, _ := rsStart(t, session.Options{})
	tool := bridgetest.Dial(t, b.WSURL, nil)
	tool.Hello(map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-1"})
	tool.Send(`{"jsonrpc":"2.0","id":"open","method":"aftereffects.open","params":{"path":"a.aep"},"meta":{"wait_ms":30000}}`)
	rtQuiet(t, tool) // the call is waiting now

	host := dialRaw(t, b.WSURL, nil)
	host.helloFirst(map[string]any{"app": "aftereffects", "instance": "ae-1", "boot": "b-1", "replay": true, "methods": []string{"open"}})
	fid, params := host.nextCall("open", 1)
	if params["path"] != "a.aep" {
		t.Fatalf("params %v", params)
	}
	host.answer(fid, "opened")
	if r := reply(t, tool, "open"); r["result"] != "opened" {
		t.Fatalf("waited call: %v", r)
	}
}

// ---- 6. resume wait against the call's timeout (fake time) ----

// pipeBridge is a bridge served over net.Pipe inside a synctest bubble.
type pipeBridge struct {
	t      *testing.T
	r      *session.Router
	ln     *pipeListener
	web    *web.Server
	srv    *http.Server
	served chan struct{}
	tr     *http.Transport
	client *http.Client
	peers  []*pipePeer
	logs   *logWatch
}

func startPipeBridge(t *testing.T, opts session.Options) *pipeBridge {
	logs, logger := newLogWatch(t)
	opts.Logger = logger
	b := &pipeBridge{t: t, r: session.New(opts), ln: newPipeListener(), served: make(chan struct{}), logs: logs}
	b.web = web.New(web.Options{Router: b.r, Addr: "127.0.0.1:8098", Logger: logger})
	b.srv = &http.Server{Handler: b.web}
	go func() { _ = b.srv.Serve(b.ln); close(b.served) }()
	b.tr = &http.Transport{DialContext: b.ln.dial}
	b.client = &http.Client{Transport: b.tr}
	return b
}

// close shuts the bridge down and ends every peer, so that the bubble has
// no goroutine left.
func (b *pipeBridge) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.r.Shutdown(ctx); err != nil {
		b.t.Errorf("shutdown: %v", err)
	}
	for _, p := range b.peers {
		p.drop()
	}
	b.web.Close()
	_ = b.srv.Close()
	<-b.served
	b.tr.CloseIdleConnections()
}

// pipePeer is a websocket peer over net.Pipe whose reader hands every
// message to in.
type pipePeer struct {
	t    *testing.T
	conn *websocket.Conn
	in   chan map[string]any
	done chan struct{}
}

// dial connects a peer and says hello; it returns the hello result.
func (b *pipeBridge) dial(hello map[string]any) (*pipePeer, map[string]any) {
	b.t.Helper()
	conn, _, err := websocket.Dial(context.Background(), "ws://127.0.0.1:8098/ws", &websocket.DialOptions{HTTPClient: b.client})
	if err != nil {
		b.t.Fatalf("dial: %v", err)
	}
	p := &pipePeer{t: b.t, conn: conn, in: make(chan map[string]any, 100), done: make(chan struct{})}
	b.peers = append(b.peers, p)
	go func() {
		defer close(p.done)
		for {
			_, data, err := conn.Read(context.Background())
			if err != nil {
				return
			}
			var m map[string]any
			if json.Unmarshal(data, &m) == nil {
				p.in <- m
			}
		}
	}()
	p.send(map[string]any{"jsonrpc": "2.0", "id": "hello", "method": "bridge.hello", "params": hello})
	m := p.next()
	res, ok := m["result"].(map[string]any)
	if m["id"] != "hello" || !ok {
		b.t.Fatalf("want the hello result, got %v", m)
	}
	return p, res
}

func (p *pipePeer) send(v any) {
	p.t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		p.t.Fatal(err)
	}
	if err := p.conn.Write(context.Background(), websocket.MessageText, data); err != nil {
		p.t.Fatalf("send: %v", err)
	}
}

// next returns the next message, failing after a minute of fake time.
func (p *pipePeer) next() map[string]any {
	p.t.Helper()
	select {
	case m := <-p.in:
		return m
	case <-time.After(time.Minute):
		p.t.Fatalf("no message within a minute")
		return nil
	}
}

// arrived returns the message that has arrived, without letting fake time
// pass; call it after synctest.Wait.
func (p *pipePeer) arrived() map[string]any {
	p.t.Helper()
	select {
	case m := <-p.in:
		return m
	default:
		p.t.Fatalf("at %v: nothing has arrived", time.Now().Format("15:04:05.000"))
		return nil
	}
}

// none requires that nothing has arrived; call it after synctest.Wait.
func (p *pipePeer) none() {
	p.t.Helper()
	select {
	case m := <-p.in:
		p.t.Fatalf("at %v: unexpected %v", time.Now().Format("15:04:05.000"), m)
	default:
	}
}

// drop cuts the connection without a close frame and waits for the reader.
func (p *pipePeer) drop() {
	_ = p.conn.CloseNow()
	<-p.done
}

// stateOf returns the router's view of instance, or nil.
func (b *pipeBridge) stateOf(instance string) *session.SessionInfo {
	for _, s := range b.r.Sessions() {
		if s.Instance == instance {
			return &s
		}
	}
	return nil
}

// sleepUntil advances fake time to at and lets the bubble settle.
func sleepUntil(at time.Time) {
	time.Sleep(time.Until(at))
	synctest.Wait()
}

// A parked call of a replay host that never comes back fails -32004
// may_have_run when ResumeWait (30 s) runs out, not a millisecond before,
// and the session leaves the list; a call whose own timeout (10 s) runs out
// first fails -32002 then, and is not re-sent when the host comes back.
func TestResumeWaitExpiryVersusCallTimeout(t *testing.T) {
	hostHello := map[string]any{"app": "aftereffects", "instance": "ae-1", "boot": "b-1", "replay": true, "methods": []string{"save"}}
	toolHello := map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-1"}

	t.Run("resume wait runs out", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := startPipeBridge(t, session.Options{ResumeWait: 30 * time.Second})
			defer b.close()
			tool, _ := b.dial(toolHello)
			host, _ := b.dial(hostHello)
			tool.send(map[string]any{"jsonrpc": "2.0", "id": "save", "method": "aftereffects.save"})
			if m := host.next(); m["method"] != "save" {
				t.Fatalf("host got %v", m)
			}
			host.drop()
			synctest.Wait()
			dropped := time.Now()
			if s := b.stateOf("ae-1"); s == nil || s.State != session.StateReconnecting || s.Parked != 1 {
				t.Fatalf("after the drop: %+v", s)
			}

			sleepUntil(dropped.Add(30*time.Second - time.Millisecond))
			tool.none()
			if s := b.stateOf("ae-1"); s == nil || s.Parked != 1 {
				t.Fatalf("at 29.999 s: %+v", s)
			}
			sleepUntil(dropped.Add(30*time.Second + time.Millisecond))
			r := tool.arrived()
			e, _ := r["error"].(map[string]any)
			d, _ := e["data"].(map[string]any)
			if r["id"] != "save" || e["code"] != float64(-32004) || d["may_have_run"] != true || d["instance"] != "ae-1" {
				t.Fatalf("at 30.001 s: %v, want -32004 may_have_run", r)
			}
			if s := b.stateOf("ae-1"); s != nil {
				t.Fatalf("after the resume wait: still listed %+v", s)
			}
		})
	})

	t.Run("call timeout runs out first", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := startPipeBridge(t, session.Options{ResumeWait: 30 * time.Second})
			defer b.close()
			tool, _ := b.dial(toolHello)
			host, _ := b.dial(hostHello)
			tool.send(map[string]any{"jsonrpc": "2.0", "id": "save", "method": "aftereffects.save", "meta": map[string]any{"timeout_ms": 10000}})
			sent := time.Now()
			m := host.next()
			if m["method"] != "save" {
				t.Fatalf("host got %v", m)
			}
			time.Sleep(time.Second)
			host.drop()
			synctest.Wait()

			sleepUntil(sent.Add(10*time.Second - time.Millisecond))
			tool.none()
			sleepUntil(sent.Add(10*time.Second + time.Millisecond))
			r := tool.arrived()
			e, _ := r["error"].(map[string]any)
			if r["id"] != "save" || e["code"] != float64(-32002) {
				t.Fatalf("at 10.001 s: %v, want -32002", r)
			}
			if s := b.stateOf("ae-1"); s == nil || s.State != session.StateReconnecting || s.Parked != 0 {
				t.Fatalf("after the timeout: %+v, want reconnecting with nothing parked", s)
			}

			// Back with the same boot within the resume wait: nothing to
			// re-send, but the host is told the timed-out call is
			// cancelled (DESIGN §3.4); then it gets a new call.
			time.Sleep(time.Second)
			host, res := b.dial(hostHello)
			if res["resumed"] != true || res["pending"] != float64(0) {
				t.Fatalf("hello after the timeout: %v", res)
			}
			if c := host.next(); c["method"] != "$/cancelRequest" || c["params"].(map[string]any)["id"] != m["id"] {
				t.Fatalf("host got %v, want $/cancelRequest for the timed-out %v", c, m["id"])
			}
			tool.send(map[string]any{"jsonrpc": "2.0", "id": "save2", "method": "aftereffects.save"})
			if again := host.next(); again["method"] != "save" || again["id"] == m["id"] {
				t.Fatalf("host got %v, want a new call (the timed-out one was %v)", again, m["id"])
			}
		})
	})

	t.Run("replay caller does not come back", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := startPipeBridge(t, session.Options{ResumeWait: 30 * time.Second})
			defer b.close()
			host, _ := b.dial(hostHello)
			tool, _ := b.dial(map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-1", "boot": "t-1", "replay": true})
			tool.send(map[string]any{"jsonrpc": "2.0", "id": "save", "method": "aftereffects.save"})
			m := host.next()
			tool.drop()
			synctest.Wait()
			dropped := time.Now()
			sleepUntil(dropped.Add(30*time.Second - time.Millisecond))
			host.none() // its call stays alive while the caller may come back
			sleepUntil(dropped.Add(30*time.Second + time.Millisecond))
			c := host.arrived()
			p, _ := c["params"].(map[string]any)
			if c["method"] != "$/cancelRequest" || p["id"] != m["id"] {
				t.Fatalf("host got %v, want $/cancelRequest for %v", c, m["id"])
			}
		})
	})
}

// ---- 7. replay caller ----

// A replay panel's own call is in flight when its connection drops; the
// callee answers while it is away; the panel comes back with the same boot
// and gets the reply, with its own id, right after its hello result; a
// second call answered after it is back reaches it too. A non-replay
// caller that drops has its call cancelled at the host.
func TestReplayCallerGetsReplyAfterReconnect(t *testing.T) {
	b, logs := rsStart(t, session.Options{ResumeWait: time.Minute})
	pub := dialRaw(t, b.WSURL, nil)
	pubSID := pub.helloFirst(map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-1", "methods": []string{"publish"}})["session"].(string)
	hello := map[string]any{"app": "aftereffects", "instance": "ae-1", "boot": "b-1", "replay": true}
	panel := dialRaw(t, b.WSURL, nil)
	sid := panel.helloFirst(hello)["session"].(string)

	panel.send(`{"jsonrpc":"2.0","id":"p1","method":"pipeline.publish","params":{"n":1}}`)
	panel.send(`{"jsonrpc":"2.0","id":"p2","method":"pipeline.publish","params":{"n":2}}`)
	fids := map[float64]string{}
	for range 2 {
		fid, params := pub.nextCall("publish", 1)
		fids[params["n"].(float64)] = fid
	}
	_ = panel.conn.CloseNow()
	logs.wait(t, rsWait, "session state", "session", sid, "state", "reconnecting")
	pub.answer(fids[1], "published 1") // held for the panel

	panel = dialRaw(t, b.WSURL, nil)
	if res := panel.helloFirst(hello); res["resumed"] != true || res["pending"] != float64(0) {
		t.Fatalf("panel's hello: %v", res)
	}
	m := panel.next()
	meta, _ := m["meta"].(map[string]any)
	if m["id"] != "p1" || m["result"] != "published 1" || meta["session"] != pubSID {
		t.Fatalf("panel after its hello: %v, want the held reply to p1", m)
	}
	pub.answer(fids[2], "published 2")
	if m := panel.next(); m["id"] != "p2" || m["result"] != "published 2" {
		t.Fatalf("panel: %v, want the reply to p2", m)
	}

	// A caller that does not replay: its call is cancelled at the host.
	other := dialRaw(t, b.WSURL, nil)
	other.helloFirst(map[string]any{"app": "photoshop", "instance": "ps-1", "boot": "b-1"})
	other.send(`{"jsonrpc":"2.0","id":"p3","method":"pipeline.publish","params":{"n":3}}`)
	fid, _ := pub.nextCall("publish", 1)
	_ = other.conn.CloseNow()
	c := pub.next()
	if p, _ := c["params"].(map[string]any); c["method"] != "$/cancelRequest" || p["id"] != fid {
		t.Fatalf("host after the non-replay caller dropped: %v, want $/cancelRequest for %s", c, fid)
	}
}

// ---- 8. parked calls are shown ----

// While a replay host is away, bridge.sessions, GET /api/sessions and the
// session.state event show it reconnecting with its calls parked; a parked
// call the caller cancels is not re-sent; a new call to the app waits (even
// though another session offers a method in the app's namespace), and goes
// to the host after the parked calls when it is back.
func TestParkedCallsShown(t *testing.T) {
	b, _ := rsStart(t, session.Options{ResumeWait: time.Minute})
	watch := bridgetest.Dial(t, b.WSURL, nil)
	watch.Hello(map[string]any{"app": "monitor", "kind": "tool", "instance": "mon-1"})
	watch.Call("sub", "bridge.subscribe", map[string]any{"topics": []string{"session.*"}})
	tool := bridgetest.Dial(t, b.WSURL, nil)
	// An AYON-style tool serving a route in the app's namespace.
	tool.Hello(map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-1", "methods": []string{"AfterEffects.publish_route"}})
	hello := map[string]any{"app": "aftereffects", "instance": "ae-1", "boot": "b-1", "replay": true, "methods": []string{"render"}}
	host := dialRaw(t, b.WSURL, nil)
	host.helloFirst(hello)

	fids := map[string]bool{}
	var r0 string
	for i := range 3 {
		tool.Send(map[string]any{"jsonrpc": "2.0", "id": fmt.Sprintf("r%d", i), "method": "aftereffects.render", "params": map[string]any{"n": i}})
		fid, _ := host.nextCall("render", 1)
		fids[fid] = true
		if i == 0 {
			r0 = fid
		}
	}
	wantState(t, tool, "aftereffects", "ae-1", "connected", 3, 0)
	_ = host.conn.CloseNow()
	if d := stateEvent(t, watch, "ae-1", "reconnecting"); d["parked"] != float64(3) || d["in_flight"] != float64(0) {
		t.Fatalf("session.state event: %v", d)
	}
	wantState(t, tool, "aftereffects", "ae-1", "reconnecting", 0, 3)

	resp, err := http.Get(b.URL + "/api/sessions")
	if err != nil {
		t.Fatal(err)
	}
	var list []session.SessionInfo
	err = json.NewDecoder(resp.Body).Decode(&list)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/sessions: %v %v", resp.Status, err)
	}
	found := false
	for _, s := range list {
		if s.Instance == "ae-1" {
			found = true
			if s.State != session.StateReconnecting || s.Parked != 3 || s.InFlight != 0 {
				t.Fatalf("/api/sessions for ae-1: %+v", s)
			}
		}
	}
	if !found {
		t.Fatalf("/api/sessions does not list ae-1: %+v", list)
	}

	// A parked call the caller cancels is never re-sent.
	tool.Send(`{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":"r0"}}`)
	if code, _ := rpcError(t, reply(t, tool, "r0")); code != -32800 {
		t.Fatalf("cancelled parked call: code %d", code)
	}
	delete(fids, r0)
	wantState(t, tool, "aftereffects", "ae-1", "reconnecting", 0, 2)

	tool.Send(`{"jsonrpc":"2.0","id":"r3","method":"aftereffects.render","params":{"n":3},"meta":{"wait_ms":30000}}`)
	rtQuiet(t, tool) // r3 waits: no -32601 although pub-1 offers aftereffects.publish_route

	host = dialRaw(t, b.WSURL, nil)
	if res := host.helloFirst(hello); res["resumed"] != true || res["pending"] != float64(2) {
		t.Fatalf("hello: %v, want resumed with 2 pending", res)
	}
	// The host is told of the call cancelled while it was away, before the
	// re-sent ones.
	if c := host.next(); c["method"] != "$/cancelRequest" {
		t.Fatalf("want $/cancelRequest for the cancelled parked call, got %v", c)
	}
	for range 2 {
		fid, _ := host.nextCall("render", 2)
		if !fids[fid] {
			t.Fatalf("re-sent %q, not one of the parked calls %v", fid, fids)
		}
		delete(fids, fid)
		host.answer(fid, "rendered")
	}
	fid, params := host.nextCall("render", 1)
	if params["n"] != float64(3) {
		t.Fatalf("after the parked calls the host got %v", params)
	}
	host.answer(fid, "rendered")
	for id, r := range replies(t, tool, "r1", "r2", "r3") {
		if r["result"] != "rendered" {
			t.Fatalf("%s: %v", id, r)
		}
	}
	wantState(t, tool, "aftereffects", "ae-1", "connected", 0, 0)
}

// ---- 9. replacement moves written calls ----

// A second hello for a replay instance whose connection is still open, same
// boot: the old connection is closed with 4001 and its written call is
// re-sent on the new one with the same forwarded id.
func TestReplacementMovesWrittenCalls(t *testing.T) {
	b, _ := rsStart(t, session.Options{ResumeWait: time.Minute})
	tool := bridgetest.Dial(t, b.WSURL, nil)
	tool.Hello(map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-1"})
	hello := map[string]any{"app": "aftereffects", "instance": "ae-1", "boot": "b-1", "replay": true, "methods": []string{"render"}}
	old := dialRaw(t, b.WSURL, nil)
	old.helloFirst(hello)
	tool.Send(`{"jsonrpc":"2.0","id":"r1","method":"aftereffects.render"}`)
	fid, _ := old.nextCall("render", 1)

	neu := dialRaw(t, b.WSURL, nil)
	res := neu.helloFirst(hello)
	if res["resumed"] != true || res["pending"] != float64(1) {
		t.Fatalf("replacing hello: %v", res)
	}
	again, _ := neu.nextCall("render", 2)
	if again != fid {
		t.Fatalf("re-sent as %q, first sent as %q", again, fid)
	}
	if m, err := old.read(rsWait); err == nil {
		t.Fatalf("old connection got %v after being replaced", m)
	} else if ce := closeError(err); ce.Code != 4001 || ce.Reason != "replaced" {
		t.Fatalf("old connection ended with %v, want 4001 replaced", err)
	}
	neu.answer(again, "rendered")
	r := reply(t, tool, "r1")
	if r["result"] != "rendered" || r["meta"].(map[string]any)["session"] != res["session"] {
		t.Fatalf("tool got %v", r)
	}
	wantState(t, tool, "aftereffects", "ae-1", "connected", 0, 0)
}

// A replay panel back with the same boot but without the method of its
// parked call (it registers handlers later): the call may have run there,
// so it fails -32004 may_have_run and never runs on the other instance.
func TestResumeWithoutTheMethodNeverRunsElsewhere(t *testing.T) {
	b, logs := rsStart(t, session.Options{ResumeWait: time.Minute})
	hello := map[string]any{"app": "aftereffects", "instance": "ae-1", "boot": "b1", "replay": true, "methods": []string{"open"}}
	host := dialRaw(t, b.WSURL, nil)
	host.helloFirst(hello)
	other := dialRaw(t, b.WSURL, nil)
	other.helloFirst(map[string]any{"app": "aftereffects", "instance": "ae-2", "methods": []string{"open"}})
	tool := bridgetest.Dial(t, b.WSURL, nil)
	tool.Send(`{"jsonrpc":"2.0","id":"o1","method":"aftereffects.open","meta":{"target":"ae-1"}}`)
	host.nextCall("open", 1)
	host.conn.CloseNow()
	logs.wait(t, rsWait, "session state", "instance", "ae-1", "state", "reconnecting")
	wantState(t, tool, "aftereffects", "ae-1", "reconnecting", 0, 1)

	back := dialRaw(t, b.WSURL, nil)
	res := back.helloFirst(map[string]any{"app": "aftereffects", "instance": "ae-1", "boot": "b1", "replay": true})
	if res["resumed"] != true {
		t.Fatalf("hello: %v", res)
	}
	code, data := rpcError(t, reply(t, tool, "o1"))
	if code != -32004 || data["may_have_run"] != true || data["instance"] != "ae-1" {
		t.Fatalf("got %d %v, want -32004 may_have_run naming ae-1", code, data)
	}
	tool.Send(`{"jsonrpc":"2.0","id":"p","method":"bridge.ping"}`)
	reply(t, tool, "p")
	if m, err := other.read(50 * time.Millisecond); err == nil {
		t.Fatalf("the other instance got %v; the call must not run twice", m)
	}
}

// -32001 for an instance that is there but cannot take calls says so.
func TestNoSessionErrorNamesUnavailableInstance(t *testing.T) {
	b, logs := rsStart(t, session.Options{ResumeWait: time.Minute})
	host := dialRaw(t, b.WSURL, nil)
	host.helloFirst(map[string]any{"app": "aftereffects", "instance": "ae-1", "boot": "b1", "replay": true, "methods": []string{"open"}})
	tool := bridgetest.Dial(t, b.WSURL, nil)
	host.conn.CloseNow()
	logs.wait(t, rsWait, "session state", "instance", "ae-1", "state", "reconnecting")
	tool.Send(`{"jsonrpc":"2.0","id":"o1","method":"aftereffects.open","meta":{"wait_ms":50}}`)
	code, data := rpcError(t, reply(t, tool, "o1"))
	un, _ := data["unavailable"].([]any)
	if code != -32001 || len(un) != 1 || un[0] != `instance "ae-1" is reconnecting` {
		t.Fatalf("got %d %v, want -32001 naming ae-1 reconnecting", code, data)
	}
}

// The bridge namespace is case-folded like every namespace, and hello may
// not hide in a batch (its result must come before re-sent calls).
func TestBuiltinNamespaceAndBatchedHello(t *testing.T) {
	b, _ := rsStart(t, session.Options{})
	p := bridgetest.Dial(t, b.WSURL, nil)
	if r := p.Call(1, "Bridge.ping", nil); r["result"] == nil {
		t.Fatalf("Bridge.ping: %v", r)
	}
	p.Send(`[{"jsonrpc":"2.0","id":1,"method":"bridge.hello","params":{"app":"x"}},{"jsonrpc":"2.0","id":2,"method":"bridge.ping"}]`)
	m := p.Read()
	batch, _ := m["batch"].([]any)
	if len(batch) != 2 {
		t.Fatalf("want a batch reply of 2, got %v", m)
	}
	for _, x := range batch {
		x := x.(map[string]any)
		if x["id"] == 1.0 && x["error"].(map[string]any)["code"] != -32600.0 {
			t.Errorf("hello in a batch: %v, want -32600", x)
		}
	}
}
