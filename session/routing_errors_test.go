package session_test

import (
	"encoding/json"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dccbridge/dccbridge/session"
)

// Calls that cannot be routed (yet): waiting for a session, -32001,
// -32601, timeouts, peers that leave, requests that must be notifications.
// In memory (mem_test.go), in synctest bubbles.

func TestRoutingWaitAndNotFound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := startMem(t, session.Options{DefaultWait: 20 * time.Second})
		tool, _ := b.joinSID(map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-1"})

		step(t, "no session: wait then -32001", func(t *testing.T) {
			start := time.Now()
			tool.Send(`{"jsonrpc":"2.0","id":"w1","method":"photoshop.open","params":{"path":"a.psd"},"meta":{"wait_ms":50}}`)
			data := rtExpectError(t, tool, `"w1"`, -32001)
			if waited := time.Since(start); waited < 50*time.Millisecond {
				t.Fatalf("-32001 after %v, before wait_ms 50 ran out", waited)
			}
			rtWantData(t, data, map[string]any{"app": "photoshop", "method": "photoshop.open"})
		})

		step(t, "waits and goes through when the panel says hello", func(t *testing.T) {
			tool.Send(`{"jsonrpc":"2.0","id":"w2","method":"Photoshop.open","params":{"path":"b.psd"},"meta":{"wait_ms":30000}}`)
			rtQuiet(t, tool) // the call is waiting now
			ps, psSID := b.joinSID(map[string]any{"app": "photoshop", "instance": "ps-1", "methods": []string{"open"}})
			fid := rtForwarded(t, ps, "open", `{"path":"b.psd"}`, "pipeline", "pub-1", 1, 600000)
			ps.Send(`{"jsonrpc":"2.0","id":"` + fid + `","result":"opened"}`)
			want := `{"jsonrpc":"2.0","id":"w2","result":"opened","meta":` + rtAnswerMeta("photoshop", "ps-1", psSID) + `}`
			if got := rtNext(t, tool); got != want {
				t.Fatalf("caller got %s, want %s", got, want)
			}

			// The app is present now but does not offer save: -32601 at once,
			// not after the 60 s wait.
			tool.Send(`{"jsonrpc":"2.0","id":"w3","method":"photoshop.save","meta":{"wait_ms":60000}}`)
			data := rtExpectError(t, tool, `"w3"`, -32601)
			rtWantData(t, data, map[string]any{"app": "photoshop", "method": "photoshop.save"})
			rtQuiet(t, ps)
		})

		step(t, "method without a dot", func(t *testing.T) {
			tool.Send(`{"jsonrpc":"2.0","id":"w4","method":"open","meta":{"wait_ms":60000}}`)
			data := rtExpectError(t, tool, `"w4"`, -32601)
			rtWantData(t, data, map[string]any{"method": "open"})
		})

		step(t, "registering the method later ends the wait", func(t *testing.T) {
			ae, aeSID := b.joinSID(map[string]any{"app": "aftereffects", "instance": "ae-1", "methods": []string{"get_items"}})
			tool.Send(`{"jsonrpc":"2.0","id":"w5","method":"aftereffects.render","meta":{"wait_ms":30000}}`)
			if data := rtExpectError(t, tool, `"w5"`, -32601); data["app"] != "aftereffects" {
				t.Fatalf("data %v", data)
			}
			ae.Call("r", "bridge.register", map[string]any{"methods": []string{"render"}})
			tool.Send(`{"jsonrpc":"2.0","id":"w6","method":"aftereffects.render","meta":{"wait_ms":30000}}`)
			rtAnswer(t, ae, `1`)
			want := `{"jsonrpc":"2.0","id":"w6","result":1,"meta":` + rtAnswerMeta("aftereffects", "ae-1", aeSID) + `}`
			if got := rtNext(t, tool); got != want {
				t.Fatalf("caller got %s, want %s", got, want)
			}

			// Unregistered: the app is present without it again.
			ae.Call("u", "bridge.unregister", map[string]any{"methods": []string{"render"}})
			tool.Send(`{"jsonrpc":"2.0","id":"w7","method":"aftereffects.render","meta":{"wait_ms":30000}}`)
			rtExpectError(t, tool, `"w7"`, -32601)
			rtQuiet(t, ae)
		})
		rtQuiet(t, tool)
	})
}

func TestRoutingTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := startMem(t, session.Options{})
		ae, _ := b.joinSID(map[string]any{"app": "aftereffects", "instance": "ae-1", "methods": []string{"render"}})
		tool, _ := b.joinSID(map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-1"})

		start := time.Now()
		tool.Send(`{"jsonrpc":"2.0","id":"slow","method":"aftereffects.render","meta":{"timeout_ms":100}}`)
		fid := rtForwarded(t, ae, "render", "", "pipeline", "pub-1", 0, 100)
		data := rtExpectError(t, tool, `"slow"`, -32002)
		if took := time.Since(start); took < 100*time.Millisecond {
			t.Fatalf("-32002 after %v, before timeout_ms 100 ran out", took)
		}
		rtWantData(t, data, map[string]any{"app": "aftereffects", "instance": "ae-1", "method": "aftereffects.render"})
		if got, want := rtNext(t, ae), `{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":"`+fid+`"}}`; got != want {
			t.Fatalf("host got %s, want %s", got, want)
		}
		// The host's late reply is dropped: once the bridge has read it (the
		// host's ping is answered after it), the caller has nothing waiting.
		ae.Send(`{"jsonrpc":"2.0","id":"` + fid + `","result":"late"}`)
		rtQuiet(t, ae)
		rtQuiet(t, tool)
	})
}

