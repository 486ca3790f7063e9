package web_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/dccbridge/dccbridge/internal/bridgetest"
	"github.com/dccbridge/dccbridge/session"
	"github.com/dccbridge/dccbridge/web"
)

// sseEvent is one server-sent event.
type sseEvent struct {
	event, id, data string
}

// sseStream reads an /api/events stream.
type sseStream struct {
	t      *testing.T
	resp   *http.Response
	cancel context.CancelFunc
	events chan sseEvent
	done   chan error // the reader's end: io.EOF when the server ended the stream
	seq    uint64     // the last event's seq
}

// openEvents opens GET /api/events on b with the given query and
// Authorization, failing the test unless the answer is 200.
func openEvents(t *testing.T, b *bridgetest.Bridge, query, auth string) *sseStream {
	t.Helper()
	resp, cancel := getStream(t, b, "/api/events"+query, auth)
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		t.Fatalf("GET /api/events: status %d: %s", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type %q, want text/event-stream", ct)
	}
	s := &sseStream{t: t, resp: resp, cancel: cancel, events: make(chan sseEvent, 1024), done: make(chan error, 1)}
	go s.read()
	t.Cleanup(s.close)
	return s
}

// getStream sends a GET whose body the caller reads; cancel ends it.
func getStream(t *testing.T, b *bridgetest.Bridge, path, auth string) (*http.Response, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", b.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	// The response's headers must come at once; the body may go on.
	timer := time.AfterFunc(10*time.Second, cancel)
	resp, err := b.Server.Client().Do(req)
	timer.Stop()
	if err != nil {
		cancel()
		t.Fatalf("GET %s: %v", path, err)
	}
	return resp, cancel
}

func (s *sseStream) read() {
	defer close(s.events)
	br := bufio.NewReader(s.resp.Body)
	var ev sseEvent
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			s.done <- err
			return
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if ev.data != "" || ev.event != "" {
				s.events <- ev
			}
			ev = sseEvent{}
		case strings.HasPrefix(line, ":"): // a comment (keep-alive)
		case strings.HasPrefix(line, "event: "):
			ev.event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "id: "):
			ev.id = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "data: "):
			ev.data += strings.TrimPrefix(line, "data: ")
		}
	}
}

func (s *sseStream) close() {
	s.cancel()
	s.resp.Body.Close()
}

// next returns the next event, failing the test after timeout.
func (s *sseStream) next(timeout time.Duration) sseEvent {
	s.t.Helper()
	select {
	case ev, ok := <-s.events:
		if !ok {
			s.t.Fatalf("the event stream ended: %v", <-s.done)
		}
		return ev
	case <-time.After(timeout):
		s.t.Fatalf("no event within %v", timeout)
		return sseEvent{}
	}
}

// hello reads the stream's first event, which must be "hello".
func (s *sseStream) hello() (boot string, seq uint64) {
	s.t.Helper()
	ev := s.next(5 * time.Second)
	var h struct {
		Boot string `json:"boot"`
		Seq  uint64 `json:"seq"`
	}
	if ev.event != "hello" || json.Unmarshal([]byte(ev.data), &h) != nil || h.Boot == "" {
		s.t.Fatalf("first event %+v, want hello {boot, seq}", ev)
	}
	return h.Boot, h.Seq
}

// logEvent is the data of an event of the log.
type logEvent struct {
	Seq   uint64          `json:"seq"`
	Topic string          `json:"topic"`
	Data  json.RawMessage `json:"data"`
	At    time.Time       `json:"at"`
}

// event reads the next event of the log.
func (s *sseStream) event(timeout time.Duration) logEvent {
	s.t.Helper()
	ev := s.next(timeout)
	var le logEvent
	if ev.event != "" || json.Unmarshal([]byte(ev.data), &le) != nil {
		s.t.Fatalf("event %+v: want a default event with {seq, topic, data, at}", ev)
	}
	if ev.id != strconv.FormatUint(le.Seq, 10) {
		s.t.Errorf("event id %q, seq %d: want them equal", ev.id, le.Seq)
	}
	if s.seq != 0 && le.Seq != s.seq+1 {
		s.t.Errorf("event seq %d after %d: a gap or a repeat", le.Seq, s.seq)
	}
	s.seq = le.Seq
	return le
}

