package web_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/dccbridge/dccbridge/internal/bridgetest"
	"github.com/dccbridge/dccbridge/rpc"
	"github.com/dccbridge/dccbridge/session"
	"github.com/dccbridge/dccbridge/web"
)

const testToken = "s3cret-token"

// startBridge serves a bridge whose session and web layers share token.
func startBridge(t *testing.T, wo web.Options) *bridgetest.Bridge {
	t.Helper()
	return bridgetest.Start(t, &session.Options{Token: wo.Token}, &wo)
}

// httpReq describes one HTTP request to a bridge.
type httpReq struct {
	method, path string
	host         string // the Host header; empty means the bridge's address
	origin       string // the Origin header; empty means none
	auth         string // the Authorization header; empty means none
	ctype        string // Content-Type; empty means none
	body         string
}

// do sends q to b and returns the response (body read and closed) and body.
func do(t *testing.T, b *bridgetest.Bridge, q httpReq) (*http.Response, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var body io.Reader
	if q.body != "" {
		body = strings.NewReader(q.body)
	}
	req, err := http.NewRequestWithContext(ctx, q.method, b.URL+q.path, body)
	if err != nil {
		t.Fatal(err)
	}
	if q.host != "" {
		req.Host = q.host
	}
	if q.origin != "" {
		req.Header.Set("Origin", q.origin)
	}
	if q.auth != "" {
		req.Header.Set("Authorization", q.auth)
	}
	if q.ctype != "" {
		req.Header.Set("Content-Type", q.ctype)
	}
	resp, err := b.Server.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", q.method, q.path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", q.method, q.path, err)
	}
	return resp, data
}

// errCode returns the error code of a JSON-RPC reply, or 0 when it has none.
func errCode(t *testing.T, reply map[string]any) int64 {
	t.Helper()
	e, ok := reply["error"].(map[string]any)
	if !ok {
		return 0
	}
	code, ok := e["code"].(float64)
	if !ok {
		t.Fatalf("error without a numeric code: %v", reply)
	}
	return int64(code)
}

// outcome is what docs/protocol.md (Security) says a request gets.
type outcome int

const (
	allowed    outcome = iota // served; the websocket session is authorized
	needsToken                // guarded endpoints 401; the upgrade is accepted unauthorized
	badToken                  // guarded endpoints and the upgrade 401
	forbidden                 // 403 everywhere, /healthz and /readyz too
)

func (o outcome) String() string {
	return [...]string{"allowed", "needs token", "bad token", "forbidden"}[o]
}

// token modes of a security case.
const (
	tokNone   = ""
	tokBearer = "bearer"
	tokQuery  = "query"
	tokWrong  = "wrong"      // a wrong token as Authorization: Bearer
	tokWrongQ = "wrongquery" // a wrong token as ?token=
	tokLower  = "lowercase"  // Authorization: bearer <token> (the scheme is case-insensitive, RFC 9110 §11.1)
)

// selfOrigin stands for the bridge's own origin in a case table.
const selfOrigin = "<self>"

