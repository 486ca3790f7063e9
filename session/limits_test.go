package session_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"github.com/dccbridge/dccbridge/internal/bridgetest"
	"github.com/dccbridge/dccbridge/session"
	"github.com/dccbridge/dccbridge/web"
)

// Limits over real sockets: --max-sessions refuses a new instance's hello
// with -32003 and 1013, and no goroutine is left once many real sessions
// have come and gone.

func TestMaxSessions(t *testing.T) {
	logs, logger := newLogWatch(t)
	b := bridgetest.Start(t, &session.Options{Logger: logger, MaxSessions: 3}, &web.Options{Logger: logger})
	var peers []*bridgetest.Peer
	var ids []string
	for i := range 3 {
		p := bridgetest.Dial(t, b.WSURL, nil)
		ids = append(ids, p.Hello(map[string]any{"app": "blender", "instance": fmt.Sprint("b-", i)})["session"].(string))
		peers = append(peers, p)
	}
	fourth := bridgetest.Dial(t, b.WSURL, nil)
	r := fourth.Call("hello", "bridge.hello", map[string]any{"app": "blender", "instance": "b-3"})
	if code, _ := rpcError(t, r); code != -32003 {
		t.Fatalf("4th hello: %v, want -32003", r)
	}
	if code := fourth.Closed(5 * time.Second); code != websocket.StatusTryAgainLater {
		t.Fatalf("4th connection ended with %v (%v), want 1013", code, fourth.Err())
	}
	if ce := closeError(fourth.Err()); !strings.Contains(ce.Reason, "too many sessions") {
		t.Fatalf("1013 reason %q", ce.Reason)
	}
	logs.wait(t, 5*time.Second, "hello refused: too many sessions (max 3)")
	for _, p := range peers {
		if r := p.Call("ping", "bridge.ping", nil); r["result"] == nil {
			t.Fatalf("an admitted session after the refusal: %v", r)
		}
	}
	// An instance that replaces its own session is let in at the cap.
	again := bridgetest.Dial(t, b.WSURL, nil)
	again.Hello(map[string]any{"app": "blender", "instance": "b-2"})

	// A place frees when a session leaves.
	if err := peers[0].Conn.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Fatal(err)
	}
	logs.wait(t, 5*time.Second, "session ended", "session", ids[0])
	fifth := bridgetest.Dial(t, b.WSURL, nil)
	fifth.Hello(map[string]any{"app": "blender", "instance": "b-5"})

	// So does a session that dropped: it waits for its instance
	// (reconnecting) without holding a place.
	_ = peers[1].Conn.CloseNow()
	logs.wait(t, 5*time.Second, "session state", "session", ids[1], "state", "reconnecting")
	sixth := bridgetest.Dial(t, b.WSURL, nil)
	sixth.Hello(map[string]any{"app": "blender", "instance": "b-6"})
}

// 200 sessions connect, say hello, call, and leave (cleanly, abruptly, or
// with a call still in flight); once the bridge is shut down no goroutine
// is left.
func TestNoGoroutinesLeftAfterSessions(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	logs, logger := newLogWatch(t)
	b := bridgetest.Start(t, &session.Options{Logger: logger, ResumeWait: time.Millisecond}, &web.Options{Logger: logger})
	host := startEchoHost(t, b.WSURL, "houdini", "h-1", "echo", "hang")

	const sessions, workers = 200, 8
	errs := make(chan error, sessions)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < sessions; i += workers {
				if err := briefSession(b.WSURL, i); err != nil {
					errs <- fmt.Errorf("session %d: %w", i, err)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	logs.waitN(t, 10*time.Second, sessions, "session ended", "app", "pipeline")
	// Tools that dropped without a close frame wait ResumeWait (1 ms here)
	// for their instance; after that, only the host is left.
	logs.waitN(t, 10*time.Second, sessions, "session left", "app", "pipeline")
	if st := b.Router.Stats(); st.Sessions != 1 {
		t.Fatalf("sessions after all tools left: %d, want 1 (the host)", st.Sessions)
	}

	host.close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.Router.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	b.Web.Close()
	b.Server.Close()
	http.DefaultClient.CloseIdleConnections()
	goleak.VerifyNone(t, ignore)
}

// briefSession is one short-lived tool: hello, one routed call, then it
// leaves one of four ways.
func briefSession(url string, i int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		return err
	}
	defer conn.CloseNow()
	call := func(id, method string) error {
		msg := fmt.Sprintf(`{"jsonrpc":"2.0","id":%q,"method":%q,"params":{"i":%d}}`, id, method, i)
		if err := conn.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
			return err
		}
		for range 100 {
			_, b, err := conn.Read(ctx)
			if err != nil {
				return err
			}
			var m struct {
				ID     string          `json:"id"`
				Result json.RawMessage `json:"result"`
			}
			if json.Unmarshal(b, &m) == nil && m.ID == id {
				if m.Result == nil {
					return fmt.Errorf("%s: %s", method, b)
				}
				return nil
			}
		}
		return fmt.Errorf("no reply to %s", method)
	}
	hello := fmt.Sprintf(`{"jsonrpc":"2.0","id":"hello","method":"bridge.hello","params":{"app":"pipeline","kind":"tool","instance":"brief-%d"}}`, i)
	if err := conn.Write(ctx, websocket.MessageText, []byte(hello)); err != nil {
		return err
	}
	if _, _, err := conn.Read(ctx); err != nil {
		return err
	}
	if err := call("c", "houdini.echo"); err != nil {
		return err
	}
	if i%4 >= 2 { // leave a call in flight: the bridge cancels it at the host
		msg := `{"jsonrpc":"2.0","id":"h","method":"houdini.hang"}`
		if err := conn.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
			return err
		}
		if err := call("p", "bridge.ping"); err != nil { // the hang call is routed by now
			return err
		}
	}
	if i%2 == 0 {
		return conn.Close(websocket.StatusNormalClosure, "")
	}
	return conn.CloseNow()
}
