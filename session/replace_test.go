package session_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/dccbridge/dccbridge/internal/bridgetest"
	"github.com/dccbridge/dccbridge/session"
	"github.com/dccbridge/dccbridge/web"
)

// A new hello of an instance that is still connected replaces it.

// A second hello for a live app + instance closes the old connection with
// 4001 "replaced"; the old one's unanswered call fails -32004 (the peers
// do not replay), and calls now go to the new connection.
func TestHelloReplacesLiveInstance(t *testing.T) {
	logs, logger := newLogWatch(t)
	b := bridgetest.Start(t, &session.Options{Logger: logger}, &web.Options{Logger: logger})
	tool := bridgetest.Dial(t, b.WSURL, nil)
	tool.Hello(map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-1"})

	old := bridgetest.Dial(t, b.WSURL, nil)
	oldHello := old.Hello(map[string]any{"app": "aftereffects", "instance": "ae-1", "boot": "b-1", "methods": []string{"whoami", "render"}})

	// The old connection answers a call, and holds another unanswered.
	tool.Send(`{"jsonrpc":"2.0","id":"w1","method":"aftereffects.whoami"}`)
	fwd := old.Expect(5*time.Second, func(m map[string]any) bool { return m["method"] == "whoami" })
	old.Send(map[string]any{"jsonrpc": "2.0", "id": fwd["id"], "result": "old"})
	if r := tool.Expect(5*time.Second, func(m map[string]any) bool { return m["id"] == "w1" }); r["result"] != "old" {
		t.Fatalf("whoami before the replacement: %v", r)
	}
	tool.Send(`{"jsonrpc":"2.0","id":"r1","method":"aftereffects.render"}`)
	old.Expect(5*time.Second, func(m map[string]any) bool { return m["method"] == "render" })

	neu := bridgetest.Dial(t, b.WSURL, nil)
	newHello := neu.Hello(map[string]any{"app": "AfterEffects", "instance": "ae-1", "boot": "b-2", "methods": []string{"whoami"}})
	if newHello["session"] == oldHello["session"] {
		t.Fatalf("the new connection got the old session id %v", newHello["session"])
	}

	if code := old.Closed(5 * time.Second); code != 4001 {
		t.Fatalf("old connection closed with %v, want 4001", code)
	}
	if ce := closeError(old.Err()); ce.Reason != "replaced" {
		t.Fatalf("old connection close reason %q, want \"replaced\"", ce.Reason)
	}
	logs.wait(t, 5*time.Second, "session replaced by a new connection of the same instance",
		"app", "aftereffects", "instance", "ae-1", "old", oldHello["session"].(string), "new", newHello["session"].(string))

	// The call the old connection had received fails: neither peer
	// promised replay, so it must not run twice.
	r := tool.Expect(5*time.Second, func(m map[string]any) bool { return m["id"] == "r1" })
	code, data := rpcError(t, r)
	if code != -32004 || data["may_have_run"] != true || data["instance"] != "ae-1" || data["method"] != "aftereffects.render" {
		t.Fatalf("render written to the replaced connection: got %v, want -32004 with may_have_run", r)
	}

	// Calls now go to the new connection.
	tool.Send(`{"jsonrpc":"2.0","id":"w2","method":"aftereffects.whoami"}`)
	fwd = neu.Expect(5*time.Second, func(m map[string]any) bool { return m["method"] == "whoami" })
	neu.Send(map[string]any{"jsonrpc": "2.0", "id": fwd["id"], "result": "new"})
	r = tool.Expect(5*time.Second, func(m map[string]any) bool { return m["id"] == "w2" })
	if r["result"] != "new" || r["meta"].(map[string]any)["session"] != newHello["session"] {
		t.Fatalf("whoami after the replacement: %v", r)
	}

	list := tool.Call("s", "bridge.sessions", map[string]any{"app": "aftereffects"})["result"].([]any)
	if len(list) != 1 || list[0].(map[string]any)["session"] != newHello["session"] {
		t.Fatalf("sessions of aftereffects after the replacement: %v", list)
	}
}

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

// A replaced connection that was stalled (its socket full, calls queued
// behind) and then drains must not be written the calls that moved to the
// new connection: each call is either written to the old connection (and
// fails -32004) or delivered to the new one, never both, never neither.
func TestHelloReplacesStalledInstance(t *testing.T) {
	logs, logger := newLogWatch(t)
	b := bridgetest.Start(t, &session.Options{Logger: logger, WriteTimeout: time.Minute, HeartbeatInterval: time.Minute, BusyAfter: time.Minute}, &web.Options{Logger: logger})
	tool := bridgetest.Dial(t, b.WSURL, nil)
	tool.Hello(map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-1"})
	old := dialRaw(t, b.WSURL, nil)
	oldID := old.hello(map[string]any{"app": "photoshop", "instance": "ps-1", "methods": []string{"work"}})["session"].(string)

	// Fill the old connection's socket and queue: it does not read now.
	// Loopback buffers hold at most a few MiB (tcp_wmem's 4 MiB cap plus
	// the receiver's window); 40 × 256 KiB is 10 MiB.
	const calls, size = 40, 256 << 10
	pad := strings.Repeat("x", size)
	for i := range calls {
		tool.Send(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"photoshop.work","params":{"seq":%d,"pad":%q}}`, i, i, pad))
	}
	// The tool's frames are handled in order: once this reply is back,
	// every call has been assigned to the old connection.
	if got := tool.Call("s", "bridge.sessions", map[string]any{"app": "photoshop"})["result"].([]any); got[0].(map[string]any)["in_flight"] != float64(calls) {
		t.Fatalf("in flight to the old connection: %v", got)
	}

	startEchoHost(t, b.WSURL, "photoshop", "ps-1", "work") // the new connection
	logs.wait(t, 5*time.Second, "session replaced by a new connection of the same instance", "instance", "ps-1")

	// The old connection, its writer blocked and its close frame not yet
	// written, says hello again and calls. It has left the registry, so
	// both are dropped: a stale hello must not replace the live connection.
	old.send(`{"jsonrpc":"2.0","id":"again","method":"bridge.hello","params":{"app":"photoshop","instance":"ps-1","methods":["work"]}}`)
	old.send(`{"jsonrpc":"2.0","id":"ping","method":"bridge.ping"}`)
	logs.waitN(t, 5*time.Second, 2, "message dropped: the session has left the registry", "session", oldID)
	if n := logs.count("session replaced by a new connection of the same instance"); n != 1 {
		t.Fatalf("%d replacements, want 1", n)
	}

	// The old connection wakes up and drains its socket.
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
	if ce := closeError(end); ce.Code != 4001 {
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
}
