package session_test

import (
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dccbridge/dccbridge/session"
)

// Promises the session core keeps when peers come and go: the order of a
// caller's calls, replies owed to a replay caller, and events that tell the
// truth. In-memory connections in synctest bubbles.

const orderCalls = 20

// sendNumbered sends calls 0…orderCalls-1 of aftereffects.step from tool,
// each with {"n": i}, without waiting for replies.
func sendNumbered(tool *memPeer, meta map[string]any) {
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
func receiveNumbered(t *testing.T, host *memPeer) (order []int, fids []string) {
	t.Helper()
	for len(order) < orderCalls {
		m := host.Expect(memWait, func(m map[string]any) bool { return m["method"] == "step" })
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
	synctest.Test(t, func(t *testing.T) {
		b := startMem(t, session.Options{})
		tool, _ := b.join(map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-1"})
		sendNumbered(tool, map[string]any{"wait_ms": 5000})
		synctest.Wait()
		if n := len(b.r.Calls()); n != orderCalls {
			t.Fatalf("%d calls waiting, want %d", n, orderCalls)
		}
		host, _ := b.join(map[string]any{"app": "aftereffects", "instance": "ae-1", "methods": []string{"step"}})
		order, _ := receiveNumbered(t, host)
		wantInOrder(t, "waiting calls", order)
	})
}

// Calls parked while a replay host reconnects are re-sent, once it is
// back with the same boot, in the order they were made; so are calls
// moved to a new connection that replaces a live one.
func TestOrderKeptAcrossResumeAndReplacement(t *testing.T) {
	for _, how := range []string{"resume", "replace"} {
		t.Run(how, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := startMem(t, session.Options{BusyAfter: time.Hour})
				hello := map[string]any{"app": "aftereffects", "instance": "ae-1", "boot": "b-1", "replay": true, "methods": []string{"step"}}
				host, _ := b.join(hello)
				tool, _ := b.join(map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-1"})
				sendNumbered(tool, nil)
				first, fids := receiveNumbered(t, host)
				wantInOrder(t, "first delivery", first)

				if how == "resume" {
					host.drop()
					synctest.Wait()
					if s := b.stateOf("ae-1"); s == nil || s.State != session.StateReconnecting {
						t.Fatalf("after the drop: %+v, want reconnecting", s)
					}
				}
				again, res := b.join(hello)
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
		})
	}
}

// A replay tool that stops reading while the host answers its calls is
// closed when a write to it times out; the replies the writer had taken
// from the queue but not written are held like queued ones, and the tool
// gets every one of them when it comes back with the same boot.
func TestRepliesTakenByWriterHeldForReplayCaller(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, toolHello := stallReplayTool(t)
		time.Sleep(11 * time.Second) // the write times out
		synctest.Wait()
		if s := b.stateOf("pub-1"); s == nil || s.State != session.StateReconnecting {
			t.Fatalf("after the write timed out: %+v, want reconnecting", s)
		}
		back, res := b.join(toolHello)
		if res["resumed"] != true {
			t.Fatalf("hello result %v, want resumed", res)
		}
		wantFrames(t, back)
	})
}

// A live session replaced by a new hello of its instance leaves with a
// session.left event that says so, and is never reported reconnecting;
// every session.left says "left", with the reason.
func TestEventsOfReplacedAndLeavingSessions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := startMem(t, session.Options{})
		watch, _ := b.join(map[string]any{"app": "monitor", "kind": "tool"})
		watch.Call("sub", "bridge.subscribe", map[string]any{"topics": []string{"session.*"}})

		hello := map[string]any{"app": "aftereffects", "instance": "ae-1", "methods": []string{"step"}}
		_, firstID := b.joinSID(hello)
		second, secondID := b.joinSID(hello)

		var seen []string
		for {
			m := watch.Expect(memWait, func(m map[string]any) bool { return m["method"] == "bridge.event" })
			p := m["params"].(map[string]any)
			d := p["data"].(map[string]any)
			seen = append(seen, fmt.Sprintf("%s %s %s", p["topic"], d["session"], d["state"]))
			if p["topic"] == "session.left" && d["session"] == firstID {
				if d["state"] != "left" || !strings.Contains(fmt.Sprint(d["reason"]), "replaced") {
					t.Errorf("session.left of the replaced session: state %v, reason %v; want left, replaced…", d["state"], d["reason"])
				}
				if fmt.Sprint(d["methods"]) != "[aftereffects.step]" {
					t.Errorf("session.left of the replaced session lists methods %v, want what it offered, [aftereffects.step]", d["methods"])
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
		second.close(session.CloseNormal, "done")
		m := watch.Expect(memWait, func(m map[string]any) bool {
			p, _ := m["params"].(map[string]any)
			return m["method"] == "bridge.event" && p["topic"] == "session.left" && p["data"].(map[string]any)["session"] == secondID
		})
		if d := m["params"].(map[string]any)["data"].(map[string]any); d["state"] != "left" || d["reason"] == "" {
			t.Errorf("session.left of a session that closed: state %v, reason %v; want left and a reason", d["state"], d["reason"])
		}
	})
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
