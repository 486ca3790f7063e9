package session_test

import (
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dccbridge/dccbridge/session"
)

// Who gets in, and who is let go: connections that never say hello are
// closed after HelloTimeout and can never lock panels out; reconnecting
// sessions are capped, the one that dropped first leaving first.

// A connection that says nothing is closed with 1008 once HelloTimeout
// (10 s) has passed, not before; one that says hello in time stays.
func TestHelloDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := startMem(t, session.Options{})
		silent := b.dial()
		greeted := b.dial()
		time.Sleep(9 * time.Second)
		greeted.helloFirst(map[string]any{"app": "maya", "instance": "m-1"})
		synctest.Wait()
		if code, _, _ := silent.p.CloseCode(); code != 0 {
			t.Fatalf("closed with %d after 9 s, before the hello deadline", code)
		}
		time.Sleep(1500 * time.Millisecond)
		ce := silent.closed()
		if ce == nil || ce.Code != session.ClosePolicyViolation || !strings.Contains(ce.Reason, "no bridge.hello within 10s") {
			t.Fatalf("the silent connection ended with %+v, want 1008 \"no bridge.hello within 10s\"", ce)
		}
		if r := greeted.call("p", "bridge.ping", nil); r["result"] == nil {
			t.Fatalf("the greeted session after the deadline: %v", r)
		}
	})
}

// 1,030 connections that never say hello, at most MaxUnhelloed (256) at a
// time: a panel that connects among them and says hello gets in, and the
// connections closed to make room are the oldest silent ones.
func TestSilentConnectionsNeverLockOutAPanel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := startMem(t, session.Options{MaxSessions: 4})
		var silent []*memPeer
		for range 1030 {
			silent = append(silent, b.dial())
			synctest.Wait() // served in the order dialled
		}
		open := 0
		for _, p := range silent {
			if code, _, _ := p.p.CloseCode(); code == 0 {
				open++
			}
		}
		if open > 256 {
			t.Errorf("%d silent connections open, want at most MaxUnhelloed (256)", open)
		}
		panel, res := b.join(map[string]any{"app": "aftereffects", "instance": "ae-1"})
		if res["session"] == nil {
			t.Fatalf("the panel's hello: %v", res)
		}
		if r := panel.call("p", "bridge.ping", nil); r["result"] == nil {
			t.Fatalf("the panel after the flood: %v", r)
		}
		ce := silent[0].closed()
		if ce == nil || ce.Code != session.CloseTryAgainLater || !strings.Contains(ce.Reason, "to make room") {
			t.Fatalf("the oldest silent connection ended with %+v, want 1013 \"closed to make room…\"", ce)
		}
		if code, _, _ := silent[len(silent)-1].p.CloseCode(); code != 0 {
			t.Errorf("the newest silent connection was closed (%d) before its deadline", code)
		}
	})
}

// Beyond MaxReconnecting, the reconnecting session that dropped first
// leaves for good (its parked call fails -32004 may_have_run, session.left
// says why); the others still resume.
func TestReconnectingCap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := startMem(t, session.Options{MaxReconnecting: 2, BusyAfter: time.Hour})
		tool, _ := b.join(map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-1"})
		hello := func(i int) map[string]any {
			return map[string]any{"app": "photoshop", "instance": fmt.Sprint("ps-", i), "boot": "b", "replay": true, "methods": []string{"save"}}
		}
		var hosts []*memPeer
		for i := range 3 {
			h, _ := b.join(hello(i))
			hosts = append(hosts, h)
			tool.send(map[string]any{"jsonrpc": "2.0", "id": i, "method": "photoshop.save", "meta": map[string]any{"target": fmt.Sprint("ps-", i)}})
			h.nextCall("save", 1)
		}
		for _, h := range hosts { // ps-0 drops first
			h.drop()
			synctest.Wait()
		}
		r := tool.Expect(memWait, func(m map[string]any) bool { return m["id"] == float64(0) })
		code, data := rpcError(t, r)
		if code != -32004 || data["may_have_run"] != true || !strings.Contains(fmt.Sprint(r["error"]), "too many reconnecting sessions") {
			t.Fatalf("the call to the first host that dropped: %v, want -32004 may_have_run, too many reconnecting", r)
		}
		if s := b.stateOf("ps-0"); s != nil {
			t.Errorf("ps-0 still listed: %+v", s)
		}
		for i := 1; i < 3; i++ {
			if s := b.stateOf(fmt.Sprint("ps-", i)); s == nil || s.State != session.StateReconnecting {
				t.Errorf("ps-%d: %+v, want reconnecting", i, s)
			}
		}
		again, res := b.join(hello(2))
		if res["resumed"] != true || res["pending"] != float64(1) {
			t.Fatalf("ps-2's hello: %v, want resumed with its call pending", res)
		}
		again.nextCall("save", 2)
	})
}

// A tool that offers nothing and does not replay (a `bridge call`) leaves
// at once when its connection drops, with nothing left to resume; a host
// that drops waits for its instance.
func TestDroppedToolLeavesNoGhost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := startMem(t, session.Options{})
		tool, _ := b.join(map[string]any{"app": "cli", "kind": "tool", "instance": "cli-1"})
		host, _ := b.join(map[string]any{"app": "maya", "instance": "m-1", "methods": []string{"export"}})
		tool.drop()
		host.drop()
		synctest.Wait()
		if s := b.stateOf("cli-1"); s != nil {
			t.Errorf("the dropped tool is still listed: %+v", s)
		}
		if s := b.stateOf("m-1"); s == nil || s.State != session.StateReconnecting {
			t.Errorf("the dropped host: %+v, want reconnecting", s)
		}
		b.logs.wait(t, time.Second, "session left", "instance", "cli-1", "why", "dropped, with nothing to resume (a tool that offers no methods and does not replay)")
	})
}