// expectTopic reads events until one of topic whose data contains all
// of parts comes, failing after timeout.
func (s *sseStream) expectTopic(timeout time.Duration, topic string, parts ...string) logEvent {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			s.t.Fatalf("no %s event with %q within %v", topic, parts, timeout)
		}
		ev := s.event(left)
		if ev.Topic != topic {
			continue
		}
		match := true
		for _, p := range parts {
			match = match && strings.Contains(string(ev.Data), p)
		}
		if match {
			return ev
		}
	}
}

// TestStatusToken: with the token in force, the page, /api/status,
// /api/calls and /api/events answer 401 without it and 200 with it as
// Authorization: Bearer or ?token=; the page's assets need none. Without
// a token in force, they need none.
func TestStatusToken(t *testing.T) {
	paths := []string{"/", "/api/status", "/api/calls", "/api/events", "/api/sessions"}
	get := func(t *testing.T, b *bridgetest.Bridge, path, auth string) (*http.Response, string) {
		t.Helper()
		resp, cancel := getStream(t, b, path, auth)
		defer cancel()
		defer resp.Body.Close()
		if strings.HasPrefix(path, "/api/events") && resp.StatusCode == http.StatusOK {
			return resp, "" // a stream: its headers are the answer
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		return resp, string(body)
	}

	t.Run("in force", func(t *testing.T) {
		b := startBridge(t, web.Options{Token: testToken, TokenInForce: true, Version: "1.2.3"})
		for _, path := range paths {
			for _, tc := range []struct {
				name, query, auth string
				want              int
			}{
				{"none", "", "", http.StatusUnauthorized},
				{"bearer", "", "Bearer " + testToken, http.StatusOK},
				{"query", "?token=" + url.QueryEscape(testToken), "", http.StatusOK},
				{"wrong bearer", "", "Bearer not-" + testToken, http.StatusUnauthorized},
				{"wrong query", "?token=not-" + testToken, "", http.StatusUnauthorized},
			} {
				t.Run(path+"/"+tc.name, func(t *testing.T) {
					resp, body := get(t, b, path+tc.query, tc.auth)
					if resp.StatusCode != tc.want {
						t.Fatalf("status %d, want %d; body %q", resp.StatusCode, tc.want, body)
					}
					if tc.want == http.StatusUnauthorized && resp.Header.Get("WWW-Authenticate") == "" {
						t.Error("a 401 without WWW-Authenticate")
					}
					if path == "/" && !strings.Contains(body, `<script src="/static/app.js"`) {
						// Refused or not, the page is the page: without a
						// token it asks for one, and it holds no data.
						t.Errorf("GET / did not serve the page: %q", body)
					}
					if path == "/api/status" && tc.want == http.StatusOK {
						var st map[string]any
						if err := json.Unmarshal([]byte(body), &st); err != nil {
							t.Fatalf("status: %v: %s", err, body)
						}
						if st["version"] != "1.2.3" || st["token_in_force"] != true || st["address"] != strings.TrimPrefix(b.URL, "http://") {
							t.Errorf("status: %s", body)
						}
					}
				})
			}
		}
		for _, path := range []string{"/static/app.js", "/static/style.css"} {
			resp, body := get(t, b, path, "")
			if resp.StatusCode != http.StatusOK || len(body) < 100 {
				t.Errorf("GET %s without a token: status %d, %d bytes; want the asset", path, resp.StatusCode, len(body))
			}
		}
		if resp, _ := get(t, b, "/static/nope.js", ""); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET /static/nope.js: status %d, want 404", resp.StatusCode)
		}
	})

	t.Run("not in force", func(t *testing.T) {
		b := startBridge(t, web.Options{Token: testToken})
		for _, path := range paths {
			if resp, body := get(t, b, path, ""); resp.StatusCode != http.StatusOK {
				t.Errorf("GET %s: status %d, want 200; body %q", path, resp.StatusCode, body)
			}
		}
	})
}

