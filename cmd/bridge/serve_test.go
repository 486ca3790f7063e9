package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// startServe runs `bridge serve` with args and waits until it answers
// /healthz at addr.
func startServe(t *testing.T, env []string, addr string, args ...string) *proc {
	t.Helper()
	p := startCLI(t, env, "", append([]string{"serve"}, args...)...)
	waitHealthy(t, p, addr)
	return p
}

func TestServeRefusesWildcardWithoutToken(t *testing.T) {
	r := runCLI(t, nil, "", "serve", "--addr", "0.0.0.0:"+freePort(t))
	if r.code == exitOK {
		t.Fatalf("serve on 0.0.0.0 without a token started: %v", r)
	}
	expect(t, r, r.code, "refusing to listen on 0.0.0.0", "without a token", "--token")
}

// TestServePortInUse: serve on a port something already listens on exits 1
// with the hint (on every OS: isAddrInUse knows each one's errno).
func TestServePortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().String()
	r := runCLI(t, nil, "", "serve", "--addr", addr)
	if r.code == exitOK {
		t.Fatalf("serve on a port in use: %v", r)
	}
	expect(t, r, exitRPCError, addr+" is in use: is another bridge running?", "bridge health --addr "+addr, "--addr picks another port")
}

// TestServeEmptyHostIsLoopback: --addr :PORT listens on 127.0.0.1 only.
func TestServeEmptyHostIsLoopback(t *testing.T) {
	port := freePort(t)
	p := startServe(t, nil, "127.0.0.1:"+port, "--addr", ":"+port)
	if s := p.stderr.String(); !strings.Contains(s, "url=ws://127.0.0.1:"+port+"/ws") {
		t.Fatalf("the log does not give the loopback URL:\n%s", s)
	}
	ip := nonLoopbackIP(t)
	if ip == "" {
		t.Log("no non-loopback address on this machine: not checking that one is refused")
		return
	}
	c, err := net.DialTimeout("tcp", net.JoinHostPort(ip, port), time.Second)
	if err == nil {
		c.Close()
		t.Fatalf("--addr :%s is reachable on %s, not only on loopback", port, ip)
	}
}

func nonLoopbackIP(t *testing.T) string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Logf("interface addresses: %v", err)
		return ""
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
			return n.IP.String()
		}
	}
	return ""
}

// TestServeWebsocketURL: with BRIDGE_ADDR unset, serve and the clients take
// the address from WEBSOCKET_URL (as AYON sets it); BRIDGE_ADDR wins over it.
func TestServeWebsocketURL(t *testing.T) {
	port := freePort(t)
	env, _ := childEnv(t, "WEBSOCKET_URL=ws://localhost:"+port+"/ws/")
	startServe(t, env, "127.0.0.1:"+port)
	expectOut(t, runCLI(t, env, "", "health"), "ok")
	expectOut(t, runCLI(t, env, "", "call", "bridge.ping"), `"pong": true`)

	env, _ = childEnv(t, "WEBSOCKET_URL=ws://localhost:"+port+"/ws/", "BRIDGE_ADDR=127.0.0.1:"+freePort(t))
	expect(t, runCLI(t, env, "", "health"), exitUnreachable)
}

// TestServeGracefulShutdown: SIGTERM while a host that never reads again
// has a call in flight: the caller gets -32006, and the bridge exits 0
// within 5 s although the host never answers the close.
func TestServeGracefulShutdown(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no SIGTERM on Windows")
	}
	addr := "127.0.0.1:" + freePort(t)
	serve := startServe(t, nil, addr, "--addr", addr)

	// The host says hello, reads the reply, and never reads again: it
	// will not see the forwarded call, nor answer pings or the close.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	host, _, err := websocket.Dial(ctx, "ws://"+addr+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer host.CloseNow()
	host.SetReadLimit(1 << 20)
	hello := `{"jsonrpc":"2.0","id":1,"method":"bridge.hello","params":{"app":"demo","kind":"host","instance":"stuck-1","methods":["slow"]}}`
	if err := host.Write(ctx, websocket.MessageText, []byte(hello)); err != nil {
		t.Fatal(err)
	}
	_, reply, err := host.Read(ctx)
	if err != nil || !strings.Contains(string(reply), `"result"`) {
		t.Fatalf("hello: %s, %v", reply, err)
	}

	tool := startCLI(t, nil, "", "call", "demo.slow", "n=1", "--addr", addr)
	waitInFlight(t, addr, "stuck-1", 1)

	start := time.Now()
	if err := serve.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	r := serve.wait(t, 10*time.Second)
	took := time.Since(start)
	if r.code != exitOK || took > 5*time.Second {
		t.Fatalf("after SIGTERM: exit %d after %v; want 0 within 5 s\n%v", r.code, took, r)
	}
	if !strings.Contains(r.stderr, "msg=stopped") {
		t.Fatalf("the log does not say stopped:\n%s", r.stderr)
	}
	// The stuck host is dropped after the 3 s close budget, not left to
	// serve.go's backstop at the end of the whole shutdown budget.
	if strings.Contains(r.stderr, "budget spent") {
		t.Fatalf("the stuck session was not dropped after the close budget:\n%s", r.stderr)
	}
	tr := tool.wait(t, 5*time.Second)
	expect(t, tr, exitRPCError, "error -32006", `"instance": "stuck-1"`)
}

// waitInFlight polls /api/sessions until instance has n calls in flight.
func waitInFlight(t *testing.T, addr, instance string, n int) {
	t.Helper()
	client := &http.Client{Timeout: time.Second}
	var last string
	for range 200 {
		resp, err := client.Get("http://" + addr + "/api/sessions")
		if err == nil {
			var list []struct {
				Instance string `json:"instance"`
				InFlight int    `json:"in_flight"`
			}
			err = json.NewDecoder(resp.Body).Decode(&list)
			resp.Body.Close()
			for _, s := range list {
				if s.Instance == instance && s.InFlight == n {
					return
				}
			}
			last = fmt.Sprintf("sessions: %+v", list)
		}
		if err != nil {
			last = err.Error()
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s never had %d calls in flight (%s)", instance, n, last)
}

// A bridge reachable from other machines refuses a short token, says why
// and how to make a good one; `bridge token --new` makes one.
func TestServeRefusesShortTokenBeyondLoopback(t *testing.T) {
	r := runCLI(t, nil, "", "serve", "--addr", "0.0.0.0:"+freePort(t), "--token", "abc")
	expect(t, r, exitRPCError, "a token of 3 characters", "use 16 or more", "bridge token --new")
	r = runCLI(t, nil, "", "token", "--new")
	expect(t, r, exitOK)
	if tok := strings.TrimSpace(r.stdout); len(tok) != 32 || strings.Trim(tok, "0123456789abcdef") != "" {
		t.Errorf("bridge token --new printed %q, want 32 hex digits", r.stdout)
	}
}

// `bridge serve -h` reads like the other subcommands' help (usage, what it
// does, an example, the flags, on stdout), and its token flags do not name
// the default token file as if it put a token in force.
func TestServeHelp(t *testing.T) {
	r := runCLI(t, nil, "", "serve", "-h")
	expectOut(t, r, "Usage: bridge serve [flags]")
	for _, want := range []string{"Example:", "bridge serve --listen aftereffects=127.0.0.1:8097", "Flags (before or after the arguments):", "-token-file file"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("bridge serve -h lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "default "+filepath.Join("dccbridge", "token")) || strings.Contains(r.stdout, "dccbridge/token)") {
		t.Errorf("bridge serve -h names the default token file for --token-file:\n%s", r.stdout)
	}
}
