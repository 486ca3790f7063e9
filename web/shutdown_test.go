package web_test

import (
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dccbridge/dccbridge/internal/bridgetest"
	"github.com/dccbridge/dccbridge/web"
)

// POST /admin/shutdown (bridge stop) stops the bridge only for a request
// with its token and no Origin: a web page, even a null-origin one the
// bridge admits with --allow-origin null, cannot; nor can a local program
// without the token, even where the token is not in force.
func TestAdminShutdown(t *testing.T) {
	var stopped atomic.Int32
	b := bridgetest.Start(t, nil, &web.Options{Token: testToken, AllowOrigins: []string{"null"}, Shutdown: func() { stopped.Add(1) }})
	for _, q := range []struct {
		req  httpReq
		want int
	}{
		{httpReq{method: http.MethodPost, path: "/admin/shutdown", origin: "null", auth: "Bearer " + testToken}, http.StatusForbidden},
		{httpReq{method: http.MethodPost, path: "/admin/shutdown", origin: b.URL, auth: "Bearer " + testToken}, http.StatusForbidden},
		{httpReq{method: http.MethodPost, path: "/admin/shutdown"}, http.StatusUnauthorized},
		{httpReq{method: http.MethodPost, path: "/admin/shutdown", auth: "Bearer wrong"}, http.StatusUnauthorized},
	} {
		if resp, body := do(t, b, q.req); resp.StatusCode != q.want {
			t.Errorf("%s %s, Origin %q, %q: HTTP %d %s, want %d", q.req.method, q.req.path, q.req.origin, q.req.auth, resp.StatusCode, body, q.want)
		}
	}
	if n := stopped.Load(); n != 0 {
		t.Fatalf("the bridge was asked to stop %d times by refused requests", n)
	}
	if resp, body := do(t, b, httpReq{method: http.MethodPost, path: "/admin/shutdown", auth: "Bearer " + testToken}); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("bridge stop's request: HTTP %d %s, want 202", resp.StatusCode, body)
	}
	for range 100 {
		if stopped.Load() == 1 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("the shutdown was not started")
}