// TestStatusAPI: /api/status counts sessions, calls in flight, calls and
// errors; /api/calls lists the calls in flight.
func TestStatusAPI(t *testing.T) {
	b := startBridge(t, web.Options{})
	host := bridgetest.Dial(t, b.WSURL, nil)
	host.Hello(map[string]any{"app": "aftereffects", "instance": "ae-1", "methods": []string{"render"}})
	tool := bridgetest.Dial(t, b.WSURL, nil)
	tool.Hello(map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-1"})
	tool.Send(map[string]any{"jsonrpc": "2.0", "id": "c1", "method": "aftereffects.render", "params": map[string]any{"comp": "main"}})
	req := host.Expect(5*time.Second, func(m map[string]any) bool { return m["method"] == "render" })

	var calls []session.CallInfo
	getJSON(t, b, "/api/calls", &calls)
	if len(calls) != 1 || calls[0].Method != "aftereffects.render" || calls[0].Caller != "pipeline/pub-1" ||
		calls[0].Callee != "ae-1" || calls[0].State != "written" || calls[0].Attempt != 1 || calls[0].ID != req["id"] {
		t.Fatalf("calls: %+v", calls)
	}
	var st struct {
		Totals struct {
			Sessions int    `json:"sessions"`
			InFlight int    `json:"in_flight"`
			Calls    uint64 `json:"calls"`
			Errors   uint64 `json:"errors"`
		} `json:"totals"`
		UptimeMS int64 `json:"uptime_ms"`
	}
	getJSON(t, b, "/api/status", &st)
	if st.Totals.Sessions != 2 || st.Totals.InFlight != 1 || st.Totals.Calls != 1 || st.Totals.Errors != 0 || st.UptimeMS < 0 {
		t.Fatalf("status before the reply: %+v", st)
	}

	host.Send(map[string]any{"jsonrpc": "2.0", "id": req["id"], "error": map[string]any{"code": 5, "message": "no"}})
	tool.Expect(5*time.Second, func(m map[string]any) bool { return m["id"] == "c1" })
	// A call the host does not answer in time fails: an error.
	tool.Send(map[string]any{"jsonrpc": "2.0", "id": "c2", "method": "aftereffects.render", "meta": map[string]any{"timeout_ms": 50}})
	if r := tool.Expect(5*time.Second, func(m map[string]any) bool { return m["id"] == "c2" }); errCode(t, r) != -32002 {
		t.Fatalf("the call that timed out: %v", r)
	}
	getJSON(t, b, "/api/calls", &calls)
	if len(calls) != 0 {
		t.Fatalf("calls after the replies: %+v", calls)
	}
	getJSON(t, b, "/api/status", &st)
	// What counts as an error is the router's business (a callee's error
	// reply may count): the page shows its count.
	if rs := b.Router.Stats(); st.Totals.InFlight != 0 || st.Totals.Calls != rs.Calls || st.Totals.Calls < 2 ||
		st.Totals.Errors != rs.Failed || st.Totals.Errors < 1 {
		t.Fatalf("status after the replies: %+v (router: %+v)", st, rs)
	}
}

func getJSON(t *testing.T, b *bridgetest.Bridge, path string, v any) {
	t.Helper()
	resp, body := do(t, b, httpReq{method: "GET", path: path})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d: %s", path, resp.StatusCode, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: %v: %s", path, err, body)
	}
}