// TestSecurityTable runs the rules of docs/protocol.md (Security) case by
// case over every endpoint: each case is a bridge configuration, an Origin
// and a way of giving the token.
func TestSecurityTable(t *testing.T) {
	patterns := []string{"*.example.com", "https://tools.example.org"}
	cases := []struct {
		name    string
		opts    web.Options
		origin  string
		token   string
		want    outcome
		comment string
	}{
		// A loopback bridge with a token file: the token only admits null / file:// pages.
		{name: "local/no origin/no token", opts: web.Options{Token: testToken}, want: allowed},
		{name: "local/no origin/bearer", opts: web.Options{Token: testToken}, token: tokBearer, want: allowed},
		{name: "local/no origin/query", opts: web.Options{Token: testToken}, token: tokQuery, want: allowed},
		{name: "local/no origin/wrong bearer", opts: web.Options{Token: testToken}, token: tokWrong, want: badToken},
		{name: "local/no origin/wrong query", opts: web.Options{Token: testToken}, token: tokWrongQ, want: badToken},
		{name: "local/self/no token", opts: web.Options{Token: testToken}, origin: selfOrigin, want: allowed},
		{name: "local/self/bearer", opts: web.Options{Token: testToken}, origin: selfOrigin, token: tokBearer, want: allowed},
		{name: "local/self/wrong", opts: web.Options{Token: testToken}, origin: selfOrigin, token: tokWrong, want: badToken},
		{name: "local/null/no token", opts: web.Options{Token: testToken}, origin: "null", want: needsToken},
		{name: "local/null/bearer", opts: web.Options{Token: testToken}, origin: "null", token: tokBearer, want: allowed},
		{name: "local/null/query", opts: web.Options{Token: testToken}, origin: "null", token: tokQuery, want: allowed},
		{name: "local/null/wrong", opts: web.Options{Token: testToken}, origin: "null", token: tokWrong, want: badToken},
		{name: "local/null/lower-case bearer", opts: web.Options{Token: testToken}, origin: "null", token: tokLower, want: allowed},
		{name: "local/null/wrong query", opts: web.Options{Token: testToken}, origin: "null", token: tokWrongQ, want: badToken},
		{name: "local/file/no token", opts: web.Options{Token: testToken}, origin: "file://", want: needsToken},
		{name: "local/file path/no token", opts: web.Options{Token: testToken}, origin: "file:///C:/panel/index.html", want: needsToken},
		{name: "local/file/bearer", opts: web.Options{Token: testToken}, origin: "file://", token: tokBearer, want: allowed},
		{name: "local/file/query", opts: web.Options{Token: testToken}, origin: "file://", token: tokQuery, want: allowed},
		{name: "local/file/wrong", opts: web.Options{Token: testToken}, origin: "file://", token: tokWrong, want: badToken},
		{name: "local/evil/no token", opts: web.Options{Token: testToken}, origin: "https://evil.example", want: forbidden},
		{name: "local/evil/bearer", opts: web.Options{Token: testToken}, origin: "https://evil.example", token: tokBearer, want: forbidden},
		{name: "local/evil/query", opts: web.Options{Token: testToken}, origin: "https://evil.example", token: tokQuery, want: forbidden},
		{name: "local/evil/wrong", opts: web.Options{Token: testToken}, origin: "https://evil.example", token: tokWrong, want: forbidden},
		{name: "local/other loopback port", opts: web.Options{Token: testToken}, origin: "http://127.0.0.1:1", want: forbidden,
			comment: "another local web server is another origin"},

		// No token configured at all: null pages cannot be admitted, any token is wrong.
		{name: "no token/no origin", opts: web.Options{}, want: allowed},
		{name: "no token/no origin/some token", opts: web.Options{}, token: tokWrong, want: badToken},
		{name: "no token/null", opts: web.Options{}, origin: "null", want: needsToken},

		// --allow-origin null: null and file:// pages need no token.
		{name: "allow null/null/no token", opts: web.Options{Token: testToken, AllowOrigins: []string{"null"}}, origin: "null", want: allowed},
		{name: "allow null/file/no token", opts: web.Options{Token: testToken, AllowOrigins: []string{"null"}}, origin: "file://", want: allowed},
		{name: "allow null/null/bearer", opts: web.Options{Token: testToken, AllowOrigins: []string{"null"}}, origin: "null", token: tokBearer, want: allowed},
		{name: "allow null/null/wrong", opts: web.Options{Token: testToken, AllowOrigins: []string{"null"}}, origin: "null", token: tokWrong, want: badToken},
		{name: "allow null/evil", opts: web.Options{Token: testToken, AllowOrigins: []string{"null"}}, origin: "https://evil.example", want: forbidden},
		{name: "allow null/no origin", opts: web.Options{Token: testToken, AllowOrigins: []string{"null"}}, want: allowed},
		{name: "allow null/a host named null", opts: web.Options{Token: testToken, AllowOrigins: []string{"null"}}, origin: "http://null", want: forbidden,
			comment: "the pattern null stands for the null origin, not for a web server whose host name is null"},

		// --allow-origin patterns: a host pattern matches any scheme, a scheme://host pattern only that scheme.
		{name: "patterns/host pattern https", opts: web.Options{Token: testToken, AllowOrigins: patterns}, origin: "https://app.example.com", want: allowed},
		{name: "patterns/host pattern http", opts: web.Options{Token: testToken, AllowOrigins: patterns}, origin: "http://app.example.com", want: allowed},
		{name: "patterns/host pattern upper case", opts: web.Options{Token: testToken, AllowOrigins: patterns}, origin: "https://App.Example.COM", want: allowed},
		{name: "patterns/host pattern bearer", opts: web.Options{Token: testToken, AllowOrigins: patterns}, origin: "https://app.example.com", token: tokBearer, want: allowed},
		{name: "patterns/host pattern wrong", opts: web.Options{Token: testToken, AllowOrigins: patterns}, origin: "https://app.example.com", token: tokWrong, want: badToken},
		{name: "patterns/scheme pattern", opts: web.Options{Token: testToken, AllowOrigins: patterns}, origin: "https://tools.example.org", want: allowed},
		{name: "patterns/scheme pattern other scheme", opts: web.Options{Token: testToken, AllowOrigins: patterns}, origin: "http://tools.example.org", want: forbidden},
		{name: "patterns/bare domain", opts: web.Options{Token: testToken, AllowOrigins: patterns}, origin: "https://example.com", want: forbidden},
		{name: "patterns/suffix trick", opts: web.Options{Token: testToken, AllowOrigins: patterns}, origin: "https://app.example.com.evil.example", want: forbidden},
		{name: "patterns/evil", opts: web.Options{Token: testToken, AllowOrigins: patterns}, origin: "https://evil.example", want: forbidden},
		{name: "patterns/null still needs token", opts: web.Options{Token: testToken, AllowOrigins: patterns}, origin: "null", want: needsToken},

		// Token in force: every client needs it, local processes included.
		{name: "in force/no origin/no token", opts: web.Options{Token: testToken, TokenInForce: true}, want: needsToken},
		{name: "in force/no origin/bearer", opts: web.Options{Token: testToken, TokenInForce: true}, token: tokBearer, want: allowed},
		{name: "in force/no origin/query", opts: web.Options{Token: testToken, TokenInForce: true}, token: tokQuery, want: allowed},
		{name: "in force/no origin/wrong", opts: web.Options{Token: testToken, TokenInForce: true}, token: tokWrong, want: badToken},
		{name: "in force/no origin/lower-case bearer", opts: web.Options{Token: testToken, TokenInForce: true}, token: tokLower, want: allowed},
		{name: "in force/no origin/wrong query", opts: web.Options{Token: testToken, TokenInForce: true}, token: tokWrongQ, want: badToken},
		{name: "in force/self/no token", opts: web.Options{Token: testToken, TokenInForce: true}, origin: selfOrigin, want: needsToken},
		{name: "in force/self/query", opts: web.Options{Token: testToken, TokenInForce: true}, origin: selfOrigin, token: tokQuery, want: allowed},
		{name: "in force/null/no token", opts: web.Options{Token: testToken, TokenInForce: true}, origin: "null", want: needsToken},
		{name: "in force/null/query", opts: web.Options{Token: testToken, TokenInForce: true}, origin: "null", token: tokQuery, want: allowed},
		{name: "in force/allow null/null/no token", opts: web.Options{Token: testToken, TokenInForce: true, AllowOrigins: []string{"null"}}, origin: "null", want: needsToken,
			comment: "--allow-origin null relaxes the origin rule, not a token in force"},
		{name: "in force/pattern/no token", opts: web.Options{Token: testToken, TokenInForce: true, AllowOrigins: patterns}, origin: "https://app.example.com", want: needsToken},
		{name: "in force/pattern/bearer", opts: web.Options{Token: testToken, TokenInForce: true, AllowOrigins: patterns}, origin: "https://app.example.com", token: tokBearer, want: allowed},
		{name: "in force/evil/bearer", opts: web.Options{Token: testToken, TokenInForce: true}, origin: "https://evil.example", token: tokBearer, want: forbidden},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := startBridge(t, tc.opts)
			origin := tc.origin
			if origin == selfOrigin {
				origin = b.URL
			}
			var auth, query string
			switch tc.token {
			case tokBearer:
				auth = "Bearer " + testToken
			case tokQuery:
				query = "?token=" + url.QueryEscape(testToken)
			case tokWrong:
				auth = "Bearer not-" + testToken
			case tokWrongQ:
				query = "?token=not-" + testToken
			case tokLower:
				auth = "bearer " + testToken
			}
			if tc.comment != "" {
				t.Log(tc.comment)
			}

			t.Run("ws", func(t *testing.T) { checkUpgrade(t, b, origin, auth, query, tc.want) })

			t.Run("rpc", func(t *testing.T) {
				resp, body := do(t, b, httpReq{method: "POST", path: "/rpc" + query, origin: origin, auth: auth,
					ctype: "application/json", body: `{"jsonrpc":"2.0","id":1,"method":"bridge.ping"}`})
				wantStatus(t, resp, body, tc.want, http.StatusOK)
				if tc.want == allowed {
					var reply map[string]any
					if err := json.Unmarshal(body, &reply); err != nil || reply["result"] == nil {
						t.Fatalf("POST /rpc: want a ping result, got %s", body)
					}
				}
			})

			for _, path := range []string{"/api/sessions", "/api/status", "/api/calls", "/metrics", "/"} {
				t.Run("GET "+path, func(t *testing.T) {
					resp, body := do(t, b, httpReq{method: "GET", path: path + query, origin: origin, auth: auth})
					wantStatus(t, resp, body, tc.want, http.StatusOK)
				})
			}

			for _, path := range []string{"/healthz", "/readyz"} {
				t.Run("GET "+path, func(t *testing.T) {
					resp, body := do(t, b, httpReq{method: "GET", path: path + query, origin: origin, auth: auth})
					want := http.StatusOK // never needs a token, not even a right one
					if tc.want == forbidden {
						want = http.StatusForbidden
					}
					if resp.StatusCode != want {
						t.Fatalf("status %d, want %d (%s); body %q", resp.StatusCode, want, tc.want, body)
					}
				})
			}
		})
	}
}

