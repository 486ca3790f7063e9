package session_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/coder/websocket"

	"github.com/dccbridge/dccbridge/internal/bridgetest"
	"github.com/dccbridge/dccbridge/session"
	"github.com/dccbridge/dccbridge/web"
)

// Liveness: the heartbeat's round trip, and a peer that stops answering
// pings.

// With a 20 ms heartbeat, bridge.sessions shows the measured round trip.
func TestHeartbeatRecordsRTT(t *testing.T) {
	b := bridgetest.Start(t, &session.Options{Logger: quietLogger(), HeartbeatInterval: 20 * time.Millisecond}, &web.Options{Logger: quietLogger()})
	pings := make(chan struct{}, 100)
	p := dialRaw(t, b.WSURL, &websocket.DialOptions{OnPingReceived: func(context.Context, []byte) bool {
		select {
		case pings <- struct{}{}:
		default:
		}
		return true
	}})
	p.hello(map[string]any{"app": "blender", "instance": "bl-1"})
	// The bridge pings again only after the previous pong came back and
	// its round trip was recorded; the peer's reads answer the pings.
	go func() {
		for {
			if _, _, err := p.conn.Read(context.Background()); err != nil {
				return
			}
		}
	}()
	for i := range 2 {
		select {
		case <-pings:
		case <-time.After(5 * time.Second):
			t.Fatalf("ping %d not received within 5 s", i+1)
		}
	}
	var rtt float64
	for _, s := range b.Router.Sessions() {
		if s.Instance == "bl-1" {
			rtt = s.RTTMS
		}
	}
	if rtt <= 0 {
		t.Fatalf("rtt_ms %v after two pings", rtt)
	}
	tool := bridgetest.Dial(t, b.WSURL, nil)
	list := tool.Call("s", "bridge.sessions", map[string]any{"app": "blender"})["result"].([]any)
	if got := list[0].(map[string]any)["rtt_ms"].(float64); got <= 0 {
		t.Fatalf("bridge.sessions rtt_ms %v", got)
	}
}

// A peer that stops answering pings is dropped after HeartbeatTimeout
// (defaults: a ping every 5 s, 15 s for its pong); a peer that answers
// stays. Fake time in a synctest bubble, coder/websocket over net.Pipe.
func TestHeartbeatDropsSilentPeer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		logs, logger := newLogWatch(t)
		const interval, timeout = 5 * time.Second, 15 * time.Second
		r := session.New(session.Options{Logger: logger, HeartbeatInterval: interval, HeartbeatTimeout: timeout})
		ln := newPipeListener()
		h := web.New(web.Options{Router: r, Addr: "127.0.0.1:8098", Logger: logger})
		srv := &http.Server{Handler: h}
		served := make(chan struct{})
		go func() { _ = srv.Serve(ln); close(served) }()
		tr := &http.Transport{DialContext: ln.dial}
		client := &http.Client{Transport: tr}
		ctx := context.Background()
		dial := func(instance string) *websocket.Conn {
			conn, _, err := websocket.Dial(ctx, "ws://127.0.0.1:8098/ws", &websocket.DialOptions{HTTPClient: client})
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			hello := fmt.Sprintf(`{"jsonrpc":"2.0","id":1,"method":"bridge.hello","params":{"app":"aftereffects","instance":%q}}`, instance)
			if err := conn.Write(ctx, websocket.MessageText, []byte(hello)); err != nil {
				t.Fatal(err)
			}
			if _, _, err := conn.Read(ctx); err != nil {
				t.Fatal(err)
			}
			return conn
		}
		live := dial("ae-live")
		<-ln.clients
		liveDone := make(chan error, 1)
		go func() { // reading answers the pings
			for {
				if _, _, err := live.Read(ctx); err != nil {
					liveDone <- err
					return
				}
			}
		}()
		// The silent peer's websocket never reads again, so it never
		// answers a ping; its socket still swallows what the bridge writes
		// (net.Pipe has no buffer: without this the ping's write would
		// block, and coder/websocket gives a control frame's write 5 s).
		silent := dial("ae-silent")
		drained := make(chan struct{})
		go func() { _, _ = io.Copy(io.Discard, <-ln.clients); close(drained) }()
		start := time.Now()
		instances := func() []string {
			var list []string
			for _, s := range r.Sessions() {
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
			for _, s := range r.Sessions() {
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
		rec := logs.wait(t, 0, "session ended", "instance", "ae-silent")
		if !strings.Contains(rec.Attrs["cause"], "no pong within 15s") {
			t.Fatalf("silent session ended by %q", rec.Attrs["cause"])
		}

		time.Sleep(10 * (interval + timeout))
		synctest.Wait()
		if got := instances(); !slices.Equal(got, []string{"ae-live"}) {
			t.Fatalf("at %v: sessions %v, want ae-live still there", time.Since(start), got)
		}

		_ = silent.CloseNow()
		<-drained
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := r.Shutdown(sctx); err != nil {
			t.Fatal(err)
		}
		if err := <-liveDone; websocket.CloseStatus(err) != websocket.StatusGoingAway {
			t.Fatalf("live peer ended with %v, want 1001", err)
		}
		h.Close()
		_ = srv.Close()
		<-served
		tr.CloseIdleConnections()
	})
}
