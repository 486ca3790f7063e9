package session_test

import (
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dccbridge/dccbridge/internal/memconn"
	"github.com/dccbridge/dccbridge/session"
)

// Peers that stop reading: a host closed as a slow reader, events dropped
// for a subscriber whose queue is full, a stalled connection replaced.
// Over memconn, whose small buffer stands for a full socket, in synctest
// bubbles.
//
// Tests whose peers stop reading set WriteTimeout and HeartbeatInterval to
// a minute, so that neither ends the stall before the test does. Those that
// stall a host with calls in flight set BusyAfter to a minute too: a busy
// host is given no new calls.

// A host that stops reading while tools flood it is closed with
// 1008 once its queue is full: calls not yet written fail -32003 (and never
// reach it), calls written fail -32004 may_have_run, and meanwhile another
// host/tool pair's calls keep completing.
func TestSlowReaderClosed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const queueBytes = 16 << 10 // about 14 of its 1 KiB calls
		b := startMem(t, session.Options{QueueBytes: queueBytes, WriteTimeout: time.Minute, HeartbeatInterval: time.Minute, BusyAfter: time.Minute})

		b.memEchoHost("maya", "m-1", "echo")
		tool2 := b.dial()
		tool2.Hello(map[string]any{"app": "pipeline", "kind": "tool", "instance": "other"})
		n2 := 0
		otherCall := func() {
			t.Helper()
			n2++
			r := tool2.Call(n2, "maya.echo", map[string]any{"n": n2})
			if res, ok := r["result"].(map[string]any); !ok || res["instance"] != "m-1" {
				t.Fatalf("the other pair's call %d: %v", n2, r)
			}
		}

		stalled := b.connect(memconn.Options{Buffer: 4}) // its buffer holds 4 messages
		sid := stalled.Hello(map[string]any{"app": "stall", "instance": "stall-1", "methods": []string{"work"}})["session"].(string)
		// From here the stalled host does not read.

		// Tools flood it, each keeping fewer calls in flight than the queue
		// limit (so that its own replies, which all come at once when the host
		// is closed, fit its queue). New tools join until the bridge gives up
		// on the host: at most 40 tools × 12 calls.
		const perTool, maxTools = 12, 40
		pad := strings.Repeat("x", 1<<10)
		var tools []*memPeer
		sent := map[string]bool{}
		early := map[*memPeer][]map[string]any{} // replies a tool got before its sync pong
		for i := 0; i < maxTools && b.logs.count("slow reader closed", "session", sid) == 0; i++ {
			tool := b.dial()
			tool.Hello(map[string]any{"app": "pipeline", "kind": "tool", "instance": fmt.Sprintf("flood-%d", i)})
			for j := range perTool {
				id := fmt.Sprintf("t%d-%d", i, j)
				tool.Send(map[string]any{"jsonrpc": "2.0", "id": id, "method": "stall.work", "params": map[string]any{"seq": id, "pad": pad},
					"meta": map[string]any{"wait_ms": 300}})
				sent[id] = true
			}
			// A tool's messages are handled in order: once the ping is
			// answered, its calls have been routed to the stalled host.
			// Replies that come before the pong are kept for the checks below.
			tool.Send(`{"jsonrpc":"2.0","id":"sync","method":"bridge.ping"}`)
			for {
				m := tool.next()
				if m["id"] != "sync" {
					early[tool] = append(early[tool], m)
					continue
				}
				if m["result"] == nil {
					t.Fatalf("ping: %v", m)
				}
				break
			}
			tools = append(tools, tool)
			otherCall()
		}
		b.logs.wait(t, 10*time.Second, "slow reader closed", "session", sid)

		// The stalled host's writer is blocked on its full buffer; others go on.
		for range 20 {
			otherCall()
		}

		// The host reads again: it gets what had been written, then 1008.
		got := map[string]bool{}
		var end error
		for range len(sent) + 10 {
			m, err := stalled.read(10 * time.Second)
			if err != nil {
				end = err
				break
			}
			if m["method"] == "work" {
				got[m["params"].(map[string]any)["seq"].(string)] = true
			}
		}
		if ce := memCloseError(end); ce.Code != session.ClosePolicyViolation || !strings.Contains(ce.Reason, "slow reader") {
			t.Fatalf("the stalled host's connection ended with %v, want 1008 slow reader", end)
		}

		// Calls made after the bridge gave up on the host are not sent to it: it
		// is no longer healthy, so they wait for another instance (-32001).
		n1, n3, n4 := 0, 0, 0
		for _, tool := range tools {
			for range perTool {
				var r map[string]any
				if len(early[tool]) > 0 {
					r, early[tool] = early[tool][0], early[tool][1:]
				} else {
					r = tool.Expect(10*time.Second, func(m map[string]any) bool { _, ok := m["id"].(string); return ok && m["method"] == nil })
				}
				id := r["id"].(string)
				if !sent[id] {
					t.Fatalf("reply to an unknown id: %v", r)
				}
				delete(sent, id)
				code, data := rpcError(t, r)
				if code == -32001 && !got[id] && data["app"] == "stall" && data["method"] == "stall.work" {
					n1++
					continue
				}
				if data["app"] != "stall" || data["method"] != "stall.work" || data["instance"] != "stall-1" {
					t.Errorf("call %s: error data %v does not name the app, method and instance", id, data)
				}
				switch code {
				case -32003:
					n3++
					if got[id] {
						t.Errorf("call %s reached the host but failed -32003 (not delivered)", id)
					}
				case -32004:
					n4++
					if data["may_have_run"] != true {
						t.Errorf("call %s: -32004 without may_have_run: %v", id, r)
					}
				default:
					t.Errorf("call %s: %v, want -32003 or -32004 (or -32001 if never sent)", id, r)
				}
				if got[id] && code != -32004 {
					t.Errorf("call %s reached the host but failed %d, want -32004 may_have_run", id, code)
				}
			}
		}
		if n3 == 0 || n4 < len(got) {
			t.Errorf("-32003: %d, -32004: %d, delivered to the host: %d", n3, n4, len(got))
		}
		t.Logf("%d tools flooded; the host got %d calls before 1008; %d failed -32003, %d failed -32004, %d waited -32001", len(tools), len(got), n3, n4, n1)

		b.logs.wait(t, 5*time.Second, "session ended", "session", sid, "close_code", "1008")
		for _, s := range tool2.Call("s", "bridge.sessions", nil)["result"].([]any) {
			if s := s.(map[string]any); s["app"] == "stall" && (s["state"] != "reconnecting" || s["parked"] != 0.0) {
				t.Fatalf("the slow reader is listed as %v with %v parked, want reconnecting with none (it does not replay)", s["state"], s["parked"])
			}
		}
		otherCall()
	})
}