// wantStatus checks the status of a guarded endpoint against o.
func wantStatus(t *testing.T, resp *http.Response, body []byte, o outcome, okStatus int) {
	t.Helper()
	want := okStatus
	switch o {
	case needsToken, badToken:
		want = http.StatusUnauthorized
	case forbidden:
		want = http.StatusForbidden
	}
	if resp.StatusCode != want {
		t.Fatalf("status %d, want %d (%s); body %q", resp.StatusCode, want, o, body)
	}
	if o != allowed && resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("a refusal grants CORS: Access-Control-Allow-Origin %q", resp.Header.Get("Access-Control-Allow-Origin"))
	}
}

// checkUpgrade dials /ws and checks the upgrade, and for an accepted one
// whether the session is authorized.
func checkUpgrade(t *testing.T, b *bridgetest.Bridge, origin, auth, query string, want outcome) {
	t.Helper()
	h := http.Header{}
	if origin != "" {
		h.Set("Origin", origin)
	}
	if auth != "" {
		h.Set("Authorization", auth)
	}
	p, resp, err := bridgetest.TryDial(t, b.WSURL+query, h)
	switch want {
	case badToken, forbidden:
		wantCode := http.StatusUnauthorized
		if want == forbidden {
			wantCode = http.StatusForbidden
		}
		if err == nil {
			t.Fatalf("upgrade accepted, want HTTP %d", wantCode)
		}
		if resp == nil || resp.StatusCode != wantCode {
			t.Fatalf("upgrade refused with %v (response %v), want HTTP %d", err, statusOf(resp), wantCode)
		}
		return
	}
	if err != nil {
		t.Fatalf("upgrade refused: %v (HTTP %v), want it accepted", err, statusOf(resp))
	}
	ping := p.Call(1, "bridge.ping", nil)
	switch want {
	case allowed:
		if ping["result"] == nil {
			t.Fatalf("authorized session: bridge.ping answered %v", ping)
		}
	case needsToken:
		// Every call but bridge.hello gets -32005, built-ins and routed calls alike.
		if c := errCode(t, ping); c != rpc.CodeUnauthorized {
			t.Fatalf("unauthorized session: bridge.ping answered %v, want %d", ping, rpc.CodeUnauthorized)
		}
		for i, method := range []string{"bridge.sessions", "bridge.subscribe", "bridge.context", "aftereffects.get_items", "nodot"} {
			r := p.Call(i+2, method, map[string]any{})
			if c := errCode(t, r); c != rpc.CodeUnauthorized {
				t.Fatalf("unauthorized session: %s answered %v, want %d", method, r, rpc.CodeUnauthorized)
			}
		}
	}
}

