package session_test

import (
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dccbridge/dccbridge/session"
)

// A host that sends nothing for BusyAfter while it has a call is busy:
// routed around until it speaks again.
// In memory (mem_test.go), in synctest bubbles.

// Instance A gets a long call and sends nothing for BusyAfter: it is busy
// (bridge.sessions and a session.state event say so), untargeted calls go
// to instance B, a call only A offers and a call targeted at A wait, events
// for A are dropped and counted. A's next message (the long call's answer)
// makes it connected again, the waiting calls go to it, and untargeted calls
// come back to it.
func TestBusyRoutedAroundThenBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := startMem(t, session.Options{BusyAfter: 100 * time.Millisecond})
		watch := b.dial()
		watch.Hello(map[string]any{"app": "monitor", "kind": "tool", "instance": "mon-1"})
		if r := watch.Call("sub", "bridge.subscribe", map[string]any{"topics": []string{"session.state"}}); r["result"] == nil {
			t.Fatalf("subscribe: %v", r)
		}
		tool := b.dial()
		tool.Hello(map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-1"})
		b.memEchoHost("aftereffects", "ae-b", "whoami")
		a := b.dial()
		a.helloFirst(map[string]any{"app": "aftereffects", "instance": "ae-a", "methods": []string{"whoami", "render", "export"}})
		time.Sleep(time.Millisecond) // time is fake: A's next message is the most recent
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
		time.Sleep(time.Millisecond) // time is fake: A's answers are the most recent messages
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
	})
}
