package web_test

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/dccbridge/dccbridge/internal/bridgetest"
	"github.com/dccbridge/dccbridge/session"
	"github.com/dccbridge/dccbridge/web"
)

// families is a parsed /metrics page, by metric name.
type families map[string]*dto.MetricFamily

// scrape GETs /metrics with the given Authorization header (none when
// empty), wants 200, and parses the text exposition.
func scrape(t *testing.T, b *bridgetest.Bridge, auth string) families {
	t.Helper()
	resp, body := do(t, b, httpReq{method: "GET", path: "/metrics", auth: auth})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: status %d, want 200; body %q", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("GET /metrics: Content-Type %q, want the text exposition format", ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parsing /metrics: %v\n%s", err, body)
	}
	return fams
}

// labelKey is a metric's labels as "k=v,k=v", sorted by name.
func labelKey(m *dto.Metric) string {
	var parts []string
	for _, l := range m.GetLabel() {
		parts = append(parts, l.GetName()+"="+l.GetValue())
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}

// series returns every series of a counter or gauge by labelKey.
func (f families) series(t *testing.T, name string) map[string]float64 {
	t.Helper()
	fam := f[name]
	if fam == nil {
		t.Fatalf("/metrics has no %s", name)
	}
	out := map[string]float64{}
	for _, m := range fam.GetMetric() {
		switch fam.GetType() {
		case dto.MetricType_COUNTER:
			out[labelKey(m)] = m.GetCounter().GetValue()
		case dto.MetricType_GAUGE:
			out[labelKey(m)] = m.GetGauge().GetValue()
		default:
			t.Fatalf("%s is a %v, not a counter or gauge", name, fam.GetType())
		}
	}
	return out
}

// value returns the one series of an unlabelled counter or gauge.
func (f families) value(t *testing.T, name string) float64 {
	t.Helper()
	s := f.series(t, name)
	v, ok := s[""]
	if !ok || len(s) != 1 {
		t.Fatalf("%s: want one unlabelled series, got %v", name, s)
	}
	return v
}

// histograms returns the sample count and sum of every series of a
// histogram by labelKey.
func (f families) histograms(t *testing.T, name string) (counts map[string]uint64, sums map[string]float64) {
	t.Helper()
	fam := f[name]
	if fam == nil || fam.GetType() != dto.MetricType_HISTOGRAM {
		t.Fatalf("/metrics has no histogram %s", name)
	}
	counts, sums = map[string]uint64{}, map[string]float64{}
	for _, m := range fam.GetMetric() {
		counts[labelKey(m)] = m.GetHistogram().GetSampleCount()
		sums[labelKey(m)] = m.GetHistogram().GetSampleSum()
	}
	return counts, sums
}

func wantSeries[V comparable](t *testing.T, name string, got, want map[string]V) {
	t.Helper()
	if !maps.Equal(got, want) {
		t.Errorf("%s:\n got %v\nwant %v", name, got, want)
	}
}

// waitState waits until the session of instance is in state.
func waitState(t *testing.T, b *bridgetest.Bridge, instance string, state session.State) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, s := range b.Router.Sessions() {
			if s.Instance == instance && s.State == state {
				return
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("instance %s not %s within 5s: %+v", instance, state, b.Router.Sessions())
}

// forwarded waits for the host to receive a call of method and returns its
// forwarded id and attempt.
func forwarded(t *testing.T, host *bridgetest.Peer, method string) (fid string, attempt float64) {
	t.Helper()
	m := host.Expect(5*time.Second, func(m map[string]any) bool { return m["method"] == method })
	meta, _ := m["meta"].(map[string]any)
	fid, _ = m["id"].(string)
	attempt, _ = meta["attempt"].(float64)
	return fid, attempt
}

// replyTo waits for the reply with id (a string id).
func replyTo(t *testing.T, p *bridgetest.Peer, id string) map[string]any {
	t.Helper()
	return p.Expect(5*time.Second, func(m map[string]any) bool { return m["id"] == id && m["method"] == nil })
}

// TestMetricsAfterKnownTraffic drives known traffic through a real bridge
// and checks /metrics to the exact value: calls by app, method and
// outcome, their duration histogram, resumes and re-sends, the sessions
// gauge by app and state (reconnecting included), bytes, build info, and
// the Go and process collectors.
func TestMetricsAfterKnownTraffic(t *testing.T) {
	b := bridgetest.Start(t, &session.Options{Version: "1.2.3-test"}, &web.Options{})
	hostHello := map[string]any{"app": "aftereffects", "kind": "host", "instance": "ae-1", "boot": "b-1", "replay": true,
		"methods": []string{"get_items", "save", "render"}}
	host := bridgetest.Dial(t, b.WSURL, nil)
	host.Hello(hostHello)
	tool := bridgetest.Dial(t, b.WSURL, nil)
	tool.Hello(map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-1"})

	call := func(id, method string, meta map[string]any) {
		msg := map[string]any{"jsonrpc": "2.0", "id": id, "method": method, "params": map[string]any{}}
		if meta != nil {
			msg["meta"] = meta
		}
		tool.Send(msg)
	}

	// 3 calls the host answers with a result, 1 with an error.
	for i := range 3 {
		id := fmt.Sprintf("g%d", i)
		call(id, "aftereffects.get_items", nil)
		fid, _ := forwarded(t, host, "get_items")
		host.Send(map[string]any{"jsonrpc": "2.0", "id": fid, "result": []string{"comp 1"}})
		if r := replyTo(t, tool, id); r["result"] == nil {
			t.Fatalf("get_items: %v", r)
		}
	}
	call("s1", "aftereffects.save", nil)
	fid, _ := forwarded(t, host, "save")
	host.Send(map[string]any{"jsonrpc": "2.0", "id": fid, "error": map[string]any{"code": 1, "message": "disk full"}})
	if r := replyTo(t, tool, "s1"); errCode(t, r) != 1 {
		t.Fatalf("save: %v, want the host's error 1", r)
	}

	// No session of maya: -32001 after wait_ms; an app that is there but
	// does not offer the method: -32601 at once.
	call("m1", "maya.open", map[string]any{"wait_ms": 50})
	if r := replyTo(t, tool, "m1"); errCode(t, r) != -32001 {
		t.Fatalf("maya.open: %v, want -32001", r)
	}
	call("n1", "aftereffects.nope", nil)
	if r := replyTo(t, tool, "n1"); errCode(t, r) != -32601 {
		t.Fatalf("aftereffects.nope: %v, want -32601", r)
	}

	// Cancelled by the caller once the host has it.
	call("c1", "aftereffects.render", nil)
	cfid, _ := forwarded(t, host, "render")
	tool.Send(map[string]any{"jsonrpc": "2.0", "method": "$/cancelRequest", "params": map[string]any{"id": "c1"}})
	if r := replyTo(t, tool, "c1"); errCode(t, r) != -32800 {
		t.Fatalf("cancelled render: %v, want -32800", r)
	}
	host.Expect(5*time.Second, func(m map[string]any) bool {
		p, _ := m["params"].(map[string]any)
		return m["method"] == "$/cancelRequest" && p["id"] == cfid
	})

	// The host drops while running a call, comes back with the same boot,
	// and gets the call again (attempt 2), which it answers.
	call("r1", "aftereffects.render", nil)
	rfid, attempt := forwarded(t, host, "render")
	if attempt != 1 {
		t.Fatalf("render attempt %v, want 1", attempt)
	}
	_ = host.Conn.CloseNow()
	waitState(t, b, "ae-1", session.StateReconnecting)

	mid := scrape(t, b, "")
	wantSeries(t, "dccbridge_sessions while ae-1 reconnects", mid.series(t, "dccbridge_sessions"), map[string]float64{
		"app=aftereffects,state=connected":    0,
		"app=aftereffects,state=busy":         0,
		"app=aftereffects,state=reconnecting": 1,
		"app=pipeline,state=connected":        1,
		"app=pipeline,state=busy":             0,
		"app=pipeline,state=reconnecting":     0,
	})
	if v := mid.value(t, "dccbridge_calls_in_flight"); v != 1 {
		t.Errorf("dccbridge_calls_in_flight while render is parked: %v, want 1", v)
	}

	host2 := bridgetest.Dial(t, b.WSURL, nil)
	if res := host2.Hello(hostHello); res["resumed"] != true || res["pending"] != float64(1) {
		t.Fatalf("hello after the drop: %v, want resumed with 1 pending", res)
	}
	fid2, attempt := forwarded(t, host2, "render")
	if fid2 != rfid || attempt != 2 {
		t.Fatalf("re-sent render: id %q attempt %v, want id %q attempt 2", fid2, attempt, rfid)
	}
	host2.Send(map[string]any{"jsonrpc": "2.0", "id": fid2, "result": "rendered"})
	if r := replyTo(t, tool, "r1"); r["result"] != "rendered" {
		t.Fatalf("render after the resume: %v", r)
	}

	f := scrape(t, b, "")
	wantSeries(t, "dccbridge_calls_total", f.series(t, "dccbridge_calls_total"), map[string]float64{
		"app=aftereffects,method=aftereffects.get_items,outcome=ok":     3,
		"app=aftereffects,method=aftereffects.save,outcome=error":       1,
		"app=aftereffects,method=aftereffects.render,outcome=cancelled": 1,
		"app=aftereffects,method=aftereffects.render,outcome=ok":        1,
		"app=aftereffects,method=other,outcome=not_found":               1, // the app is there; nope was never offered
		"app=other,method=other,outcome=no_session":                     1, // nothing ever offered maya.*
	})
	counts, sums := f.histograms(t, "dccbridge_call_duration_seconds")
	wantSeries(t, "dccbridge_call_duration_seconds count", counts, map[string]uint64{
		"app=aftereffects,outcome=ok":        4,
		"app=aftereffects,outcome=error":     1,
		"app=aftereffects,outcome=cancelled": 1,
		"app=aftereffects,outcome=not_found": 1,
		"app=other,outcome=no_session":       1,
	})
	if s := sums["app=other,outcome=no_session"]; s < 0.05 || s > 5 {
		t.Errorf("duration of the call that waited 50 ms: %vs", s)
	}
	for name, want := range map[string]float64{
		"dccbridge_resumes_total":              1,
		"dccbridge_resends_total":              1,
		"dccbridge_dropped_events_total":       0,
		"dccbridge_slow_reader_closures_total": 0,
		"dccbridge_queue_drops_total":          0,
		"dccbridge_calls_in_flight":            0,
	} {
		if got := f.value(t, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	wantSeries(t, "dccbridge_sessions", f.series(t, "dccbridge_sessions"), map[string]float64{
		"app=aftereffects,state=connected":    1,
		"app=aftereffects,state=busy":         0,
		"app=aftereffects,state=reconnecting": 0,
		"app=pipeline,state=connected":        1,
		"app=pipeline,state=busy":             0,
		"app=pipeline,state=reconnecting":     0,
	})
	wantSeries(t, "dccbridge_build_info", f.series(t, "dccbridge_build_info"), map[string]float64{"version=1.2.3-test": 1})
	for _, name := range []string{"dccbridge_received_bytes_total", "dccbridge_sent_bytes_total"} {
		if v := f.value(t, name); v < 1000 {
			t.Errorf("%s = %v, want the bytes of the traffic above (> 1000)", name, v)
		}
	}
	if st := f.value(t, "dccbridge_start_time_seconds"); time.Since(time.Unix(int64(st), 0)) > time.Hour || st > float64(time.Now().Unix()+1) {
		t.Errorf("dccbridge_start_time_seconds = %v, want about now", st)
	}
	if g := f.value(t, "go_goroutines"); g < 1 {
		t.Errorf("go_goroutines = %v", g)
	}
	for _, name := range []string{"go_gc_duration_seconds", "go_info", "process_start_time_seconds", "process_cpu_seconds_total", "process_resident_memory_bytes"} {
		if f[name] == nil {
			t.Errorf("/metrics has no %s (the Go and process collectors)", name)
		}
	}
}

// TestMetricsBusyAndDroppedEvents: a host that has a call and is silent for
// BusyAfter counts as busy in dccbridge_sessions, and an event for it is
// dropped and counted.
func TestMetricsBusyAndDroppedEvents(t *testing.T) {
	b := bridgetest.Start(t, &session.Options{BusyAfter: 100 * time.Millisecond}, &web.Options{})
	host := bridgetest.Dial(t, b.WSURL, nil)
	host.Hello(map[string]any{"app": "aftereffects", "instance": "ae-1", "methods": []string{"render"}})
	if r := host.Call("sub", "bridge.subscribe", map[string]any{"topics": []string{"shot.*"}}); r["error"] != nil {
		t.Fatalf("subscribe: %v", r)
	}
	tool := bridgetest.Dial(t, b.WSURL, nil)
	tool.Hello(map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-1"})

	tool.Send(map[string]any{"jsonrpc": "2.0", "id": "r1", "method": "aftereffects.render"})
	fid, _ := forwarded(t, host, "render")
	waitState(t, b, "ae-1", session.StateBusy)
	if r := tool.Call("p1", "bridge.publish", map[string]any{"topic": "shot.published", "data": 1}); r["error"] != nil {
		t.Fatalf("publish: %v", r)
	} else if d := r["result"].(map[string]any)["delivered"]; d != float64(0) {
		t.Fatalf("publish to a busy host: delivered %v, want 0", d)
	}
	f := scrape(t, b, "")
	if got := f.series(t, "dccbridge_sessions")["app=aftereffects,state=busy"]; got != 1 {
		t.Errorf("dccbridge_sessions{app=aftereffects,state=busy} = %v, want 1", got)
	}
	if got := f.value(t, "dccbridge_dropped_events_total"); got != 1 {
		t.Errorf("dccbridge_dropped_events_total = %v, want 1", got)
	}

	host.Send(map[string]any{"jsonrpc": "2.0", "id": fid, "result": "done"})
	replyTo(t, tool, "r1")
	f = scrape(t, b, "")
	wantSeries(t, "dccbridge_calls_total", f.series(t, "dccbridge_calls_total"), map[string]float64{
		"app=aftereffects,method=aftereffects.render,outcome=ok": 1,
	})
	if got := f.series(t, "dccbridge_sessions")["app=aftereffects,state=connected"]; got != 1 {
		t.Errorf("dccbridge_sessions{app=aftereffects,state=connected} after the reply = %v, want 1", got)
	}
}

// TestMetricsSlowReader: a peer that never reads its replies is closed as a
// slow reader once its queue is full; the closure and the frames lost (the
// full queue and the reply that did not fit) are counted.
func TestMetricsSlowReader(t *testing.T) {
	const queueBytes = 1 << 20 // four of its 256 KiB replies
	b := bridgetest.Start(t, &session.Options{QueueBytes: queueBytes, CloseBudget: 100 * time.Millisecond}, &web.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, b.WSURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	// Pings whose 256 KiB ids come back in the replies, which this peer
	// never reads: once the socket buffers are full, the queue fills.
	id := strings.Repeat("x", 256<<10)
	ping := []byte(`{"jsonrpc":"2.0","id":"` + id + `","method":"bridge.ping"}`)
	f := scrape(t, b, "")
	for i := 0; i < 400 && f.value(t, "dccbridge_slow_reader_closures_total") == 0; i++ {
		if err := conn.Write(ctx, websocket.MessageText, ping); err != nil {
			break // closed by the bridge
		}
		if i%20 == 19 {
			f = scrape(t, b, "")
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for f.value(t, "dccbridge_slow_reader_closures_total") == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		f = scrape(t, b, "")
	}
	if got := f.value(t, "dccbridge_slow_reader_closures_total"); got != 1 {
		t.Fatalf("dccbridge_slow_reader_closures_total = %v, want 1", got)
	}
	// Dropped: what was queued (the byte bound and at most one reply over
	// it) and the reply that did not fit.
	replyLen := len(`{"jsonrpc":"2.0","id":"","result":{}}`) + len(id)
	if got := f.value(t, "dccbridge_queue_drops_total"); got < 2 || (got-2)*float64(replyLen) > queueBytes {
		t.Errorf("dccbridge_queue_drops_total = %v, want the queued replies (at most %d bytes of %d-byte replies) and the one that did not fit", got, queueBytes, replyLen)
	}
}

// TestMetricsToken: /metrics follows docs/protocol.md (Security) — with the
// token in force it needs it (401 without, 200 with Bearer or ?token=);
// otherwise a local client needs none; Host and Origin checks always apply.
// A routed call refused for want of a token is counted as unauthorized; a
// built-in is not a routed call and is not counted.
func TestMetricsToken(t *testing.T) {
	t.Run("in force", func(t *testing.T) {
		opts := web.Options{Token: testToken, TokenInForce: true}
		b := startBridge(t, opts)
		for _, q := range []httpReq{
			{method: "GET", path: "/metrics"},
			{method: "GET", path: "/metrics", auth: "Bearer not-" + testToken},
			{method: "GET", path: "/metrics?token=not-" + testToken},
		} {
			if resp, body := do(t, b, q); resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("GET %s (auth %q): status %d, want 401; body %q", q.path, q.auth, resp.StatusCode, body)
			}
		}
		if resp, _ := do(t, b, httpReq{method: "GET", path: "/metrics?token=" + testToken}); resp.StatusCode != http.StatusOK {
			t.Errorf("GET /metrics?token=: status %d, want 200", resp.StatusCode)
		}
		for _, q := range []httpReq{
			{method: "GET", path: "/metrics", auth: "Bearer " + testToken, origin: "https://evil.example"},
			{method: "GET", path: "/metrics", auth: "Bearer " + testToken, host: "evil.example"},
		} {
			if resp, body := do(t, b, q); resp.StatusCode != http.StatusForbidden {
				t.Errorf("GET /metrics (origin %q, host %q): status %d, want 403; body %q", q.origin, q.host, resp.StatusCode, body)
			}
		}

		host := startToolFor(t, b, opts)
		host.Hello(map[string]any{"app": "aftereffects", "instance": "ae-1", "methods": []string{"get_items"}})
		stranger := bridgetest.Dial(t, b.WSURL, nil) // accepted, but every call but hello is refused
		for _, method := range []string{"aftereffects.get_items", "bridge.ping"} {
			if r := stranger.Call(method, method, nil); errCode(t, r) != -32005 {
				t.Fatalf("%s without the token: %v, want -32005", method, r)
			}
		}
		f := scrape(t, b, "Bearer "+testToken)
		wantSeries(t, "dccbridge_calls_total", f.series(t, "dccbridge_calls_total"), map[string]float64{
			"app=aftereffects,method=aftereffects.get_items,outcome=unauthorized": 1,
		})
		wantSeries(t, "dccbridge_sessions", f.series(t, "dccbridge_sessions"), map[string]float64{
			"app=aftereffects,state=connected":    1,
			"app=aftereffects,state=busy":         0,
			"app=aftereffects,state=reconnecting": 0,
			"app=,state=connected":                1, // the stranger, which never said hello
			"app=,state=busy":                     0,
			"app=,state=reconnecting":             0,
		})
	})

	t.Run("not in force", func(t *testing.T) {
		b := startBridge(t, web.Options{Token: testToken})
		scrape(t, b, "")                  // a local client needs no token
		scrape(t, b, "Bearer "+testToken) // nor is a right one refused
		resp, _ := do(t, b, httpReq{method: "GET", path: "/metrics", origin: "null"})
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET /metrics from a null origin without the token: status %d, want 401", resp.StatusCode)
		}
		resp, _ = do(t, b, httpReq{method: "GET", path: "/metrics", auth: "Bearer not-" + testToken})
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET /metrics with a wrong token: status %d, want 401", resp.StatusCode)
		}
	})
}
