package session_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dccbridge/dccbridge/session"
	"github.com/dccbridge/dccbridge/web"
)

// While a peer is away: calls parked and shown, the resume wait against
// a call's own timeout, replies held for a replay caller, a call made
// before its panel has connected.
// In memory (mem_test.go), in synctest bubbles.

// A call made before the panel has connected waits (meta.wait_ms) and goes
// through when the panel says hello.
func TestWaitForPanel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := startMem(t, session.Options{})
		tool := b.dial()
		tool.Hello(map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-1"})
		tool.Send(`{"jsonrpc":"2.0","id":"open","method":"aftereffects.open","params":{"path":"a.aep"},"meta":{"wait_ms":30000}}`)
		rtQuiet(t, tool) // the call is waiting now

		host := b.dial()
		host.helloFirst(map[string]any{"app": "aftereffects", "instance": "ae-1", "boot": "b-1", "replay": true, "methods": []string{"open"}})
		fid, params := host.nextCall("open", 1)
		if params["path"] != "a.aep" {
			t.Fatalf("params %v", params)
		}
		host.answer(fid, "opened")
		if r := reply(t, tool, "open"); r["result"] != "opened" {
			t.Fatalf("waited call: %v", r)
		}
	})
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
			b := startMem(t, session.Options{ResumeWait: 30 * time.Second})
			tool, _ := b.join(toolHello)
			host, _ := b.join(hostHello)
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
			b := startMem(t, session.Options{ResumeWait: 30 * time.Second})
			tool, _ := b.join(toolHello)
			host, _ := b.join(hostHello)
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
			// cancelled; then it gets a new call.
			time.Sleep(time.Second)
			host, res := b.join(hostHello)
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
			b := startMem(t, session.Options{ResumeWait: 30 * time.Second})
			host, _ := b.join(hostHello)
			tool, _ := b.join(map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-1", "boot": "t-1", "replay": true})
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

// A replay panel's own call is in flight when its connection drops; the
// callee answers while it is away; the panel comes back with the same boot
// and gets the reply, with its own id, right after its hello result; a
// second call answered after it is back reaches it too. A non-replay
// caller that drops has its call cancelled at the host.
func TestReplayCallerGetsReplyAfterReconnect(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := startMem(t, session.Options{ResumeWait: time.Minute})
		pub := b.dial()
		pubSID := pub.helloFirst(map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-1", "methods": []string{"publish"}})["session"].(string)
		hello := map[string]any{"app": "aftereffects", "instance": "ae-1", "boot": "b-1", "replay": true}
		panel := b.dial()
		sid := panel.helloFirst(hello)["session"].(string)

		panel.send(`{"jsonrpc":"2.0","id":"p1","method":"pipeline.publish","params":{"n":1}}`)
		panel.send(`{"jsonrpc":"2.0","id":"p2","method":"pipeline.publish","params":{"n":2}}`)
		fids := map[float64]string{}
		for range 2 {
			fid, params := pub.nextCall("publish", 1)
			fids[params["n"].(float64)] = fid
		}
		panel.drop()
		b.logs.wait(t, memWait, "session state", "session", sid, "state", "reconnecting")
		pub.answer(fids[1], "published 1") // held for the panel

		panel = b.dial()
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
		other := b.dial()
		other.helloFirst(map[string]any{"app": "photoshop", "instance": "ps-1", "boot": "b-1"})
		other.send(`{"jsonrpc":"2.0","id":"p3","method":"pipeline.publish","params":{"n":3}}`)
		fid, _ := pub.nextCall("publish", 1)
		other.drop()
		c := pub.next()
		if p, _ := c["params"].(map[string]any); c["method"] != "$/cancelRequest" || p["id"] != fid {
			t.Fatalf("host after the non-replay caller dropped: %v, want $/cancelRequest for %s", c, fid)
		}
	})
}

// While a replay host is away, bridge.sessions, GET /api/sessions and the
// session.state event show it reconnecting with its calls parked; a parked
// call the caller cancels is not re-sent; a new call to the app waits (even
// though another session offers a method in the app's namespace), and goes
// to the host after the parked calls when it is back.
func TestParkedCallsShown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := startMem(t, session.Options{ResumeWait: time.Minute})
		watch := b.dial()
		watch.Hello(map[string]any{"app": "monitor", "kind": "tool", "instance": "mon-1"})
		watch.Call("sub", "bridge.subscribe", map[string]any{"topics": []string{"session.*"}})
		tool := b.dial()
		// An AYON-style tool serving a route in the app's namespace.
		tool.Hello(map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-1", "methods": []string{"AfterEffects.publish_route"}})
		hello := map[string]any{"app": "aftereffects", "instance": "ae-1", "boot": "b-1", "replay": true, "methods": []string{"render"}}
		host := b.dial()
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
		host.drop()
		if d := stateEvent(t, watch, "ae-1", "reconnecting"); d["parked"] != float64(3) || d["in_flight"] != float64(0) {
			t.Fatalf("session.state event: %v", d)
		}
		wantState(t, tool, "aftereffects", "ae-1", "reconnecting", 0, 3)

		// GET /api/sessions, from the status page's handler.
		h := web.New(web.Options{Router: b.r, Addr: "127.0.0.1:8098", Logger: quietLogger()})
		defer h.Close()
		resp := httptest.NewRecorder()
		h.ServeHTTP(resp, httptest.NewRequest(http.MethodGet, "http://127.0.0.1:8098/api/sessions", nil))
		var list []session.SessionInfo
		if err := json.NewDecoder(resp.Body).Decode(&list); err != nil || resp.Code != http.StatusOK {
			t.Fatalf("GET /api/sessions: %d %v", resp.Code, err)
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

		host = b.dial()
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
	})
}