func TestRoutingDisconnects(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := startMem(t, session.Options{})
		ae, _ := b.joinSID(map[string]any{"app": "aftereffects", "instance": "ae-1", "methods": []string{"render"}})

		step(t, "caller leaves: the host is cancelled", func(t *testing.T) {
			tool, _ := b.joinSID(map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-2"})
			tool.Send(`{"jsonrpc":"2.0","id":"r1","method":"aftereffects.render"}`)
			fid := rtForwarded(t, ae, "render", "", "pipeline", "pub-2", 1, 600000)
			tool.Send(`{"jsonrpc":"2.0","id":"r2","method":"photoshop.open","meta":{"wait_ms":30000}}`)
			rtQuiet(t, tool) // r2 is waiting
			tool.drop()
			if got, want := rtNext(t, ae), `{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":"`+fid+`"}}`; got != want {
				t.Fatalf("host got %s, want %s", got, want)
			}
			// The waiting call is never sent to a photoshop that appears later.
			ps, _ := b.joinSID(map[string]any{"app": "photoshop", "instance": "ps-1", "methods": []string{"open"}})
			rtQuiet(t, ps)
			ae.Send(`{"jsonrpc":"2.0","id":"` + fid + `","result":"late"}`)
			rtQuiet(t, ae)
		})

		step(t, "callee leaves with a written call: -32004", func(t *testing.T) {
			tool, _ := b.joinSID(map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-1"})
			ae9, _ := b.joinSID(map[string]any{"app": "aftereffects", "instance": "ae-9", "methods": []string{"render"}})
			tool.Send(`{"jsonrpc":"2.0","id":"d1","method":"aftereffects.render","meta":{"target":"ae-9"}}`)
			rtForwarded(t, ae9, "render", "", "pipeline", "pub-1", 1, 600000)
			ae9.drop()
			data := rtExpectError(t, tool, `"d1"`, -32004)
			rtWantData(t, data, map[string]any{"app": "aftereffects", "instance": "ae-9", "method": "aftereffects.render", "may_have_run": true})
			rtQuiet(t, tool)
		})
	})
}

// $/cancelRequest and $/progress are notifications; sent with an id they
// get -32600 (alone or in a batch), so the sender is never left waiting.
func TestRoutingDollarMethodsAsRequests(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := startMem(t, session.Options{})
		tool, _ := b.joinSID(map[string]any{"app": "pipeline", "kind": "tool"})
		tool.Send(`{"jsonrpc":"2.0","id":7,"method":"$/cancelRequest","params":{"id":5}}`)
		rtExpectError(t, tool, "7", -32600)
		tool.Send(`[{"jsonrpc":"2.0","id":1,"method":"$/progress","params":{"id":"x","value":1}},{"jsonrpc":"2.0","id":2,"method":"bridge.ping"}]`)
		var batch []map[string]any
		if err := json.Unmarshal([]byte(rtNext(t, tool)), &batch); err != nil || len(batch) != 2 {
			t.Fatalf("want a batch reply of 2, got %v (%v)", batch, err)
		}
		for _, m := range batch {
			if m["id"] == 1.0 && m["error"].(map[string]any)["code"] != -32600.0 {
				t.Errorf("$/progress with an id: %v, want -32600", m)
			}
			if m["id"] == 2.0 && m["result"] == nil {
				t.Errorf("ping in the batch: %v", m)
			}
		}
	})
}

// -32001 for an instance that is there but cannot take calls says so.
func TestNoSessionErrorNamesUnavailableInstance(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := startMem(t, session.Options{ResumeWait: time.Minute})
		host := b.dial()
		host.helloFirst(map[string]any{"app": "aftereffects", "instance": "ae-1", "boot": "b1", "replay": true, "methods": []string{"open"}})
		tool := b.dial()
		host.drop()
		b.logs.wait(t, memWait, "session state", "instance", "ae-1", "state", "reconnecting")
		tool.Send(`{"jsonrpc":"2.0","id":"o1","method":"aftereffects.open","meta":{"wait_ms":50}}`)
		code, data := rpcError(t, reply(t, tool, "o1"))
		un, _ := data["unavailable"].([]any)
		if code != -32001 || len(un) != 1 || un[0] != `instance "ae-1" is reconnecting` {
			t.Fatalf("got %d %v, want -32001 naming ae-1 reconnecting", code, data)
		}
	})
}

// The bridge namespace is case-folded like every namespace, and hello may
// not hide in a batch (its result must come before re-sent calls).
func TestBuiltinNamespaceAndBatchedHello(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := startMem(t, session.Options{})
		p := b.dial()
		if r := p.Call(1, "Bridge.ping", nil); r["result"] == nil {
			t.Fatalf("Bridge.ping: %v", r)
		}
		p.Send(`[{"jsonrpc":"2.0","id":1,"method":"bridge.hello","params":{"app":"x"}},{"jsonrpc":"2.0","id":2,"method":"bridge.ping"}]`)
		m := p.Read()
		batch, _ := m["batch"].([]any)
		if len(batch) != 2 {
			t.Fatalf("want a batch reply of 2, got %v", m)
		}
		for _, x := range batch {
			x := x.(map[string]any)
			if x["id"] == 1.0 && x["error"].(map[string]any)["code"] != -32600.0 {
				t.Errorf("hello in a batch: %v, want -32600", x)
			}
		}
	})
}
