package session_test

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/dccbridge/dccbridge/session"
)

// A new hello of an instance that is still connected replaces it.

// A second hello for a live app + instance closes the old connection with
// 4001 "replaced"; the old one's unanswered call fails -32004 (the peers
// do not replay), and calls now go to the new connection.
func TestHelloReplacesLiveInstance(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := startMem(t, session.Options{})
		tool := b.dial()
		tool.Hello(map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-1"})

		old := b.dial()
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

		neu := b.dial()
		newHello := neu.Hello(map[string]any{"app": "AfterEffects", "instance": "ae-1", "boot": "b-2", "methods": []string{"whoami"}})
		if newHello["session"] == oldHello["session"] {
			t.Fatalf("the new connection got the old session id %v", newHello["session"])
		}

		if ce := old.closed(); ce == nil || ce.Code != 4001 || ce.Reason != "replaced" {
			t.Fatalf("old connection closed with %v, want 4001 \"replaced\"", ce)
		}
		b.logs.wait(t, 5*time.Second, "session replaced by a new connection of the same instance",
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
	})
}

// A second hello for a replay instance whose connection is still open, same
// boot: the old connection is closed with 4001 and its written call is
// re-sent on the new one with the same forwarded id.
func TestReplacementMovesWrittenCalls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := startMem(t, session.Options{ResumeWait: time.Minute})
		tool := b.dial()
		tool.Hello(map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-1"})
		hello := map[string]any{"app": "aftereffects", "instance": "ae-1", "boot": "b-1", "replay": true, "methods": []string{"render"}}
		old := b.dial()
		old.helloFirst(hello)
		tool.Send(`{"jsonrpc":"2.0","id":"r1","method":"aftereffects.render"}`)
		fid, _ := old.nextCall("render", 1)

		neu := b.dial()
		res := neu.helloFirst(hello)
		if res["resumed"] != true || res["pending"] != float64(1) {
			t.Fatalf("replacing hello: %v", res)
		}
		again, _ := neu.nextCall("render", 2)
		if again != fid {
			t.Fatalf("re-sent as %q, first sent as %q", again, fid)
		}
		if m, err := old.read(memWait); err == nil {
			t.Fatalf("old connection got %v after being replaced", m)
		} else if ce := memCloseError(err); ce.Code != 4001 || ce.Reason != "replaced" {
			t.Fatalf("old connection ended with %v, want 4001 replaced", err)
		}
		neu.answer(again, "rendered")
		r := reply(t, tool, "r1")
		if r["result"] != "rendered" || r["meta"].(map[string]any)["session"] != res["session"] {
			t.Fatalf("tool got %v", r)
		}
		wantState(t, tool, "aftereffects", "ae-1", "connected", 0, 0)
	})
}

// A replay panel back with the same boot but without the method of its
// parked call (it registers handlers later): the call may have run there,
// so it fails -32004 may_have_run and never runs on the other instance.
func TestResumeWithoutTheMethodNeverRunsElsewhere(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := startMem(t, session.Options{ResumeWait: time.Minute})
		hello := map[string]any{"app": "aftereffects", "instance": "ae-1", "boot": "b1", "replay": true, "methods": []string{"open"}}
		host := b.dial()
		host.helloFirst(hello)
		other := b.dial()
		other.helloFirst(map[string]any{"app": "aftereffects", "instance": "ae-2", "methods": []string{"open"}})
		tool := b.dial()
		tool.Send(`{"jsonrpc":"2.0","id":"o1","method":"aftereffects.open","meta":{"target":"ae-1"}}`)
		host.nextCall("open", 1)
		host.drop()
		b.logs.wait(t, memWait, "session state", "instance", "ae-1", "state", "reconnecting")
		wantState(t, tool, "aftereffects", "ae-1", "reconnecting", 0, 1)

		back := b.dial()
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
	})
}
