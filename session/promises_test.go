package session_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/dccbridge/dccbridge/internal/bridgetest"
	"github.com/dccbridge/dccbridge/session"
)

// Promises the session core keeps when peers come and go: the order of a
// caller's calls, replies owed to a replay caller, and events that tell the
// truth. Real sockets on 127.0.0.1.

const orderCalls = 20

// sendNumbered sends calls 0…orderCalls-1 of aftereffects.step from tool,
// each with {"n": i}, without waiting for replies.
func sendNumbered(tool *bridgetest.Peer, meta map[string]any) {
	for i := range orderCalls {
		msg := map[string]any{"jsonrpc": "2.0", "id": fmt.Sprintf("call-%d", i), "method": "aftereffects.step", "params": map[string]any{"n": i}}
		if meta != nil {
			msg["meta"] = meta
		}
		tool.Send(msg)
	}
}

// receiveNumbered reads orderCalls forwarded calls at host and returns
// their n in the order they arrived, with their forwarded ids.
func receiveNumbered(t *testing.T, host *bridgetest.Peer) (order []int, fids []string) {
	t.Helper()
	for len(order) < orderCalls {
		m := host.Expect(5*time.Second, func(m map[string]any) bool { return m["method"] == "step" })
		order = append(order, int(m["params"].(map[string]any)["n"].(float64)))
		fids = append(fids, m["id"].(string))
	}
	return order, fids
}

func wantInOrder(t *testing.T, what string, order []int) {
	t.Helper()
	for i, n := range order {
		if n != i {
			t.Fatalf("%s: the host received the calls in the order %v, want 0…%d", what, order, orderCalls-1)
		}
	}
}

