package session_test

import (
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dccbridge/dccbridge/internal/memconn"
	"github.com/dccbridge/dccbridge/session"
)

// What the writer had taken but not written when its connection ended or
// was replaced is not lost: replies owed to a replay caller, and cancels
// of calls its instance was running. In-memory connections in synctest
// bubbles; a peer with room for one message stands for one whose socket
// is full.

// stallReplayTool starts a bridge (write timeout 10 s) with a host and a
// replay tool whose connection has room for one message, which its hello
// result fills: the tool reads nothing from then on. The tool makes three
// calls and the host answers them "frame 0" to "frame 2"; the bridge's
// writer is then blocked on the first reply, the others taken behind it.
func stallReplayTool(t *testing.T) (b *memBridge, toolHello map[string]any) {
	t.Helper()
	b = startMem(t, session.Options{WriteTimeout: 10 * time.Second, BusyAfter: time.Hour})
	host, _ := b.join(map[string]any{"app": "aftereffects", "instance": "ae-1", "methods": []string{"render"}})
	toolHello = map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-1", "boot": "t-1", "replay": true}
	tool := b.connect(memconn.Options{Buffer: 1})
	tool.send(map[string]any{"jsonrpc": "2.0", "id": "hello", "method": "bridge.hello", "params": toolHello})
	for i := range 3 {
		tool.send(map[string]any{"jsonrpc": "2.0", "id": i, "method": "aftereffects.render"})
	}
	for i := range 3 {
		m := host.Expect(memWait, func(m map[string]any) bool { return m["method"] == "render" })
		host.answer(m["id"].(string), fmt.Sprint("frame ", i))
	}
	synctest.Wait()
	return b, toolHello
}

// wantFrames reads the three replies stallReplayTool's calls are owed at
// the tool's new connection p.
func wantFrames(t *testing.T, p *memPeer) {
	t.Helper()
	got := map[float64]any{}
	for len(got) < 3 {
		m := p.Expect(memWait, func(m map[string]any) bool { _, ok := m["result"]; return ok })
		got[m["id"].(float64)] = m["result"]
	}
	for i := range 3 {
		if want := fmt.Sprint("frame ", i); got[float64(i)] != want {
			t.Errorf("reply %d: %v, want %q", i, got[float64(i)], want)
		}
	}
}

// A replay tool replaced by a new connection (same boot) while the old
// writer is blocked writing its replies gets all of them on the new one.
func TestRepliesOfReplacedWriterMoveToNewConnection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, toolHello := stallReplayTool(t)
		time.Sleep(2 * time.Second) // within the write timeout
		back, res := b.join(toolHello)
		if res["resumed"] != true {
			t.Fatalf("hello result %v, want resumed", res)
		}
		wantFrames(t, back)
	})
}

// A cancel of a call written to a replay host, queued behind a blocked
// write when the host drops or is replaced, reaches the host when it is
// back with the same boot.
func TestCancelNotWrittenReachesHostOnReturn(t *testing.T) {
	for _, how := range []string{"drop", "replace"} {
		t.Run(how, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := startMem(t, session.Options{WriteTimeout: 10 * time.Second, BusyAfter: time.Hour})
				hello := map[string]any{"app": "aftereffects", "instance": "ae-1", "boot": "b-1", "replay": true, "methods": []string{"step"}}
				host := b.connect(memconn.Options{Buffer: 1})
				host.helloFirst(hello)
				tool, _ := b.join(map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-1"})
				tool.send(map[string]any{"jsonrpc": "2.0", "id": "A", "method": "aftereffects.step"})
				fidA, _ := host.nextCall("step", 1)
				tool.send(map[string]any{"jsonrpc": "2.0", "id": "B", "method": "aftereffects.step"}) // fills the buffer
				tool.send(map[string]any{"jsonrpc": "2.0", "id": "C", "method": "aftereffects.step"}) // the writer blocks on it
				synctest.Wait()
				tool.send(map[string]any{"jsonrpc": "2.0", "method": "$/cancelRequest", "params": map[string]any{"id": "A"}})
				tool.Expect(memWait, func(m map[string]any) bool { return m["id"] == "A" })
				synctest.Wait()
				if how == "drop" {
					host.drop()
					synctest.Wait()
				}
				again, _ := b.join(hello)
				m := again.Expect(memWait, func(m map[string]any) bool { return m["method"] == "$/cancelRequest" })
				if id := m["params"].(map[string]any)["id"]; id != fidA {
					t.Errorf("the instance back was told to cancel %v, want %s", id, fidA)
				}
			})
		})
	}
}

// A replay caller that sent a call with an id still in flight from its
// earlier connection, before its resuming hello, gets -32600 for the newer
// call; the older one keeps its id and its reply.
func TestResumedCallerIDCollision(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := startMem(t, session.Options{BusyAfter: time.Hour})
		host, _ := b.join(map[string]any{"app": "aftereffects", "instance": "ae-1", "methods": []string{"step"}})
		toolHello := map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-1", "boot": "t-1", "replay": true}
		tool, _ := b.join(toolHello)
		tool.send(map[string]any{"jsonrpc": "2.0", "id": 7, "method": "aftereffects.step", "params": map[string]any{"n": "old"}})
		oldFid, _ := host.nextCall("step", 1)
		tool.drop()
		synctest.Wait()

		back := b.dial()
		back.send(map[string]any{"jsonrpc": "2.0", "id": 7, "method": "aftereffects.step", "params": map[string]any{"n": "new"}})
		synctest.Wait()
		newFid, _ := host.nextCall("step", 1)
		back.send(map[string]any{"jsonrpc": "2.0", "id": "hello", "method": "bridge.hello", "params": toolHello})
		refused := back.Expect(memWait, func(m map[string]any) bool { return m["id"] == float64(7) })
		if code, _ := rpcError(t, refused); code != -32600 {
			t.Fatalf("the newer call with id 7: %v, want -32600", refused)
		}
		host.answer(newFid, "new") // dropped: that call has ended
		host.answer(oldFid, "old")
		if m := back.Expect(memWait, func(m map[string]any) bool { _, ok := m["result"]; return ok && m["id"] == float64(7) }); m["result"] != "old" {
			t.Errorf("reply to id 7: %v, want the older call's result", m)
		}
		if n := len(b.r.Calls()); n != 0 {
			t.Errorf("%d calls still in flight, want 0", n)
		}
	})
}