func statusOf(resp *http.Response) any {
	if resp == nil {
		return "none"
	}
	return resp.StatusCode
}

// TestUnauthorizedSessionHello: an upgrade without a token where one is
// needed is accepted; bridge.hello with the token admits the session, a
// hello with a wrong or no token gets -32005 and close 1008.
func TestUnauthorizedSessionHello(t *testing.T) {
	configs := []struct {
		name   string
		opts   web.Options
		origin string
	}{
		{"in force/local process", web.Options{Token: testToken, TokenInForce: true}, ""},
		{"null origin", web.Options{Token: testToken}, "null"},
		{"file origin", web.Options{Token: testToken}, "file://"},
	}
	for _, cfg := range configs {
		t.Run(cfg.name, func(t *testing.T) {
			b := startBridge(t, cfg.opts)
			h := http.Header{}
			if cfg.origin != "" {
				h.Set("Origin", cfg.origin)
			}

			t.Run("hello with the token admits", func(t *testing.T) {
				p := bridgetest.Dial(t, b.WSURL, h)
				if c := errCode(t, p.Call(1, "bridge.ping", nil)); c != rpc.CodeUnauthorized {
					t.Fatalf("before hello: ping code %d, want %d", c, rpc.CodeUnauthorized)
				}
				// A notification gets no reply, not even -32005, and does not close.
				p.Send(`{"jsonrpc":"2.0","method":"bridge.ping"}`)
				res := p.Hello(map[string]any{"app": "aftereffects", "instance": "ae-1", "methods": []string{"get_items"}, "token": testToken})
				if res["session"] == nil {
					t.Fatalf("hello result without a session: %v", res)
				}
				if r := p.Call(2, "bridge.ping", nil); r["result"] == nil {
					t.Fatalf("after hello: ping answered %v", r)
				}
				// The admitted session is a full peer: a local tool reaches it.
				local := startToolFor(t, b, cfg.opts)
				local.Send(`{"jsonrpc":"2.0","id":7,"method":"aftereffects.get_items"}`)
				m := p.Expect(5*time.Second, func(m map[string]any) bool { return m["method"] == "get_items" })
				p.Send(map[string]any{"jsonrpc": "2.0", "id": m["id"], "result": "items"})
				r := local.Expect(5*time.Second, func(m map[string]any) bool { return m["id"] == 7.0 })
				if r["result"] != "items" {
					t.Fatalf("routed call to the admitted session answered %v", r)
				}
			})

			for _, tok := range []struct {
				name   string
				params map[string]any
			}{
				{"wrong token", map[string]any{"app": "aftereffects", "token": "not-" + testToken}},
				{"no token", map[string]any{"app": "aftereffects"}},
			} {
				t.Run("hello with "+tok.name, func(t *testing.T) {
					p := bridgetest.Dial(t, b.WSURL, h)
					r := p.Call("h", "bridge.hello", tok.params)
					if c := errCode(t, r); c != rpc.CodeUnauthorized {
						t.Fatalf("hello answered %v, want %d", r, rpc.CodeUnauthorized)
					}
					if code := p.Closed(5 * time.Second); code != websocket.StatusPolicyViolation {
						t.Fatalf("closed with %d, want %d", code, websocket.StatusPolicyViolation)
					}
				})
			}
		})
	}
}

