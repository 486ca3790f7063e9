package main

import (
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dccbridge/dccbridge/internal/bridgetest"
)

// `bridge ensure` starts a bridge in the background and prints its URL;
// run again, it finds that one and says so; `bridge stop` stops it, and
// then finds nothing to stop.
func TestEnsureAndStop(t *testing.T) {
	port := freePort(t)
	addr := "127.0.0.1:" + port
	env, _ := childEnv(t, "BRIDGE_ADDR="+addr)
	t.Cleanup(func() { runCLI(t, env, "", "stop") })

	r := runCLI(t, env, "", "ensure")
	expectOut(t, r, "ws://"+addr+"/ws")
	if !strings.Contains(r.stderr, "started a bridge at "+addr) || !strings.Contains(r.stderr, "bridge.log") {
		t.Errorf("the first ensure should say it started one and where it logs: %v", r)
	}
	expectOut(t, runCLI(t, env, "", "health"), "ok")
	r = runCLI(t, env, "", "ensure")
	expectOut(t, r, "ws://"+addr+"/ws")
	if !strings.Contains(r.stderr, "already runs at "+addr) {
		t.Errorf("the second ensure should find the first bridge: %v", r)
	}

	expectOut(t, runCLI(t, env, "", "stop"), "stopped the bridge at "+addr)
	expect(t, runCLI(t, env, "", "health"), exitUnreachable)
	r = runCLI(t, env, "", "stop")
	expect(t, r, exitOK, "no bridge runs at "+addr)
}

// `bridge ensure` where another program holds the port says so, and
// starts nothing (exit 3).
func TestEnsurePortHeldByAnotherProgram(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("hello from a web app")) })}
	go srv.Serve(ln)
	defer srv.Close()
	env, _ := childEnv(t, "BRIDGE_ADDR="+ln.Addr().String())
	expect(t, runCLI(t, env, "", "ensure"), exitUnreachable, "held by another program", "--addr")
}

// `bridge stop` to a bridge with a token in force needs that token.
func TestStopNeedsTheToken(t *testing.T) {
	port := freePort(t)
	env, _ := childEnv(t, "BRIDGE_ADDR=127.0.0.1:"+port, "BRIDGE_TOKEN=the-bridges-own-token-123456")
	startServe(t, env, "127.0.0.1:"+port)
	wrong, _ := childEnv(t, "BRIDGE_ADDR=127.0.0.1:"+port, "BRIDGE_TOKEN=another-token-000000000000")
	expect(t, runCLI(t, wrong, "", "stop"), exitRefused, "refused to stop (HTTP 401)")
	expectOut(t, runCLI(t, env, "", "stop"), "stopped")
}

// `bridge context set` pushes the context to every aftereffects host that
// takes set_context and prints which took it; a host that fails makes it
// exit 1.
func TestContextSet(t *testing.T) {
	b := startBridge(t, nil)
	env, _ := childEnv(t, "BRIDGE_ADDR="+addrOf(b))
	hosts := map[string]*bridgetest.Peer{}
	for _, inst := range []string{"ae-1", "ae-2"} {
		p := bridgetest.Dial(t, b.WSURL, nil)
		p.Hello(map[string]any{"app": "aftereffects", "kind": "host", "instance": inst, "methods": []string{"set_context"}})
		hosts[inst] = p
	}
	answer := func(fail string) {
		for inst, h := range hosts {
			go func() {
				m := h.Expect(10*time.Second, func(m map[string]any) bool { return m["method"] == "set_context" })
				if p := m["params"].(map[string]any); p["folder"] != "/shots/sh010" {
					t.Errorf("%s got %v", inst, p)
				}
				if inst == fail {
					h.Send(map[string]any{"jsonrpc": "2.0", "id": m["id"], "error": map[string]any{"code": 1, "message": "no project P here"}})
					return
				}
				h.Send(map[string]any{"jsonrpc": "2.0", "id": m["id"], "result": true})
			}()
		}
	}
	answer("")
	r := runCLI(t, env, "", "context", "set", "--app", "aftereffects", "project=P", "folder=/shots/sh010", "task=comp")
	expect(t, r, exitOK)
	for _, want := range []string{"ae-1", "ae-2", "yes"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("context set printed %q, want %q in it", r.stdout, want)
		}
	}
	expectOut(t, runCLI(t, env, "", "context", "get", "--app", "aftereffects"), `"folder": "/shots/sh010"`)

	answer("ae-2")
	r = runCLI(t, env, "", "context", "set", "--app", "aftereffects", "project=P", "folder=/shots/sh010", "task=comp")
	expect(t, r, exitRPCError, "1 of 2 aftereffects hosts did not take the context")
	if !strings.Contains(r.stdout, "no project P here") {
		t.Errorf("the table should say why ae-2 did not take it: %v", r)
	}
}

// Three launchers running `bridge ensure` at once all end up with the one
// bridge that won, and say so (exit 0).
func TestEnsureConcurrently(t *testing.T) {
	addr := "127.0.0.1:" + freePort(t)
	env, _ := childEnv(t, "BRIDGE_ADDR="+addr)
	t.Cleanup(func() { runCLI(t, env, "", "stop") })
	results := make(chan result, 3)
	for range 3 {
		go func() { results <- runCLI(t, env, "", "ensure") }()
	}
	for range 3 {
		expectOut(t, <-results, "ws://"+addr+"/ws")
	}
}
