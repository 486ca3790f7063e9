package session_test

import (
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/coder/websocket"

	"github.com/dccbridge/dccbridge/internal/memconn"
	"github.com/dccbridge/dccbridge/session"
)

// The heartbeat tells a peer that is gone from one that is busy: behind a
// long write to it, or sending us a large message. Fake time in synctest
// bubbles, coder/websocket over net.Pipe through the real adapter.

// dialSlowReader connects a host that says hello, then reads every message
// at 64 KiB per perChunk (never, if perChunk is 0) and hands each whole
// message to the returned channel.
func (b *pipeBridge) dialSlowReader(t *testing.T, hello map[string]any, perChunk time.Duration) (*websocket.Conn, <-chan []byte) {
	t.Helper()
	ctx := context.Background()
	conn, _, err := websocket.Dial(ctx, "ws://127.0.0.1:8098/ws", &websocket.DialOptions{HTTPClient: b.client})
	if err != nil {
		t.Fatal(err)
	}
	conn.SetReadLimit(64 << 20)
	data, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": "hello", "method": "bridge.hello", "params": hello})
	if err := conn.Write(ctx, websocket.MessageText, data); err != nil {
		t.Fatal(err)
	}
	if _, _, err := conn.Read(ctx); err != nil {
		t.Fatal(err)
	}
	in := make(chan []byte, 10)
	if perChunk == 0 {
		return conn, in
	}
	go func() {
		defer close(in)
		for {
			_, r, err := conn.Reader(ctx)
			if err != nil {
				return
			}
			var msg []byte
			chunk := make([]byte, 64<<10)
			for {
				n, err := io.ReadFull(r, chunk)
				msg = append(msg, chunk[:n]...)
				if err != nil {
					break
				}
				time.Sleep(perChunk)
			}
			in <- msg
		}
	}()
	return conn, in
}

// A ping that would wait behind a 32 s write to a slowly reading host does
// not end the session: the call arrives whole and its reply comes back,
// with the default heartbeat (5 s, 15 s) and a write timeout longer than
// the write.
func TestHeartbeatWaitsForLongWrite(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := startPipeBridge(t, session.Options{WriteTimeout: time.Minute, BusyAfter: time.Hour})
		defer b.close()
		host, in := b.dialSlowReader(t, map[string]any{"app": "aftereffects", "instance": "ae-1", "methods": []string{"import"}}, time.Second)
		defer host.CloseNow()
		tool, _ := b.dial(map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-1"})
		big := strings.Repeat("x", 2<<20)
		tool.send(map[string]any{"jsonrpc": "2.0", "id": 1, "method": "aftereffects.import", "params": map[string]any{"data": big}})

		var call struct {
			ID     string                     `json:"id"`
			Params struct{ Data string }      `json:"params"`
			Meta   map[string]json.RawMessage `json:"meta"`
		}
		select {
		case msg, ok := <-in:
			if !ok {
				t.Fatalf("the host's connection ended at %v; the bridge log says: %v", time.Now().Format("15:04:05"), b.logs.all())
			}
			if err := json.Unmarshal(msg, &call); err != nil || len(call.Params.Data) != len(big) {
				t.Fatalf("the host got %d bytes of data (%v), want %d", len(call.Params.Data), err, len(big))
			}
		case <-time.After(5 * time.Minute):
			t.Fatal("the call never arrived")
		}
		reply, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": call.ID, "result": "ok"})
		if err := host.Write(context.Background(), websocket.MessageText, reply); err != nil {
			t.Fatalf("the host's connection is gone: %v", err)
		}
		if m := tool.next(); m["result"] != "ok" {
			t.Fatalf("the tool got %v, want the result", m)
		}
		if n := b.logs.count("session ended"); n != 0 {
			t.Errorf("a session ended: %v", b.logs.all())
		}
	})
}

// A host that stops reading altogether is closed when the write to it
// times out, and the log says so, not "no pong".
func TestHeartbeatLogsWriteTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := startPipeBridge(t, session.Options{WriteTimeout: 40 * time.Second, BusyAfter: time.Hour})
		defer b.close()
		host, _ := b.dialSlowReader(t, map[string]any{"app": "aftereffects", "instance": "ae-1", "methods": []string{"import"}}, 0)
		defer host.CloseNow()
		tool, _ := b.dial(map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-1"})
		tool.send(map[string]any{"jsonrpc": "2.0", "id": 1, "method": "aftereffects.import", "params": map[string]any{"data": strings.Repeat("x", 1<<20)}})

		rec := b.logs.wait(t, 5*time.Minute, "session ended", "instance", "ae-1")
		if cause := rec.Attrs["cause"]; !strings.Contains(cause, "write timed out after 40s") || strings.Contains(cause, "pong") {
			t.Errorf("session ended with cause %q, want the write timeout", cause)
		}
	})
}

// A peer that does not answer pings while it is sending a large message
// stays; once it has stopped sending and still does not answer, it is gone
// after HeartbeatTimeout, and the log says no pong. In-memory connection.
func TestHeartbeatKeepsPeerThatIsSending(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		logs, logger := newLogWatch(t)
		r := session.New(session.Options{Logger: logger})
		conn, peer := memconn.New(memconn.Options{})
		served := make(chan struct{})
		go func() { r.Serve(conn, session.Peer{Authorized: true, Remote: "mem"}); close(served) }()
		peer.Send([]byte(`{"jsonrpc":"2.0","id":1,"method":"bridge.hello","params":{"app":"maya","instance":"m-1"}}`))
		peer.SetPong(false)
		peer.SetSending(true)

		time.Sleep(time.Minute)
		synctest.Wait()
		if n := logs.count("session ended"); n != 0 {
			t.Fatalf("a peer busy sending was dropped: %v", logs.all())
		}
		start := time.Now()
		peer.SetSending(false)
		rec := logs.wait(t, time.Minute, "session ended", "instance", "m-1")
		if !strings.Contains(rec.Attrs["cause"], "no pong within 15s") {
			t.Errorf("cause %q, want no pong within 15s", rec.Attrs["cause"])
		}
		if gone := time.Since(start); gone > 20*time.Second {
			t.Errorf("dropped %v after it stopped sending, want within interval + timeout (20 s)", gone)
		}
		if err := r.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
		<-served
	})
}
