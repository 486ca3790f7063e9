package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/dccbridge/dccbridge/web"
)

func TestHealth(t *testing.T) {
	b := startBridge(t, nil)
	if r := runCLI(t, nil, "", "health", "--addr", addrOf(b)); r.code != exitOK || r.stdout != "ok\n" {
		t.Fatalf("healthy bridge: %v", r)
	}
	// BRIDGE_ADDR finds it too, and no token is needed even where one is in force.
	tb := startBridge(t, &web.Options{Token: "t0k", TokenInForce: true})
	env, _ := childEnv(t, "BRIDGE_ADDR="+addrOf(tb))
	if r := runCLI(t, env, "", "health"); r.code != exitOK {
		t.Fatalf("health via BRIDGE_ADDR: %v", r)
	}

	expect(t, runCLI(t, nil, "", "health", "--addr", "127.0.0.1:"+freePort(t)), exitUnreachable, "connection refused", "bridge serve")

	sick := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
	}))
	defer sick.Close()
	expect(t, runCLI(t, nil, "", "health", "--addr", strings.TrimPrefix(sick.URL, "http://")), exitRPCError, "HTTP 503", "shutting down")

	expect(t, runCLI(t, nil, "", "health", "--timeout", "0"), exitUsage, "--timeout must be positive")
}
