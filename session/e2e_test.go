package session_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/dccbridge/dccbridge/internal/bridgetest"
	"github.com/dccbridge/dccbridge/session"
	"github.com/dccbridge/dccbridge/web"
)

// End-to-end tests over real sockets on 127.0.0.1, for what needs the real
// transport: binary and oversize messages, shutdown with a peer that never
// answers the close, tokens at the upgrade and in hello, the heartbeat's
// measured round trip, and the exact frames once through the websocket
// adapter. limits_test.go has the other end-to-end tests.

// An oversize message closes its session with 1009 and a binary frame with
// 1003; other sessions and their calls are unaffected.
func TestProtocolViolationsCloseOnlyTheirSession(t *testing.T) {
	logs, logger := newLogWatch(t)
	b := bridgetest.Start(t, &session.Options{Logger: logger}, &web.Options{Logger: logger, MaxMessage: 1024})
	startEchoHost(t, b.WSURL, "maya", "m-1", "echo")
	tool := bridgetest.Dial(t, b.WSURL, nil)
	tool.Hello(map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-1"})
	routed := func(id int) {
		t.Helper()
		r := tool.Call(id, "maya.echo", map[string]any{"n": id})
		if res, ok := r["result"].(map[string]any); !ok || res["instance"] != "m-1" {
			t.Fatalf("routed call %d: %v", id, r)
		}
	}
	routed(1)
	// Just under the limit is fine.
	r := tool.Call("near", "maya.echo", map[string]any{"pad": strings.Repeat("n", 900)})
	if r["result"] == nil {
		t.Fatalf("a 950-byte message with a 1024-byte limit: %v", r)
	}

	for _, size := range []int{2 << 10, 1 << 20} {
		big := bridgetest.Dial(t, b.WSURL, nil)
		sid := big.Hello(map[string]any{"app": "photoshop", "instance": fmt.Sprintf("big-%d", size)})["session"].(string)
		// The bridge may stop reading (and close) before the whole message
		// is written: the write's own error does not matter.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = big.Conn.Write(ctx, websocket.MessageText, []byte(`{"jsonrpc":"2.0","id":1,"method":"bridge.ping","params":{"pad":"`+strings.Repeat("x", size)+`"}}`))
		cancel()
		if code := big.Closed(5 * time.Second); code != websocket.StatusMessageTooBig {
			t.Fatalf("a %d-byte message: connection ended with %v (%v), want 1009", size, code, big.Err())
		}
		logs.wait(t, 5*time.Second, "session ended", "session", sid)
		routed(2)
	}

	bin := bridgetest.Dial(t, b.WSURL, nil)
	sid := bin.Hello(map[string]any{"app": "photoshop", "instance": "bin"})["session"].(string)
	// A reply owed before the binary frame is still written.
	bin.Send(`{"jsonrpc":"2.0","id":"before","method":"bridge.ping"}`)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := bin.Conn.Write(ctx, websocket.MessageBinary, []byte(`{"jsonrpc":"2.0","id":"bin","method":"bridge.ping"}`)); err != nil {
		t.Fatal(err)
	}
	if r := bin.Read(); r["id"] != "before" || r["result"] == nil {
		t.Fatalf("reply before the binary frame: %v", r)
	}
	if code := bin.Closed(5 * time.Second); code != websocket.StatusUnsupportedData {
		t.Fatalf("binary frame: connection ended with %v (%v), want 1003", code, bin.Err())
	}
	logs.wait(t, 5*time.Second, "session ended", "session", sid, "close_code", "1003")

	routed(3)
	// Closed sessions that said hello wait for their instance to come
	// back: listed as reconnecting, offered nothing new.
	for _, s := range b.Router.Sessions() {
		if s.App == "photoshop" && s.State != session.StateReconnecting {
			t.Fatalf("closed session listed as %s, want reconnecting: %+v", s.State, s)
		}
	}
}

// Shutdown with a peer that never answers the close handshake returns
// within CloseBudget and a margin (coder/websocket alone would wait 5 s);
// a tool with calls in flight gets -32006 for them before its close 1001.
func TestShutdownWithPeerThatNeverAnswersClose(t *testing.T) {
	logs, logger := newLogWatch(t)
	const budget = 300 * time.Millisecond
	b := bridgetest.Start(t, &session.Options{Logger: logger, CloseBudget: budget}, &web.Options{Logger: logger})

	mute := dialRaw(t, b.WSURL, nil) // never reads after hello
	muteID := mute.hello(map[string]any{"app": "premiere", "instance": "pr-1", "methods": []string{"render"}})["session"].(string)
	busy := bridgetest.Dial(t, b.WSURL, nil) // reads, never answers
	busy.Hello(map[string]any{"app": "maya", "instance": "m-1", "methods": []string{"simulate"}})
	tool := bridgetest.Dial(t, b.WSURL, nil)
	tool.Hello(map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-1"})

	tool.Send(`{"jsonrpc":"2.0","id":"sim","method":"maya.simulate"}`)
	busy.Expect(5*time.Second, func(m map[string]any) bool { return m["method"] == "simulate" })
	tool.Send(`{"jsonrpc":"2.0","id":"render","method":"premiere.render"}`)
	list := tool.Call("s", "bridge.sessions", map[string]any{"app": "premiere"})["result"].([]any)
	if list[0].(map[string]any)["in_flight"] != 1.0 {
		t.Fatalf("premiere.render not in flight: %v", list)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	err := b.Router.Shutdown(ctx)
	elapsed := time.Since(start)
	if err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if limit := budget + 2*time.Second; elapsed > limit {
		t.Fatalf("Shutdown took %v with a close budget of %v (allowed %v)", elapsed, budget, limit)
	}
	if b.Router.Ready() {
		t.Fatal("Ready after Shutdown")
	}

	for range 2 {
		r := tool.Read()
		code, data := rpcError(t, r)
		if code != -32006 || (r["id"] != "sim" && r["id"] != "render") || data["method"] == nil {
			t.Fatalf("a call in flight at shutdown: %v, want -32006", r)
		}
	}
	if code := tool.Closed(5 * time.Second); code != websocket.StatusGoingAway {
		t.Fatalf("tool connection ended with %v (%v), want 1001", code, tool.Err())
	}
	if code := busy.Closed(5 * time.Second); code != websocket.StatusGoingAway {
		t.Fatalf("busy host ended with %v (%v), want 1001", code, busy.Err())
	}
	logs.wait(t, time.Second, "session ended", "session", muteID)

	// The mute host finds, when it reads at last, its call and the 1001.
	var end error
	for range 10 {
		m, err := mute.read(5 * time.Second)
		if err != nil {
			end = err
			break
		}
		if m["method"] != "render" {
			t.Fatalf("mute host got %v", m)
		}
	}
	if code := websocket.CloseStatus(end); code != websocket.StatusGoingAway {
		t.Fatalf("mute host's connection ended with %v, want 1001", end)
	}
}

// A peer accepted without a token (token in force) gets -32005 for every
// call; a hello with a wrong token gets -32005 and close 1008; a hello with
// the right token admits it.
func TestUnauthorizedPeer(t *testing.T) {
	logs, logger := newLogWatch(t)
	const token = "s3cret"
	b := bridgetest.Start(t, &session.Options{Logger: logger, Token: token},
		&web.Options{Logger: logger, Token: token, TokenInForce: true})

	bearer := func(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }
	tool := bridgetest.Dial(t, b.WSURL, bearer(token))
	tool.Hello(map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-1", "methods": []string{"publish"}})
	if _, resp, err := bridgetest.TryDial(t, b.WSURL, bearer("wrong")); err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("upgrade with a wrong token: err %v, response %v; want 401", err, resp)
	}

	unauthorized := func(p *bridgetest.Peer, id, method string, params any) {
		t.Helper()
		r := p.Call(id, method, params)
		if code, _ := rpcError(t, r); code != -32005 {
			t.Fatalf("%s before hello: %v, want -32005", method, r)
		}
	}
	p := bridgetest.Dial(t, b.WSURL, nil)
	unauthorized(p, "1", "bridge.ping", nil)
	unauthorized(p, "2", "bridge.sessions", nil)
	unauthorized(p, "3", "bridge.register", map[string]any{"methods": []string{"x"}})
	unauthorized(p, "4", "bridge.publish", map[string]any{"topic": "news", "data": 1})
	unauthorized(p, "5", "pipeline.publish", map[string]any{"a": 1})
	p.Send(`[{"jsonrpc":"2.0","id":"b1","method":"bridge.ping"},{"jsonrpc":"2.0","method":"pipeline.publish"},{"jsonrpc":"2.0","id":"b2","method":"pipeline.publish"}]`)
	batch := p.Read()["batch"].([]any)
	if len(batch) != 2 {
		t.Fatalf("batch before hello: %v", batch)
	}
	for _, m := range batch {
		if code, _ := rpcError(t, m.(map[string]any)); code != -32005 {
			t.Fatalf("batch member before hello: %v", m)
		}
	}
	r := p.Call("h", "bridge.hello", map[string]any{"app": "aftereffects", "instance": "ae-1", "token": "wrong"})
	if code, _ := rpcError(t, r); code != -32005 {
		t.Fatalf("hello with a wrong token: %v, want -32005", r)
	}
	if code := p.Closed(5 * time.Second); code != websocket.StatusPolicyViolation {
		t.Fatalf("after a wrong hello token the connection ended with %v (%v), want 1008", code, p.Err())
	}
	logs.wait(t, 5*time.Second, "hello refused: bad or missing token")

	missing := bridgetest.Dial(t, b.WSURL, nil)
	r = missing.Call("h", "bridge.hello", map[string]any{"app": "aftereffects", "instance": "ae-1"})
	if code, _ := rpcError(t, r); code != -32005 {
		t.Fatalf("hello without a token: %v, want -32005", r)
	}
	if code := missing.Closed(5 * time.Second); code != websocket.StatusPolicyViolation {
		t.Fatalf("after a hello without a token the connection ended with %v, want 1008", code)
	}

	good := bridgetest.Dial(t, b.WSURL, nil)
	unauthorized(good, "1", "bridge.ping", nil)
	res := good.Hello(map[string]any{"app": "aftereffects", "instance": "ae-1", "token": token})
	if res["session"] == nil {
		t.Fatalf("hello with the token: %v", res)
	}
	if r := good.Call("2", "bridge.ping", nil); r["result"] == nil {
		t.Fatalf("ping after hello: %v", r)
	}
	good.Send(`{"jsonrpc":"2.0","id":"3","method":"pipeline.publish","params":{"a":1}}`)
	fwd := tool.Expect(5*time.Second, func(m map[string]any) bool { return m["method"] == "publish" })
	tool.Send(map[string]any{"jsonrpc": "2.0", "id": fwd["id"], "result": "done"})
	if r := good.Expect(5*time.Second, func(m map[string]any) bool { return m["id"] == "3" }); r["result"] != "done" {
		t.Fatalf("routed call after hello: %v", r)
	}
	// The unauthorized peer's routed calls never reached the tool: the
	// only call it got is the admitted peer's.
	if got := fwd["meta"].(map[string]any)["caller"].(map[string]any)["instance"]; got != "ae-1" {
		t.Fatalf("tool got a call from %v", got)
	}
	if r := tool.Call("p", "bridge.ping", nil); r["result"] == nil {
		t.Fatalf("tool ping: %v", r)
	}
}

// The exact frames of calls in every direction, over real sockets.
func TestRoutingAllDirectionsExactFrames(t *testing.T) {
	b := rtStart(t, nil)
	checkAllDirections(t, func(hello map[string]any) (wirePeer, string) { return rtJoin(t, b, hello) })
}

// With a 20 ms heartbeat, bridge.sessions shows the measured round trip.
func TestHeartbeatRecordsRTT(t *testing.T) {
	b := bridgetest.Start(t, &session.Options{Logger: quietLogger(), HeartbeatInterval: 20 * time.Millisecond}, &web.Options{Logger: quietLogger()})
	pings := make(chan struct{}, 100)
	p := dialRaw(t, b.WSURL, &websocket.DialOptions{OnPingReceived: func(context.Context, []byte) bool {
		select {
		case pings <- struct{}{}:
		default:
		}
		return true
	}})
	p.hello(map[string]any{"app": "blender", "instance": "bl-1"})
	// The bridge pings again only after the previous pong came back and
	// its round trip was recorded; the peer's reads answer the pings.
	go func() {
		for {
			if _, _, err := p.conn.Read(context.Background()); err != nil {
				return
			}
		}
	}()
	for i := range 2 {
		select {
		case <-pings:
		case <-time.After(5 * time.Second):
			t.Fatalf("ping %d not received within 5 s", i+1)
		}
	}
	var rtt float64
	for _, s := range b.Router.Sessions() {
		if s.Instance == "bl-1" {
			rtt = s.RTTMS
		}
	}
	if rtt <= 0 {
		t.Fatalf("rtt_ms %v after two pings", rtt)
	}
	tool := bridgetest.Dial(t, b.WSURL, nil)
	list := tool.Call("s", "bridge.sessions", map[string]any{"app": "blender"})["result"].([]any)
	if got := list[0].(map[string]any)["rtt_ms"].(float64); got <= 0 {
		t.Fatalf("bridge.sessions rtt_ms %v", got)
	}
}