// Events that do not fit a subscriber's queue are dropped and counted,
// never a reason to close it.
func TestEventsToFullQueueDropped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := startMem(t, session.Options{QueueBytes: 16 << 10, WriteTimeout: time.Minute, HeartbeatInterval: time.Minute})
		sub := b.dial()
		sid := sub.Hello(map[string]any{"app": "photoshop", "instance": "ps-1"})["session"].(string)
		if r := sub.call("sub", "bridge.subscribe", map[string]any{"topics": []string{"news.*"}}); r["result"] == nil {
			t.Fatalf("subscribe: %v", r)
		}
		// From here the subscriber does not read.
		pub := b.dial()
		pub.Hello(map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-1"})

		pad := strings.Repeat("y", 1<<10)
		publish := func(i int) float64 {
			t.Helper()
			synctest.Wait() // the subscriber's writer has moved what it can into the buffer
			r := pub.Call(i, "bridge.publish", map[string]any{"topic": "news.flash", "data": map[string]any{"i": i, "pad": pad}})
			res, ok := r["result"].(map[string]any)
			if !ok {
				t.Fatalf("publish %d: %v", i, r)
			}
			return res["delivered"].(float64)
		}
		published, delivered := 0, 0
		for published < 2000 { // far beyond its buffer and queue
			d := publish(published)
			published++
			if d == 0 {
				break
			}
			delivered++
		}
		if delivered == published {
			t.Fatalf("all %d events were delivered to a subscriber that does not read", published)
		}
		for range 20 {
			if publish(published) != 0 {
				t.Fatalf("event %d delivered to a subscriber whose queue is full", published)
			}
			published++
		}

		list := pub.Call("s", "bridge.sessions", map[string]any{"app": "photoshop"})["result"].([]any)
		if len(list) != 1 || list[0].(map[string]any)["dropped_events"].(float64) < 21 {
			t.Fatalf("the subscriber in bridge.sessions: %v", list)
		}
		if n := b.logs.count("slow reader closed", "session", sid); n != 0 {
			t.Fatalf("a subscriber was closed as a slow reader for events")
		}

		// It reads again: it gets the events that fitted, then its own reply.
		sub.send(`{"jsonrpc":"2.0","id":"after","method":"bridge.ping"}`)
		events := 0
		for range published + 10 {
			m, err := sub.read(10 * time.Second)
			if err != nil {
				t.Fatalf("subscriber after %d events: %v", events, err)
			}
			if m["method"] == "bridge.event" {
				events++
				continue
			}
			if m["id"] != "after" || m["result"] == nil {
				t.Fatalf("subscriber got %v", m)
			}
			break
		}
		if events != delivered {
			t.Fatalf("subscriber got %d events, publish said %d were delivered", events, delivered)
		}
	})
}