// TestStatusEventStream: /api/events sends hello, then the events kept
// (replayed), then live ones, numbered without gap; Close ends the stream,
// refuses new ones and leaves no goroutine behind.
func TestStatusEventStream(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	b := bridgetest.Start(t, &session.Options{ResumeWait: 50 * time.Millisecond}, &web.Options{})

	host := bridgetest.Dial(t, b.WSURL, nil)
	host.Hello(map[string]any{"app": "aftereffects", "instance": "ae-1", "label": "AYON panel", "methods": []string{"render"}})
	tool := bridgetest.Dial(t, b.WSURL, nil)
	tool.Hello(map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-1"})
	tool.Call("ctx", "bridge.context", map[string]any{"app": "aftereffects", "context": map[string]any{"project": "P"}})
	tool.Send(map[string]any{"jsonrpc": "2.0", "id": "c1", "method": "aftereffects.render"})
	_ = tool.Call("c2", "aftereffects.missing", nil) // -32601 at once: not a call in flight, no event
	// What peers publish to each other is not the log's business.
	tool.Call("pub", "bridge.publish", map[string]any{"topic": "studio.news", "data": 1})

	// The events so far reach the feed through its own goroutine: wait
	// until a stream's replay holds them.
	var s *sseStream
	var boot string
	var last uint64
	for deadline := time.Now().Add(5 * time.Second); ; {
		s = openEvents(t, b, "", "")
		boot, last = s.hello()
		if last >= 3 || time.Now().After(deadline) {
			break
		}
		s.close()
		time.Sleep(20 * time.Millisecond)
	}
	req := host.Expect(5*time.Second, func(m map[string]any) bool { return m["method"] == "render" })

	var replay []logEvent
	for uint64(len(replay)) < last {
		replay = append(replay, s.event(5*time.Second))
	}
	var topics []string
	for i, ev := range replay {
		if ev.Seq != uint64(i+1) {
			t.Errorf("replayed event %d has seq %d", i, ev.Seq)
		}
		if ev.At.IsZero() {
			t.Errorf("event %d has no time", ev.Seq)
		}
		topics = append(topics, ev.Topic)
	}
	if got := strings.Join(topics, " "); !strings.HasPrefix(got, "session.joined session.joined context.changed") || strings.Contains(got, "studio.news") {
		t.Fatalf("replayed topics %q", got)
	}
	var joined session.SessionInfo
	if err := json.Unmarshal(replay[0].Data, &joined); err != nil || joined.App != "aftereffects" || joined.Label != "AYON panel" {
		t.Errorf("first event: %s", replay[0].Data)
	}

	// Live: the host answers with an error (not a failure of the bridge's
	// making, so no event), the render call times out, a peer leaves.
	host.Send(map[string]any{"jsonrpc": "2.0", "id": req["id"], "error": map[string]any{"code": 7, "message": "no"}})
	tool.Send(map[string]any{"jsonrpc": "2.0", "id": "c3", "method": "aftereffects.render", "meta": map[string]any{"timeout_ms": 50}})
	failed := s.expectTopic(5*time.Second, "bridge.call.failed", `"code":-32002`)
	var fd map[string]any
	if err := json.Unmarshal(failed.Data, &fd); err != nil || fd["method"] != "aftereffects.render" || fd["code"] != -32002.0 ||
		fmt.Sprint(fd["caller"]) != "map[app:pipeline instance:pub-1]" {
		t.Errorf("bridge.call.failed: %s", failed.Data)
	}
	tool.Conn.CloseNow()
	left := s.expectTopic(5*time.Second, "session.left")
	if !strings.Contains(string(left.Data), `"app":"pipeline"`) {
		t.Errorf("session.left: %s", left.Data)
	}

	// A second stream replays the same events, with the same boot.
	s2 := openEvents(t, b, "", "")
	if boot2, last2 := s2.hello(); boot2 != boot || last2 < left.Seq {
		t.Errorf("second stream: boot %q seq %d; want %q and at least %d", boot2, last2, boot, left.Seq)
	}
	if ev := s2.event(5 * time.Second); ev.Seq != 1 || ev.Topic != "session.joined" {
		t.Errorf("second stream's first event: %+v", ev)
	}

	// Close ends both streams and refuses new ones.
	b.Web.Close()
	for _, st := range []*sseStream{s, s2} {
		select {
		case err := <-st.done:
			if err != io.EOF {
				t.Errorf("stream ended with %v, want EOF", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a stream outlived Close by 5 s")
		}
	}
	resp, body := do(t, b, httpReq{method: "GET", path: "/api/events"})
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("GET /api/events after Close: %d %s", resp.StatusCode, body)
	}
	b.Web.Close() // safe twice

	host.Conn.CloseNow()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.Router.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	b.Server.Close()
	goleak.VerifyNone(t, ignore)
}

// TestStatusEventRing: the log keeps the last 200 events; a stream
// replays exactly those, oldest first.
func TestStatusEventRing(t *testing.T) {
	b := startBridge(t, web.Options{})
	tool := bridgetest.Dial(t, b.WSURL, nil)
	tool.Hello(map[string]any{"app": "pipeline", "kind": "tool"}) // event 1
	const n = 250                                                 // events 2 … 251
	for i := range n {
		r := tool.Call(i, "bridge.context", map[string]any{"app": "maya", "context": map[string]any{"n": strconv.Itoa(i)}})
		if r["error"] != nil {
			t.Fatalf("bridge.context: %v", r["error"])
		}
	}
	var s *sseStream
	for deadline := time.Now().Add(5 * time.Second); ; {
		s = openEvents(t, b, "", "")
		if _, last := s.hello(); last == n+1 {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("the feed got %d events, want %d", last, n+1)
		}
		s.close()
		time.Sleep(20 * time.Millisecond)
	}
	for i := range 200 {
		ev := s.event(5 * time.Second)
		want := uint64(n + 1 - 200 + 1 + i) // 52 … 251
		if ev.Seq != want || ev.Topic != "context.changed" {
			t.Fatalf("replayed event %d: seq %d topic %s, want seq %d context.changed", i, ev.Seq, ev.Topic, want)
		}
		var d struct {
			Context struct{ N string } `json:"context"`
		}
		if err := json.Unmarshal(ev.Data, &d); err != nil || d.Context.N != strconv.Itoa(int(want)-2) {
			t.Fatalf("event %d: %s", ev.Seq, ev.Data)
		}
	}
	// Nothing more until something happens.
	select {
	case ev := <-s.events:
		t.Fatalf("an event after the replay of 200: %+v", ev)
	case <-time.After(100 * time.Millisecond):
	}
}

// TestStatusEventStreamOutlivesWriteTimeout: an http.Server's
// WriteTimeout does not end an /api/events stream.
func TestStatusEventStreamOutlivesWriteTimeout(t *testing.T) {
	b := bridgetest.NewUnstarted(t, "127.0.0.1:0", nil, nil)
	b.Server.Config.WriteTimeout = 200 * time.Millisecond
	b.Server.Start()
	s := openEvents(t, b, "", "")
	s.hello()
	time.Sleep(500 * time.Millisecond) // past the write timeout
	p := bridgetest.Dial(t, b.WSURL, nil)
	p.Hello(map[string]any{"app": "houdini", "instance": "h-1"})
	if ev := s.event(5 * time.Second); ev.Topic != "session.joined" {
		t.Fatalf("event %+v, want session.joined", ev)
	}
}

// TestStatusEventHugeDataTruncated: a huge event (a 100 KiB context) is
// kept in the log as a short marker, so 200 of them cannot fill memory or
// every page that opens.
func TestStatusEventHugeDataTruncated(t *testing.T) {
	b := startBridge(t, web.Options{})
	s := openEvents(t, b, "", "")
	s.hello()
	tool := bridgetest.Dial(t, b.WSURL, nil)
	big := strings.Repeat("x", 100<<10)
	if r := tool.Call(1, "bridge.context", map[string]any{"app": "maya", "context": map[string]any{"big": big}}); r["error"] != nil {
		t.Fatalf("bridge.context: %v", r["error"])
	}
	ev := s.expectTopic(5*time.Second, "context.changed")
	var d struct {
		App       string          `json:"app"`
		Context   json.RawMessage `json:"context"`
		Truncated bool            `json:"truncated"`
		Bytes     int             `json:"bytes"`
	}
	if err := json.Unmarshal(ev.Data, &d); err != nil || !d.Truncated || d.Bytes < 100<<10 || d.App != "maya" || d.Context != nil {
		t.Fatalf("event data %.200s, want {app: maya, truncated: true, bytes: >100 KiB} without the context", ev.Data)
	}
}