// startToolFor connects an authorized local tool peer to b.
func startToolFor(t *testing.T, b *bridgetest.Bridge, opts web.Options) *bridgetest.Peer {
	t.Helper()
	h := http.Header{}
	if opts.TokenInForce {
		h.Set("Authorization", "Bearer "+opts.Token)
	}
	return bridgetest.Dial(t, b.WSURL, h)
}

// TestHostHeader: every endpoint, the upgrade included, answers only to a
// loopback name or the configured address (no DNS rebinding).
func TestHostHeader(t *testing.T) {
	b := startBridge(t, web.Options{Token: testToken})
	port := b.URL[strings.LastIndexByte(b.URL, ':')+1:]
	// PORT stands for the bridge's port.
	hosts := []struct {
		host string
		ok   bool
	}{
		{"127.0.0.1:PORT", true},
		{"localhost:PORT", true},
		{"LOCALHOST:PORT", true},
		{"[::1]:PORT", true},
		{"127.0.0.2:PORT", true}, // all of 127/8 is loopback
		{"localhost", true},
		{"evil.example:8098", false},
		{"evil.example:PORT", false},
		{"evil.example", false},
		{"localhost.evil.example:PORT", false},
		{"127.0.0.1.evil.example:PORT", false},
		{"192.168.1.10:PORT", false},
		{"[::1].evil.example:PORT", false},
	}
	for _, hc := range hosts {
		t.Run(hc.host, func(t *testing.T) {
			hc.host = strings.Replace(hc.host, "PORT", port, 1)
			endpoints := []httpReq{
				{method: "GET", path: "/healthz"},
				{method: "GET", path: "/readyz"},
				{method: "GET", path: "/api/sessions"},
				{method: "GET", path: "/"},
				{method: "POST", path: "/rpc", ctype: "application/json", body: `{"jsonrpc":"2.0","id":1,"method":"bridge.ping"}`},
				{method: "GET", path: "/healthz", auth: "Bearer " + testToken}, // a token does not make up for the Host
				{method: "GET", path: "/api/sessions", origin: "null", auth: "Bearer " + testToken},
			}
			for _, q := range endpoints {
				q.host = hc.host
				resp, body := do(t, b, q)
				want := http.StatusOK
				if !hc.ok {
					want = http.StatusForbidden
				}
				if resp.StatusCode != want {
					t.Errorf("%s %s (Origin %q): status %d, want %d; body %q", q.method, q.path, q.origin, resp.StatusCode, want, body)
				}
			}

			// The upgrade.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			conn, resp, err := websocket.Dial(ctx, b.WSURL, &websocket.DialOptions{Host: hc.host})
			if hc.ok {
				if err != nil {
					t.Fatalf("upgrade with Host %q refused: %v (HTTP %v)", hc.host, err, statusOf(resp))
				}
				conn.CloseNow()
				return
			}
			if err == nil {
				conn.CloseNow()
				t.Fatalf("upgrade with Host %q accepted, want 403", hc.host)
			}
			if resp == nil || resp.StatusCode != http.StatusForbidden {
				t.Fatalf("upgrade with Host %q: %v (HTTP %v), want 403", hc.host, err, statusOf(resp))
			}
		})
	}
}