// A replaced connection that was stalled (its buffer full, calls queued
// behind) and then drains must not be written the calls that moved to the
// new connection: each call is either written to the old connection (and
// fails -32004) or delivered to the new one, never both, never neither.
func TestHelloReplacesStalledInstance(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := startMem(t, session.Options{WriteTimeout: time.Minute, HeartbeatInterval: time.Minute, BusyAfter: time.Minute})
		tool := b.dial()
		tool.Hello(map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-1"})
		old := b.connect(memconn.Options{Buffer: 4}) // its buffer holds 4 messages
		oldID := old.Hello(map[string]any{"app": "photoshop", "instance": "ps-1", "methods": []string{"work"}})["session"].(string)

		// Fill the old connection's buffer and queue: it does not read now.
		const calls, size = 40, 1 << 10
		pad := strings.Repeat("x", size)
		for i := range calls {
			tool.Send(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"photoshop.work","params":{"seq":%d,"pad":%q}}`, i, i, pad))
		}
		// The tool's frames are handled in order: once this reply is back,
		// every call has been assigned to the old connection.
		if got := tool.Call("s", "bridge.sessions", map[string]any{"app": "photoshop"})["result"].([]any); got[0].(map[string]any)["in_flight"] != float64(calls) {
			t.Fatalf("in flight to the old connection: %v", got)
		}

		// The old connection's writer is blocked on its full buffer, calls
		// in hand, when the new connection says hello.
		synctest.Wait()
		b.memEchoHost("photoshop", "ps-1", "work")
		b.logs.wait(t, 5*time.Second, "session replaced by a new connection of the same instance", "instance", "ps-1")

		// The old connection, its writer blocked and its close frame not yet
		// written, says hello again and calls. It has left the registry, so
		// both are dropped: a stale hello must not replace the live connection.
		old.send(`{"jsonrpc":"2.0","id":"again","method":"bridge.hello","params":{"app":"photoshop","instance":"ps-1","methods":["work"]}}`)
		old.send(`{"jsonrpc":"2.0","id":"ping","method":"bridge.ping"}`)
		b.logs.waitN(t, 5*time.Second, 2, "message dropped: the session has left the registry", "session", oldID)
		if n := b.logs.count("session replaced by a new connection of the same instance"); n != 1 {
			t.Fatalf("%d replacements, want 1", n)
		}

		// The old connection wakes up and reads what was written to it.
		oldGot := map[int]bool{}
		var end error
		for range calls + 10 {
			m, err := old.read(10 * time.Second)
			if err != nil {
				end = err
				break
			}
			if m["method"] == "work" {
				oldGot[int(m["params"].(map[string]any)["seq"].(float64))] = true
			}
		}
		if ce := memCloseError(end); ce.Code != 4001 {
			t.Fatalf("old connection ended with %v, want close 4001", end)
		}

		moved, failed := 0, 0
		for range calls {
			r := tool.Expect(10*time.Second, func(m map[string]any) bool { _, isNum := m["id"].(float64); return isNum })
			seq := int(r["id"].(float64))
			if res, ok := r["result"].(map[string]any); ok {
				if oldGot[seq] {
					t.Errorf("call %d ran on both connections", seq)
				}
				if res["instance"] != "ps-1" {
					t.Errorf("call %d answered by %v", seq, res)
				}
				moved++
				continue
			}
			code, data := rpcError(t, r)
			if code != -32004 || data["may_have_run"] != true {
				t.Errorf("call %d: %v, want a result or -32004 may_have_run", seq, r)
			}
			failed++
		}
		if failed < len(oldGot) {
			t.Errorf("the old connection got %d calls but only %d failed -32004", len(oldGot), failed)
		}
		if moved == 0 {
			t.Errorf("no call moved to the new connection (old got %d, failed %d)", len(oldGot), failed)
		}
		t.Logf("old connection got %d calls; %d failed -32004, %d moved to the new connection", len(oldGot), failed, moved)
	})
}
