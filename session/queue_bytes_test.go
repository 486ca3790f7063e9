package session_test

import (
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dccbridge/dccbridge/internal/memconn"
	"github.com/dccbridge/dccbridge/session"
)

// A tool that stops reading while a host answers it with 64 KiB replies is
// closed as a slow reader (1008) once the replies waiting for it reach the
// byte bound (8 MiB by default), not after thousands of them.
func TestStalledReaderClosedWithinByteBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const bound = 8 << 20
		b := startMem(t, session.Options{WriteTimeout: time.Hour, HeartbeatInterval: time.Hour, BusyAfter: time.Hour})
		host, _ := b.join(map[string]any{"app": "aftereffects", "instance": "ae-1", "methods": []string{"frame"}})
		tool := b.connect(memconn.Options{Buffer: 1})
		tool.send(map[string]any{"jsonrpc": "2.0", "id": "hello", "method": "bridge.hello",
			"params": map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-1"}})
		// From here the tool reads nothing: its buffer holds the hello result.
		reply := strings.Repeat("x", 64<<10)
		answered := 0
		for i := 0; i < 1000; i++ {
			if code, _, _ := tool.p.CloseCode(); code != 0 {
				break
			}
			tool.send(map[string]any{"jsonrpc": "2.0", "id": i, "method": "aftereffects.frame"})
			m := host.Expect(memWait, func(m map[string]any) bool { return m["method"] == "frame" })
			host.answer(m["id"].(string), reply)
			answered++
			synctest.Wait()
		}
		code, reason, byBridge := tool.p.CloseCode()
		if code != session.ClosePolicyViolation || !byBridge {
			t.Fatalf("after %d replies of 64 KiB the tool's connection is %d %q, want closed by the bridge with 1008", answered, code, reason)
		}
		if held := answered * (64 << 10); held > bound+2*(64<<10) {
			t.Errorf("closed after %d replies (%d bytes), want within the %d-byte bound (and a frame)", answered, held, bound)
		}
		if n := b.logs.count("slow reader closed"); n != 1 {
			t.Errorf("%d slow reader closures logged, want 1", n)
		}
	})
}

// A reader that keeps up is never a slow reader, whatever the size of
// what it is sent: a 9 MiB reply (more than the 8 MiB bound) and then
// small ones reach it.
func TestLargeReplyToReaderThatKeepsUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := startMem(t, session.Options{BusyAfter: time.Hour})
		host, _ := b.join(map[string]any{"app": "aftereffects", "instance": "ae-1", "methods": []string{"frame"}})
		tool, _ := b.join(map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-1"})
		big := strings.Repeat("x", 9<<20)
		for i, result := range []string{big, "small", "small"} {
			tool.send(map[string]any{"jsonrpc": "2.0", "id": i, "method": "aftereffects.frame"})
			m := host.Expect(memWait, func(m map[string]any) bool { return m["method"] == "frame" })
			host.answer(m["id"].(string), result)
		}
		for i, want := range []int{9 << 20, 5, 5} {
			m := tool.Expect(memWait, func(m map[string]any) bool { return m["id"] == float64(i) })
			if r, _ := m["result"].(string); len(r) != want {
				t.Fatalf("reply %d: %d bytes (%v), want %d", i, len(r), m["error"], want)
			}
		}
		if n := b.logs.count("slow reader closed"); n != 0 {
			t.Fatalf("a reader that keeps up was closed as a slow reader")
		}
	})
}
