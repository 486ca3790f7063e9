package session_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dccbridge/dccbridge/session"
)

// A replay host that drops comes back: same-boot resume re-sends its calls
// with the same forwarded id, a new boot or a non-replay host is told
// -32004 may_have_run.
// In memory (mem_test.go), in synctest bubbles.

// replies reads p's messages until it has the replies to every id (in any
// order; requests and events in between are skipped) and returns them by id.
func replies(t *testing.T, p *memPeer, ids ...string) map[string]map[string]any {
	t.Helper()
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	got := map[string]map[string]any{}
	deadline := time.Now().Add(memWait)
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
func reply(t *testing.T, p *memPeer, id string) map[string]any {
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
func sessionOf(t *testing.T, p *memPeer, app, instance string) map[string]any {
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
func wantState(t *testing.T, p *memPeer, app, instance, state string, inFlight, parked int) {
	t.Helper()
	s := sessionOf(t, p, app, instance)
	if s == nil || s["state"] != state || s["in_flight"] != float64(inFlight) || s["parked"] != float64(parked) {
		t.Fatalf("bridge.sessions for %s %s: %v, want state %s, in_flight %d, parked %d", app, instance, s, state, inFlight, parked)
	}
}

// stateEvent waits for the session.state event of instance with state and
// returns its data.
func stateEvent(t *testing.T, watch *memPeer, instance, state string) map[string]any {
	t.Helper()
	m := watch.Expect(memWait, func(m map[string]any) bool {
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

// A replay host's connection is cut (no close frame) while a call runs, 100
// times; each time it comes back with the same instance and boot, is told
// resumed with one pending call, gets that call again right after the hello
// result with the same forwarded id and attempt 2, answers it from its
// cache, and the tool gets the result. No call is lost, none runs twice.
// Every other cycle the host says hello again before its old connection
// drops, so the new hello replaces a connection the bridge still thinks
// live; the others wait until it is reconnecting.
func TestResumeDropCyclesRunOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := startMem(t, session.Options{ResumeWait: 5 * time.Second})
		tool := b.dial()
		tool.Hello(map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-1"})
		hello := map[string]any{"app": "aftereffects", "instance": "ae-1", "boot": "b-1", "replay": true, "methods": []string{"save"}}
		host := b.dial()
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
			gone := host
			if i%2 == 0 {
				gone.drop()
				b.logs.wait(t, memWait, "session state", "session", sid, "state", "reconnecting")
			}

			host = b.dial()
			res := host.helloFirst(hello)
			if i%2 == 1 { // the new hello came first: the old connection was live
				if ce := gone.closed(); ce == nil || ce.Code != session.CloseReplaced {
					t.Fatalf("cycle %d: the replaced connection ended with %v, want 4001", i, ce)
				}
				gone.drop()
			}
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
	})
}

// The host comes back as a new boot (reloaded: its cache is gone): the call
// it had received fails -32004 may_have_run as the new hello arrives, long
// before the resume wait would end; an idempotent call is re-sent to the new
// boot instead.
func TestResumeNewBootMayHaveRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := startMem(t, session.Options{ResumeWait: time.Minute})
		tool := b.dial()
		tool.Hello(map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-1"})
		hello := map[string]any{"app": "aftereffects", "instance": "ae-1", "boot": "b-1", "replay": true, "methods": []string{"save", "get_items"}}
		host := b.dial()
		sid := host.helloFirst(hello)["session"].(string)

		tool.Send(`{"jsonrpc":"2.0","id":"save","method":"aftereffects.save"}`)
		saveFID, _ := host.nextCall("save", 1)
		tool.Send(`{"jsonrpc":"2.0","id":"items","method":"aftereffects.get_items","meta":{"idempotent":true}}`)
		itemsFID, _ := host.nextCall("get_items", 1)
		host.drop()
		b.logs.wait(t, memWait, "session state", "session", sid, "state", "reconnecting")
		wantState(t, tool, "aftereffects", "ae-1", "reconnecting", 0, 2) // both parked, neither failed yet

		hello["boot"] = "b-2"
		host = b.dial()
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
	})
}

// A host that does not replay: a written non-idempotent call fails -32004
// may_have_run as soon as it drops, and is never sent to it again when it
// comes back (same boot); an idempotent call waits and is re-sent.
func TestResumeNonReplayHostFailsAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := startMem(t, session.Options{ResumeWait: time.Minute})
		tool := b.dial()
		tool.Hello(map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-1"})
		hello := map[string]any{"app": "aftereffects", "instance": "ae-1", "boot": "b-1", "methods": []string{"save", "get_items"}}
		host := b.dial()
		host.helloFirst(hello)

		tool.Send(`{"jsonrpc":"2.0","id":"save","method":"aftereffects.save"}`)
		saveFID, _ := host.nextCall("save", 1)
		tool.Send(`{"jsonrpc":"2.0","id":"items","method":"aftereffects.get_items","meta":{"idempotent":true}}`)
		itemsFID, _ := host.nextCall("get_items", 1)
		host.drop()
		wantMayHaveRun(t, reply(t, tool, "save"), "ae-1", "aftereffects.save")
		wantState(t, tool, "aftereffects", "ae-1", "reconnecting", 0, 1)

		host = b.dial()
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
