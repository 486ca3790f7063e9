package session_test

import (
	"testing"
	"testing/synctest"

	"github.com/dccbridge/dccbridge/session"
)

// $/cancelRequest and $/progress between a caller and its callee.
// In memory (mem_test.go), in synctest bubbles.

func TestRoutingCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := startMem(t, session.Options{})
		ae, _ := b.joinSID(map[string]any{"app": "aftereffects", "instance": "ae-1", "methods": []string{"render"}})
		tool, _ := b.joinSID(map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-1"})

		step(t, "written call", func(t *testing.T) {
			tool.Send(`{"jsonrpc":"2.0","id":12345678901234567890123,"method":"aftereffects.render"}`)
			fid := rtForwarded(t, ae, "render", "", "pipeline", "pub-1", 1, 600000)
			tool.Send(`{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":12345678901234567890123}}`)
			data := rtExpectError(t, tool, `12345678901234567890123`, -32800)
			rtWantData(t, data, map[string]any{"app": "aftereffects", "instance": "ae-1", "method": "aftereffects.render"})
			if got, want := rtNext(t, ae), `{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":"`+fid+`"}}`; got != want {
				t.Fatalf("host got %s, want %s", got, want)
			}
			ae.Send(`{"jsonrpc":"2.0","id":"` + fid + `","result":"late"}`)
			rtQuiet(t, ae)
			rtQuiet(t, tool) // the late reply is dropped
		})

		step(t, "null id", func(t *testing.T) {
			tool.Send(`{"jsonrpc":"2.0","id":null,"method":"aftereffects.render"}`)
			fid := rtForwarded(t, ae, "render", "", "pipeline", "pub-1", 1, 600000)
			tool.Send(`{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":null}}`)
			rtExpectError(t, tool, `null`, -32800)
			if got, want := rtNext(t, ae), `{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":"`+fid+`"}}`; got != want {
				t.Fatalf("host got %s, want %s", got, want)
			}
		})

		step(t, "unknown id ignored", func(t *testing.T) {
			tool.Send(`{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":"nope"}}`)
			tool.Send(`{"jsonrpc":"2.0","method":"$/cancelRequest","params":{}}`)
			rtQuiet(t, tool)
			rtQuiet(t, ae)
		})

		step(t, "waiting call is never sent", func(t *testing.T) {
			tool.Send(`{"jsonrpc":"2.0","id":5,"method":"photoshop.open","meta":{"wait_ms":30000}}`)
			rtQuiet(t, tool) // waiting now
			tool.Send(`{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":5}}`)
			data := rtExpectError(t, tool, `5`, -32800)
			rtWantData(t, data, map[string]any{"app": "photoshop", "method": "photoshop.open"})
			ps, _ := b.joinSID(map[string]any{"app": "photoshop", "instance": "ps-1", "methods": []string{"open"}})
			rtQuiet(t, ps) // a call woken by the hello would be queued before this pong
			rtQuiet(t, tool)
		})
	})
}

func TestRoutingProgress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := startMem(t, session.Options{})
		ae1, sid1 := b.joinSID(map[string]any{"app": "aftereffects", "instance": "ae-1", "methods": []string{"render"}})
		ae2, _ := b.joinSID(map[string]any{"app": "aftereffects", "instance": "ae-2", "methods": []string{"render"}})
		tool, _ := b.joinSID(map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-1"})

		tool.Send(`{"jsonrpc":"2.0","id":77,"method":"aftereffects.render","meta":{"target":"ae-1"}}`)
		fid := rtForwarded(t, ae1, "render", "", "pipeline", "pub-1", 1, 600000)

		// Progress from anyone but the callee is ignored: another host, and the
		// caller itself, naming the forwarded id; and the caller's own id.
		ae2.Send(`{"jsonrpc":"2.0","method":"$/progress","params":{"id":"` + fid + `","value":"from ae-2"}}`)
		rtQuiet(t, ae2)
		tool.Send(`{"jsonrpc":"2.0","method":"$/progress","params":{"id":"` + fid + `","value":"from the caller"}}`)
		tool.Send(`{"jsonrpc":"2.0","method":"$/progress","params":{"id":77,"value":"own id"}}`)
		rtQuiet(t, tool)

		for _, v := range []string{`{"pct": 10, "step":"comp"}`, `"half"`, `[1,2]`} {
			ae1.Send(`{"jsonrpc":"2.0","method":"$/progress","params":{"id":"` + fid + `","value":` + v + `}}`)
			if got, want := rtNext(t, tool), `{"jsonrpc":"2.0","method":"$/progress","params":{"id":77,"value":`+v+`}}`; got != want {
				t.Fatalf("caller got %s, want %s", got, want)
			}
		}
		ae1.Send(`{"jsonrpc":"2.0","id":"` + fid + `","result":"done"}`)
		if got, want := rtNext(t, tool), `{"jsonrpc":"2.0","id":77,"result":"done","meta":`+rtAnswerMeta("aftereffects", "ae-1", sid1)+`}`; got != want {
			t.Fatalf("caller got %s, want %s", got, want)
		}
		// Progress after the reply is ignored.
		ae1.Send(`{"jsonrpc":"2.0","method":"$/progress","params":{"id":"` + fid + `","value":"late"}}`)
		rtQuiet(t, ae1)
		rtQuiet(t, tool)
	})
}