// A tool that sends calls before any host exists sees them arrive in the
// order it sent them once the host says hello.
func TestOrderKeptWhileWaiting(t *testing.T) {
	b := bridgetest.Start(t, &session.Options{Logger: quietLogger()}, nil)
	tool := bridgetest.Dial(t, b.WSURL, nil)
	tool.Hello(map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-1"})
	sendNumbered(tool, map[string]any{"wait_ms": 5000})
	waitFor(t, func() bool { return len(b.Router.Calls()) == orderCalls })

	host := bridgetest.Dial(t, b.WSURL, nil)
	host.Hello(map[string]any{"app": "aftereffects", "instance": "ae-1", "methods": []string{"step"}})
	order, _ := receiveNumbered(t, host)
	wantInOrder(t, "waiting calls", order)
}

// Calls parked while a replay host reconnects are re-sent, once it is
// back with the same boot, in the order they were made; so are calls
// moved to a new connection that replaces a live one.
func TestOrderKeptAcrossResumeAndReplacement(t *testing.T) {
	for _, how := range []string{"resume", "replace"} {
		t.Run(how, func(t *testing.T) {
			b := bridgetest.Start(t, &session.Options{Logger: quietLogger(), BusyAfter: time.Minute}, nil)
			hello := map[string]any{"app": "aftereffects", "instance": "ae-1", "boot": "b-1", "replay": true, "methods": []string{"step"}}
			host := bridgetest.Dial(t, b.WSURL, nil)
			host.Hello(hello)
			tool := bridgetest.Dial(t, b.WSURL, nil)
			tool.Hello(map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-1"})
			sendNumbered(tool, nil)
			first, fids := receiveNumbered(t, host)
			wantInOrder(t, "first delivery", first)

			if how == "resume" {
				_ = host.Conn.CloseNow()
				waitFor(t, func() bool {
					s := sessionInfo(b.Router, "ae-1")
					return s != nil && s.State == session.StateReconnecting
				})
			}
			again := bridgetest.Dial(t, b.WSURL, nil)
			res := again.Hello(hello)
			if res["resumed"] != true || res["pending"] != float64(orderCalls) {
				t.Fatalf("hello result %v, want resumed with %d pending", res, orderCalls)
			}
			order, resent := receiveNumbered(t, again)
			wantInOrder(t, "re-sent calls", order)
			for i := range resent {
				if resent[i] != fids[i] {
					t.Errorf("call %d re-sent as %s, first sent as %s", i, resent[i], fids[i])
				}
			}
		})
	}
}

// A replay tool that stops reading while the host answers its calls is
// closed when a write to it times out; the replies the writer had taken
// from the queue but not written are held like queued ones, and the tool
// gets every one of them when it comes back with the same boot.
func TestRepliesTakenByWriterHeldForReplayCaller(t *testing.T) {
	const big = 8 << 20 // each reply: more than a loopback socket buffers
	b := bridgetest.Start(t, &session.Options{Logger: quietLogger(), WriteTimeout: 2 * time.Second,
		HeartbeatInterval: time.Minute, BusyAfter: time.Minute}, nil)
	host := bridgetest.Dial(t, b.WSURL, nil)
	host.Hello(map[string]any{"app": "aftereffects", "instance": "ae-1", "methods": []string{"render"}})

	toolHello := map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-1", "boot": "t-1", "replay": true}
	ctx := context.Background()
	tool, _, err := websocket.Dial(ctx, b.WSURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tool.CloseNow()
	tool.SetReadLimit(64 << 20)
	write := func(v any) {
		data, _ := json.Marshal(v)
		if err := tool.Write(ctx, websocket.MessageText, data); err != nil {
			t.Fatal(err)
		}
	}
	write(map[string]any{"jsonrpc": "2.0", "id": "hello", "method": "bridge.hello", "params": toolHello})
	if _, _, err := tool.Read(ctx); err != nil { // the hello result; from now on the tool reads nothing
		t.Fatal(err)
	}
	for i := range 3 {
		write(map[string]any{"jsonrpc": "2.0", "id": i, "method": "aftereffects.render"})
	}
	payload := `"` + strings.Repeat("x", big) + `"`
	for range 3 {
		m := host.Expect(5*time.Second, func(m map[string]any) bool { return m["method"] == "render" })
		host.Send(fmt.Sprintf(`{"jsonrpc":"2.0","id":%q,"result":%s}`, m["id"], payload))
	}
	waitFor(t, func() bool {
		s := sessionInfo(b.Router, "pub-1")
		return s != nil && s.State == session.StateReconnecting
	})
	_ = tool.CloseNow()

	back := bridgetest.Dial(t, b.WSURL, nil)
	if res := back.Hello(toolHello); res["resumed"] != true {
		t.Fatalf("hello result %v, want resumed", res)
	}
	got := map[float64]bool{}
	for len(got) < 3 {
		m := back.Expect(10*time.Second, func(m map[string]any) bool { _, ok := m["result"]; return ok && m["id"] != "hello" })
		if r, _ := m["result"].(string); len(r) != big {
			t.Fatalf("reply %v has a result of %d bytes, want %d", m["id"], len(r), big)
		}
		got[m["id"].(float64)] = true
	}
}

// A live session replaced by a new hello of its instance leaves with a
// session.left event that says so, and is never reported reconnecting;
// every session.left says "left", with the reason.
func TestEventsOfReplacedAndLeavingSessions(t *testing.T) {
	b := bridgetest.Start(t, &session.Options{Logger: quietLogger()}, nil)
	watch := bridgetest.Dial(t, b.WSURL, nil)
	watch.Hello(map[string]any{"app": "monitor", "kind": "tool"})
	watch.Call("sub", "bridge.subscribe", map[string]any{"topics": []string{"session.*"}})

	hello := map[string]any{"app": "aftereffects", "instance": "ae-1", "methods": []string{"step"}}
	first := bridgetest.Dial(t, b.WSURL, nil)
	firstID := first.Hello(hello)["session"]
	second := bridgetest.Dial(t, b.WSURL, nil)
	secondID := second.Hello(hello)["session"]

	var seen []string
	for {
		m := watch.Expect(5*time.Second, func(m map[string]any) bool { return m["method"] == "bridge.event" })
		p := m["params"].(map[string]any)
		d := p["data"].(map[string]any)
		seen = append(seen, fmt.Sprintf("%s %s %s", p["topic"], d["session"], d["state"]))
		if p["topic"] == "session.left" && d["session"] == firstID {
			if d["state"] != "left" || !strings.Contains(fmt.Sprint(d["reason"]), "replaced") {
				t.Errorf("session.left of the replaced session: state %v, reason %v; want left, replaced…", d["state"], d["reason"])
			}
			break
		}
		if p["topic"] == "session.joined" && d["session"] == secondID {
			t.Fatalf("the new session joined before the replaced one left; events: %v", seen)
		}
	}
	for _, e := range seen {
		if strings.Contains(e, "reconnecting") {
			t.Errorf("a replaced live session was reported reconnecting: %v", seen)
		}
	}

	second.Send(`{"jsonrpc":"2.0","method":"nothing.here"}`)
	_ = second.Conn.Close(websocket.StatusNormalClosure, "done")
	m := watch.Expect(5*time.Second, func(m map[string]any) bool {
		p, _ := m["params"].(map[string]any)
		return m["method"] == "bridge.event" && p["topic"] == "session.left" && p["data"].(map[string]any)["session"] == secondID
	})
	if d := m["params"].(map[string]any)["data"].(map[string]any); d["state"] != "left" || d["reason"] == "" {
		t.Errorf("session.left of a session that closed: state %v, reason %v; want left and a reason", d["state"], d["reason"])
	}
}

// sessionInfo returns the router's view of instance, or nil.
func sessionInfo(r *session.Router, instance string) *session.SessionInfo {
	for _, s := range r.Sessions() {
		if s.Instance == instance {
			return &s
		}
	}
	return nil
}

// waitFor polls cond for up to 5 s (the test's view of the router has no
// event to wait on).
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5 s")
		}
	}
}