// TestSameOriginFollowsHost: the bridge's own origin is the one its pages
// were loaded from, whichever loopback name the browser used.
func TestSameOriginFollowsHost(t *testing.T) {
	b := startBridge(t, web.Options{Token: testToken})
	port := b.URL[strings.LastIndexByte(b.URL, ':')+1:]
	for _, host := range []string{"localhost:" + port, "127.0.0.1:" + port, "[::1]:" + port} {
		resp, body := do(t, b, httpReq{method: "GET", path: "/api/sessions", host: host, origin: "http://" + host})
		if resp.StatusCode != http.StatusOK {
			t.Errorf("Host %s, own origin: status %d; body %q", host, resp.StatusCode, body)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		conn, resp, err := websocket.Dial(ctx, b.WSURL, &websocket.DialOptions{Host: host, HTTPHeader: http.Header{"Origin": {"http://" + host}}})
		cancel()
		if err != nil {
			t.Errorf("Host %s, own origin: upgrade refused: %v (HTTP %v)", host, err, statusOf(resp))
			continue
		}
		conn.CloseNow()
	}
	// Another loopback name is another origin.
	resp, body := do(t, b, httpReq{method: "GET", path: "/api/sessions", host: "127.0.0.1:" + port, origin: "http://localhost:" + port})
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("origin localhost on Host 127.0.0.1: status %d, want 403; body %q", resp.StatusCode, body)
	}
}

// TestHostConfiguredAddress: a bridge bound to a named or wildcard address
// (where the token is in force) answers to that name besides loopback ones.
func TestHostConfiguredAddress(t *testing.T) {
	for _, tc := range []struct {
		addr  string
		hosts map[string]bool // Host header → admitted
	}{
		{"bridge.studio.lan:8098", map[string]bool{
			"bridge.studio.lan:8098": true,
			"BRIDGE.studio.lan":      true,
			"127.0.0.1:8098":         true,
			"evil.example:8098":      false,
			"studio.lan:8098":        false,
		}},
		{"10.1.2.3:8098", map[string]bool{
			"10.1.2.3:8098":     true,
			"localhost:8098":    true,
			"10.1.2.4:8098":     false,
			"evil.example:8098": false,
		}},
		// Bound to every interface the bridge cannot know its names; the
		// token, which is in force there, stands in for the Host check.
		{"0.0.0.0:8098", map[string]bool{"evil.example:8098": true, "10.1.2.3:8098": true}},
		{"[::]:8098", map[string]bool{"evil.example:8098": true}},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			// Served on a free loopback port, configured as bound to tc.addr.
			b := startBridge(t, web.Options{Addr: tc.addr, Token: testToken, TokenInForce: true})
			for host, ok := range tc.hosts {
				want := http.StatusForbidden
				if ok {
					want = http.StatusOK
				}
				for _, path := range []string{"/healthz", "/api/sessions"} {
					resp, body := do(t, b, httpReq{method: "GET", path: path, host: host, auth: "Bearer " + testToken})
					if resp.StatusCode != want {
						t.Errorf("Host %s, GET %s: status %d, want %d; body %q", host, path, resp.StatusCode, want, body)
					}
				}
			}
		})
	}
}
