package session_test

import (
	"encoding/json"
	"strconv"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dccbridge/dccbridge/session"
)

// Events (subscribe, publish, session.*) and bridge.sessions.
// In memory (mem_test.go), in synctest bubbles.

func TestRoutingEvents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := startMem(t, session.Options{})
		sub, _ := b.joinSID(map[string]any{"app": "tracker", "kind": "tool", "instance": "sub-1"})
		wild, _ := b.joinSID(map[string]any{"app": "tracker", "kind": "tool", "instance": "sub-2"})
		pub, _ := b.joinSID(map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-1"})

		if r := rtResult(t, sub, `1`, "bridge.subscribe", `{"topics":["session.*","build.done"]}`); rtJSON(r) != `{"topics":["session.*","build.done"]}` {
			t.Fatalf("subscribe result %v", r)
		}
		rtResult(t, wild, `1`, "bridge.subscribe", `{"topics":["build.*"]}`)
		rtResult(t, pub, `1`, "bridge.subscribe", `{"topics":["build.done"]}`)

		// session.joined and session.left, to session.* only.
		ae, aeSID := b.joinSID(map[string]any{"app": "AfterEffects", "instance": "ae-1", "methods": []string{"get_items"}})
		d, _ := rtEvent(t, sub, "session.joined").(map[string]any)
		if d["session"] != aeSID || d["app"] != "aftereffects" || d["instance"] != "ae-1" {
			t.Fatalf("session.joined data %v", d)
		}
		ae.close(session.CloseNormal, "")
		d, _ = rtEvent(t, sub, "session.left").(map[string]any)
		if d["session"] != aeSID || d["app"] != "aftereffects" || d["instance"] != "ae-1" {
			t.Fatalf("session.left data %v", d)
		}

		// publish: exact and prefix subscribers get it, the publisher does not.
		pub.Send(`{"jsonrpc":"2.0","id":"p1","method":"bridge.publish","params":{"topic":"build.done","data":{"shot" : "sh010"}}}`)
		if got, want := rtNext(t, pub), `{"jsonrpc":"2.0","id":"p1","result":{"delivered":2}}`; got != want {
			t.Fatalf("publish reply %s, want %s", got, want)
		}
		for _, p := range []*memPeer{sub, wild} {
			m := rtMatch(t, rtNext(t, p), `{"jsonrpc":"2.0","method":"bridge.event","params":{"topic":"build.done","data":{"shot" : "sh010"},"at":"<AT>"}}`)
			rtCheckAt(t, m[0])
		}
		pub.Send(`{"jsonrpc":"2.0","id":"p2","method":"bridge.publish","params":{"topic":"build.started"}}`)
		if got, want := rtNext(t, pub), `{"jsonrpc":"2.0","id":"p2","result":{"delivered":1}}`; got != want {
			t.Fatalf("publish reply %s, want %s", got, want)
		}
		rtMatch(t, rtNext(t, wild), `{"jsonrpc":"2.0","method":"bridge.event","params":{"topic":"build.started","data":null,"at":"<AT>"}}`)

		// Unsubscribed: no longer counted.
		if r := rtResult(t, wild, `2`, "bridge.unsubscribe", `{"topics":["build.*"]}`); rtJSON(r) != `{"topics":[]}` {
			t.Fatalf("unsubscribe result %v", r)
		}
		if r := rtResult(t, pub, `"p3"`, "bridge.publish", `{"topic":"build.done","data":1}`); rtJSON(r) != `{"delivered":1}` {
			t.Fatalf("publish result %v", r)
		}
		rtEvent(t, sub, "build.done")

		// The bridge's own topics are not for peers.
		for i, topic := range []string{"session.x", "session.joined", "bridge.anything", "context.changed"} {
			id := strconv.Itoa(100 + i)
			pub.Send(`{"jsonrpc":"2.0","id":` + id + `,"method":"bridge.publish","params":{"topic":"` + topic + `","data":{}}}`)
			rtExpectError(t, pub, id, -32602)
		}
		for _, p := range []*memPeer{sub, wild, pub} {
			rtQuiet(t, p)
		}
	})
}

func TestRoutingSessions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := startMem(t, session.Options{})
		ae, aeSID := b.joinSID(map[string]any{"app": "AfterEffects", "kind": "host", "instance": "ae-7f3a", "boot": "b-91c2",
			"label": "AYON panel", "version": "1.4.0", "methods": []string{"get_items", "open"}, "replay": true})
		tool, _ := b.joinSID(map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-1"})
		tool.Send(`{"jsonrpc":"2.0","id":"busy","method":"aftereffects.get_items"}`)
		fid := rtForwarded(t, ae, "get_items", "", "pipeline", "pub-1", 1, 600000)
		rtResult(t, tool, `"ctx"`, "bridge.context", `{"app":"aftereffects","context":{"project":"P"}}`)

		tool.Send(`{"jsonrpc":"2.0","id":"s","method":"bridge.sessions","params":{"app":"AfterEffects"}}`)
		got := rtNext(t, tool)
		var r struct {
			ID     string           `json:"id"`
			Result []map[string]any `json:"result"`
		}
		if err := json.Unmarshal([]byte(got), &r); err != nil || r.ID != "s" || len(r.Result) != 1 {
			t.Fatalf("bridge.sessions for aftereffects: %s", got)
		}
		s := r.Result[0]
		for k, want := range map[string]any{
			"session": aeSID, "app": "aftereffects", "kind": "host", "instance": "ae-7f3a", "boot": "b-91c2",
			"label": "AYON panel", "version": "1.4.0", "state": "connected", "in_flight": 1.0, "parked": 0.0,
		} {
			if s[k] != want {
				t.Errorf("sessions[%q] = %v, want %v", k, s[k], want)
			}
		}
		if got := rtJSON(s["methods"]); got != `["aftereffects.get_items","aftereffects.open"]` {
			t.Errorf("methods = %s", got)
		}
		if got := rtJSON(s["context"]); got != `{"project":"P"}` {
			t.Errorf("context = %s", got)
		}
		if rtt, ok := s["rtt_ms"].(float64); !ok || rtt < 0 {
			t.Errorf("rtt_ms = %v", s["rtt_ms"])
		}
		for _, k := range []string{"connected_at", "last_seen"} {
			v, _ := s[k].(string)
			ts, err := time.Parse(time.RFC3339Nano, v)
			if err != nil || time.Since(ts) > time.Minute || time.Since(ts) < 0 {
				t.Errorf("%s = %q", k, v)
			}
		}

		all := rtSessions(t, tool)
		if len(all) != 2 || all[0]["app"] != "aftereffects" || all[1]["app"] != "pipeline" {
			t.Fatalf("bridge.sessions: %v", all)
		}
		ae.Send(`{"jsonrpc":"2.0","id":"` + fid + `","result":[]}`)
		if got, want := rtNext(t, tool), `{"jsonrpc":"2.0","id":"busy","result":[],"meta":`+rtAnswerMeta("aftereffects", "ae-7f3a", aeSID)+`}`; got != want {
			t.Fatalf("caller got %s, want %s", got, want)
		}
		if all := rtSessions(t, tool); all[0]["in_flight"] != 0.0 {
			t.Fatalf("in_flight after the reply: %v", all[0]["in_flight"])
		}
	})
}
