package session_test

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dccbridge/dccbridge/session"
)

// A session's life: a new hello of a connected instance replaces it, and
// a peer that stops answering pings is dropped. Over memconn in synctest
// bubbles.

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

// A peer that stops answering pings is dropped after HeartbeatTimeout
// (defaults: a ping every 5 s, 15 s for its pong), waits ResumeWait for its
// instance, then leaves; a peer that answers stays. Over memconn, whose
// peer can stop answering pings, in a synctest bubble.
func TestHeartbeatDropsSilentPeer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval, timeout = 5 * time.Second, 15 * time.Second
		b := startMem(t, session.Options{HeartbeatInterval: interval, HeartbeatTimeout: timeout})
		live, _ := b.join(map[string]any{"app": "aftereffects", "instance": "ae-live"})
		silent, _ := b.join(map[string]any{"app": "aftereffects", "instance": "ae-silent"})
		silent.p.SetPong(false)
		start := time.Now()
		instances := func() []string {
			var list []string
			for _, s := range b.r.Sessions() {
				list = append(list, s.Instance)
			}
			return list
		}

		// The first ping goes out at start+interval; its pong is due within
		// the timeout.
		time.Sleep(interval + timeout - time.Millisecond)
		synctest.Wait()
		if got := instances(); !slices.Equal(got, []string{"ae-live", "ae-silent"}) {
			t.Fatalf("at %v: sessions %v, want both", time.Since(start), got)
		}
		time.Sleep(2 * time.Millisecond)
		synctest.Wait()
		states := func() map[string]session.State {
			m := map[string]session.State{}
			for _, s := range b.r.Sessions() {
				m[s.Instance] = s.State
			}
			return m
		}
		if got := states(); got["ae-live"] != session.StateConnected || got["ae-silent"] != session.StateReconnecting {
			t.Fatalf("at %v: states %v, want ae-live connected, ae-silent reconnecting", time.Since(start), got)
		}
		// It waits ResumeWait (default 30 s) for its instance, then leaves.
		time.Sleep(30 * time.Second)
		synctest.Wait()
		if got := instances(); !slices.Equal(got, []string{"ae-live"}) {
			t.Fatalf("at %v: sessions %v, want only ae-live", time.Since(start), got)
		}
		rec := b.logs.wait(t, 0, "session ended", "instance", "ae-silent")
		if !strings.Contains(rec.Attrs["cause"], "no pong within 15s") {
			t.Fatalf("silent session ended by %q", rec.Attrs["cause"])
		}

		time.Sleep(10 * (interval + timeout))
		synctest.Wait()
		if got := instances(); !slices.Equal(got, []string{"ae-live"}) {
			t.Fatalf("at %v: sessions %v, want ae-live still there", time.Since(start), got)
		}

		b.shutdown()
		if ce := live.closed(); ce == nil || ce.Code != session.CloseGoingAway {
			t.Fatalf("live peer ended with %v, want 1001", ce)
		}
	})
}

// Log lines are written off the sessions' goroutines, yet each session's
// lines come in the order they happened, and every line is written by the
// time Shutdown returns: 40 panels join and are shut down, and the log has
// each one's "session joined" before its "session ended", all 80 of them.
func TestLogLinesInOrderAndWrittenByShutdown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := startMem(t, session.Options{})
		const panels = 40
		for i := range panels {
			b.join(map[string]any{"app": "aftereffects", "instance": "ae-" + strconv.Itoa(i), "methods": []string{"open"}})
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := b.r.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		joined, ended := map[string]int{}, map[string]int{}
		for i, rec := range b.logs.all() {
			switch rec.Msg {
			case "session joined":
				joined[rec.Attrs["session"]] = i + 1
			case "session ended":
				ended[rec.Attrs["session"]] = i + 1
			}
		}
		if len(joined) != panels || len(ended) != panels {
			t.Fatalf("when Shutdown returned: %d sessions logged as joined and %d as ended, want %d of each", len(joined), len(ended), panels)
		}
		for id, at := range joined {
			if ended[id] < at {
				t.Errorf("session %s: logged as ended (line %d) before it joined (line %d)", id, ended[id], at)
			}
		}
	})
}
