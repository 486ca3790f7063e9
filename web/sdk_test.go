package web_test

import (
	"bytes"
	"io/fs"
	"net/http"
	"strings"
	"testing"

	sdk "github.com/dccbridge/dccbridge/clients/js"
	"github.com/dccbridge/dccbridge/web"
)

// TestSDK serves the panel SDK under /sdk/ to any origin the Origin check
// admits, without a token even where one is in force, with the bytes of
// clients/js and CORS open so a file:// page can load the module.
func TestSDK(t *testing.T) {
	for _, inForce := range []bool{false, true} {
		b := startBridge(t, web.Options{Token: testToken, TokenInForce: inForce})
		for _, file := range []struct{ name, ctype string }{
			{"bridge.js", "text/javascript; charset=utf-8"},
			{"bridge.classic.js", "text/javascript; charset=utf-8"},
			{"bridge.d.ts", "text/plain; charset=utf-8"},
		} {
			want, err := fs.ReadFile(sdk.Files, file.name)
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasSuffix(file.name, ".js") {
				// Loaded from this bridge, the SDK connects to it by default.
				if !bytes.Contains(want, []byte("const DEFAULT_URL = 'ws://127.0.0.1:8098/ws';")) {
					t.Fatalf("clients/js/%s no longer has the DEFAULT_URL line the bridge rewrites (web/sdk.go)", file.name)
				}
				want = bytes.Replace(want, []byte("const DEFAULT_URL = 'ws://127.0.0.1:8098/ws';"),
					[]byte(`const DEFAULT_URL = "ws://`+strings.TrimPrefix(b.URL, "http://")+`/ws"; // the bridge that served this file`), 1)
			}
			for _, origin := range []string{"", "null", "file://", selfOrigin} {
				o := origin
				if o == selfOrigin {
					o = b.URL
				}
				resp, body := do(t, b, httpReq{method: http.MethodGet, path: "/sdk/" + file.name, origin: o})
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("in force %v, GET /sdk/%s, Origin %q: HTTP %d %s", inForce, file.name, origin, resp.StatusCode, body)
				}
				if got := resp.Header.Get("Content-Type"); got != file.ctype {
					t.Errorf("GET /sdk/%s: Content-Type %q, want %q", file.name, got, file.ctype)
				}
				if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "*" {
					t.Errorf("GET /sdk/%s: Access-Control-Allow-Origin %q, want *", file.name, got)
				}
				if string(body) != string(want) {
					t.Errorf("GET /sdk/%s: the body is not clients/js/%s with this bridge's URL as the default (%d bytes, want %d)", file.name, file.name, len(body), len(want))
				}
			}
		}
		// HEAD and conditional requests come with ServeContent.
		resp, _ := do(t, b, httpReq{method: http.MethodHead, path: "/sdk/bridge.js"})
		if resp.StatusCode != http.StatusOK || resp.Header.Get("ETag") == "" {
			t.Errorf("HEAD /sdk/bridge.js: HTTP %d, ETag %q", resp.StatusCode, resp.Header.Get("ETag"))
		}
	}

	b := startBridge(t, web.Options{Token: testToken})
	// GET /sdk/ lists the files, each a link.
	resp, body := do(t, b, httpReq{method: http.MethodGet, path: "/sdk/"})
	for _, name := range []string{`href="bridge.js"`, `href="bridge.classic.js"`, `href="bridge.d.ts"`, "classic"} {
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), name) {
			t.Errorf("GET /sdk/: HTTP %d, want a list with %s:\n%s", resp.StatusCode, name, body)
		}
	}
	for _, q := range []struct {
		req  httpReq
		want int
	}{
		{httpReq{method: http.MethodGet, path: "/sdk/nope.js"}, http.StatusNotFound},
		{httpReq{method: http.MethodGet, path: "/sdk/internal/classic/classic.go"}, http.StatusNotFound},
		{httpReq{method: http.MethodGet, path: "/sdk/embed.go"}, http.StatusNotFound},
		{httpReq{method: http.MethodPost, path: "/sdk/bridge.js"}, http.StatusMethodNotAllowed},
		// The Host and Origin checks hold here as everywhere.
		{httpReq{method: http.MethodGet, path: "/sdk/bridge.js", origin: "https://evil.example"}, http.StatusForbidden},
		{httpReq{method: http.MethodGet, path: "/sdk/bridge.js", host: "evil.example"}, http.StatusForbidden},
	} {
		resp, body := do(t, b, q.req)
		if resp.StatusCode != q.want {
			t.Errorf("%s %s (Origin %q, Host %q): HTTP %d, want %d (%s)", q.req.method, q.req.path, q.req.origin, q.req.host, resp.StatusCode, q.want, body)
		}
		if q.want != http.StatusOK && resp.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("%s %s: a refusal carries Access-Control-Allow-Origin", q.req.method, q.req.path)
		}
	}
}
