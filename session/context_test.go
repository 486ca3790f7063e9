package session_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/dccbridge/dccbridge/session"
)

// bridge.context: a context pushed to an app's hosts, stored, and read back.
// In memory (mem_test.go), in synctest bubbles.

func TestRoutingContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := startMem(t, session.Options{})
		ae1, sid1 := b.joinSID(map[string]any{"app": "aftereffects", "instance": "ae-1", "methods": []string{"set_context", "get_items"}})
		ae2, sid2 := b.joinSID(map[string]any{"app": "AfterEffects", "instance": "ae-2", "methods": []string{"set_context"}})
		ae3, _ := b.joinSID(map[string]any{"app": "aftereffects", "instance": "ae-3", "methods": []string{"get_items"}})
		ps, _ := b.joinSID(map[string]any{"app": "photoshop", "instance": "ps-1", "methods": []string{"set_context"}})
		watcher, _ := b.joinSID(map[string]any{"app": "tracker", "kind": "tool", "instance": "w-1"})
		tool, _ := b.joinSID(map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-1"})
		rtResult(t, watcher, `"s"`, "bridge.subscribe", `{"topics":["context.changed"]}`)
		rtResult(t, tool, `"s"`, "bridge.subscribe", `{"topics":["context.changed"]}`)

		ctx := `{"project":"P", "folder":"/shots/sh010","task":"comp"}`
		tool.Send(`{"jsonrpc":"2.0","id":"ctx-1","method":"bridge.context","params":{"app":"AfterEffects","context":` + ctx + `}}`)
		// Each aftereffects host that offers set_context gets it, the context as
		// params, with the meta every routed call carries.
		fid1 := rtForwarded(t, ae1, "set_context", ctx, "pipeline", "pub-1", 1, 10000)
		fid2 := rtForwarded(t, ae2, "set_context", ctx, "pipeline", "pub-1", 1, 10000)
		ev := rtEvent(t, watcher, "context.changed")
		if got, want := rtJSON(ev), `{"app":"aftereffects","context":{"folder":"/shots/sh010","project":"P","task":"comp"},"instance":""}`; got != want {
			t.Fatalf("context.changed data = %s, want %s", got, want)
		}
		ae2.Send(`{"jsonrpc":"2.0","id":"` + fid2 + `","error":{"code":-32000,"message":"no project open"}}`)
		rtQuiet(t, tool) // no reply before every host has answered; no event to the publisher
		ae1.Send(`{"jsonrpc":"2.0","id":"` + fid1 + `","result":true}`)
		got := rtNext(t, tool)
		var res struct {
			ID     string                `json:"id"`
			Result session.ContextResult `json:"result"`
		}
		if err := json.Unmarshal([]byte(got), &res); err != nil || res.ID != "ctx-1" || res.Result.App != "aftereffects" || rtNorm(string(res.Result.Context)) != rtNorm(ctx) {
			t.Fatalf("bridge.context reply %s", got)
		}
		slices.SortFunc(res.Result.Sessions, func(a, b session.ContextTaker) int { return strings.Compare(a.Instance, b.Instance) })
		if s := res.Result.Sessions; len(s) != 2 ||
			s[0].Session != sid1 || s[0].Instance != "ae-1" || !s[0].OK || s[0].Error != nil ||
			s[1].Session != sid2 || s[1].Instance != "ae-2" || s[1].OK || !strings.Contains(string(s[1].Error), "no project open") {
			t.Fatalf("sessions that took it: %s", got)
		}
		for _, p := range []*memPeer{ae3, ps, watcher} {
			rtQuiet(t, p) // no set_context without the offer, none to another app, one event only
		}

		// Read back, with and without a target.
		if r := rtResult(t, tool, `"read"`, "bridge.context", `{"app":"aftereffects"}`); rtJSON(r["context"]) != rtNorm(ctx) {
			t.Fatalf("read back %v", r)
		}
		if r := rtResult(t, tool, `"read"`, "bridge.context", `{"app":"aftereffects","target":"ae-3"}`); rtJSON(r["context"]) != rtNorm(ctx) {
			t.Fatalf("read back for an instance %v", r)
		}
		if r := rtResult(t, tool, `"read"`, "bridge.context", `{"app":"photoshop"}`); rtJSON(r["context"]) != `{}` {
			t.Fatalf("read back another app %v", r)
		}

		// A panel that says hello later gets it in its hello result.
		late := b.dial()
		if hr := late.Hello(map[string]any{"app": "aftereffects", "instance": "ae-4"}); rtJSON(hr["context"]) != rtNorm(ctx) {
			t.Fatalf("hello result context = %v", hr["context"])
		}

		// A target limits it to one instance.
		ctx2 := `{"task":"light"}`
		tool.Send(`{"jsonrpc":"2.0","id":"ctx-2","method":"bridge.context","params":{"app":"aftereffects","target":"ae-2","context":` + ctx2 + `}}`)
		rtAnswer(t, ae2, `"ok"`)
		got = rtNext(t, tool) // the reply, not the publisher's own event
		if err := json.Unmarshal([]byte(got), &res); err != nil || res.ID != "ctx-2" || rtJSON(res.Result.Context) != ctx2 ||
			len(res.Result.Sessions) != 1 || res.Result.Sessions[0].Session != sid2 || !res.Result.Sessions[0].OK {
			t.Fatalf("bridge.context with a target: %s", got)
		}
		ev = rtEvent(t, watcher, "context.changed")
		if got, want := rtJSON(ev), `{"app":"aftereffects","context":{"task":"light"},"instance":"ae-2"}`; got != want {
			t.Fatalf("context.changed data = %s, want %s", got, want)
		}
		for _, p := range []*memPeer{ae1, ae3} {
			rtQuiet(t, p)
		}
		if r := rtResult(t, tool, `"read"`, "bridge.context", `{"app":"aftereffects","target":"ae-2"}`); rtJSON(r["context"]) != ctx2 {
			t.Fatalf("read back for ae-2 %v", r)
		}
		if r := rtResult(t, tool, `"read"`, "bridge.context", `{"app":"aftereffects"}`); rtJSON(r["context"]) != rtNorm(ctx) {
			t.Fatalf("the app's context changed with a target: %v", r)
		}
		late5 := b.dial()
		if hr := late5.Hello(map[string]any{"app": "aftereffects", "instance": "ae-5"}); rtJSON(hr["context"]) != rtNorm(ctx) {
			t.Fatalf("hello result context for another instance = %v", hr["context"])
		}

		// A target not connected yet: nobody takes it now, its panel gets it at hello.
		if r := rtResult(t, tool, `"ctx-3"`, "bridge.context", `{"app":"aftereffects","target":"ae-6","context":{"task":"fx"}}`); rtJSON(r["sessions"]) != `[]` {
			t.Fatalf("bridge.context for an absent instance: %v", r)
		}
		rtEvent(t, watcher, "context.changed")
		late6 := b.dial()
		if hr := late6.Hello(map[string]any{"app": "aftereffects", "instance": "ae-6"}); rtJSON(hr["context"]) != `{"task":"fx"}` {
			t.Fatalf("hello result context for the targeted instance = %v", hr["context"])
		}

		// Invalid meta: refused, and nothing stored, published or sent.
		tool.Send(`{"jsonrpc":"2.0","id":"bad","method":"bridge.context","params":{"app":"aftereffects","context":{"task":"x"}},"meta":{"timeout_ms":-1}}`)
		rtExpectError(t, tool, `"bad"`, -32602)
		if r := rtResult(t, tool, `"read"`, "bridge.context", `{"app":"aftereffects"}`); rtJSON(r["context"]) != rtNorm(ctx) {
			t.Fatalf("a refused bridge.context changed the context: %v", r)
		}
		for _, p := range []*memPeer{ae1, ae2, watcher} {
			rtQuiet(t, p)
		}

		// A host that does not answer within meta.timeout_ms: listed as not
		// taking it, and cancelled. A push to the whole app replaces what an
		// instance was given before.
		ctx4 := `{"project":"Q"}`
		tool.Send(`{"jsonrpc":"2.0","id":"ctx-4","method":"bridge.context","params":{"app":"aftereffects","context":` + ctx4 + `},"meta":{"timeout_ms":100}}`)
		fid1 = rtForwarded(t, ae1, "set_context", ctx4, "pipeline", "pub-1", 0, 100)
		rtAnswer(t, ae2, "true")
		got = rtNext(t, tool)
		if err := json.Unmarshal([]byte(got), &res); err != nil || res.ID != "ctx-4" || len(res.Result.Sessions) != 2 {
			t.Fatalf("bridge.context with a silent host: %s", got)
		}
		for _, s := range res.Result.Sessions {
			var e struct {
				Code int64 `json:"code"`
			}
			if s.Instance == "ae-1" && (s.OK || json.Unmarshal(s.Error, &e) != nil || e.Code != -32002) ||
				s.Instance == "ae-2" && !s.OK {
				t.Fatalf("bridge.context with a silent host: %s", got)
			}
		}
		if got, want := rtNext(t, ae1), `{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":"`+fid1+`"}}`; got != want {
			t.Fatalf("silent host got %s, want %s", got, want)
		}
		for _, instance := range []string{"ae-2", "ae-6"} {
			if r := rtResult(t, tool, `"read"`, "bridge.context", `{"app":"aftereffects","target":"`+instance+`"}`); rtJSON(r["context"]) != ctx4 {
				t.Fatalf("%s's context after a push to the whole app: %v", instance, r)
			}
		}
		again := b.dial() // ae-2 reloads
		if hr := again.Hello(map[string]any{"app": "aftereffects", "instance": "ae-2"}); rtJSON(hr["context"]) != ctx4 {
			t.Fatalf("hello result context after a push to the whole app = %v", hr["context"])
		}
	})
}
