package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/dccbridge/dccbridge/internal/bridgetest"
	"github.com/dccbridge/dccbridge/session"
	"github.com/dccbridge/dccbridge/web"
)

// bridgeBin is the bridge binary TestMain builds; the tests run it as a
// real process. Set once, before any test runs.
var bridgeBin string

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "bridge-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "temp dir:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	bridgeBin = filepath.Join(dir, "bridge")
	if runtime.GOOS == "windows" {
		bridgeBin += ".exe"
	}
	if out, err := exec.Command("go", "build", "-o", bridgeBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// childEnv returns the environment for a child process: this process's,
// without the bridge's own variables, with HOME and XDG_CONFIG_HOME in a
// fresh temp dir (so no test touches the real config dir), then extra
// ("NAME=value") on top. It also returns that HOME.
func childEnv(t *testing.T, extra ...string) (env []string, home string) {
	t.Helper()
	home = t.TempDir()
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(name, "BRIDGE_"), name == "WEBSOCKET_URL", name == "HOME", name == "XDG_CONFIG_HOME", name == "APPDATA":
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "HOME="+home, "XDG_CONFIG_HOME="+filepath.Join(home, ".config"), "APPDATA="+filepath.Join(home, "AppData"))
	return append(env, extra...), home
}

// proc is a running bridge process.
type proc struct {
	cmd    *exec.Cmd
	stdout *bridgetest.SyncBuffer
	stderr *bridgetest.SyncBuffer
	done   chan struct{} // closed when it has exited and code is set
	code   int
}

// result is what a finished process said and its exit code.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\n--- stdout:\n%s--- stderr:\n%s", r.code, r.stdout, r.stderr)
}

// startCLI runs the bridge binary with args in env (nil: childEnv's), stdin
// as its standard input. The process is killed at cleanup if still running.
func startCLI(t *testing.T, env []string, stdin string, args ...string) *proc {
	t.Helper()
	if env == nil {
		env, _ = childEnv(t)
	}
	p := &proc{cmd: exec.Command(bridgeBin, args...), stdout: &bridgetest.SyncBuffer{}, stderr: &bridgetest.SyncBuffer{}, done: make(chan struct{})}
	p.cmd.Env = env
	p.cmd.Stdin = strings.NewReader(stdin)
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start bridge %v: %v", args, err)
	}
	go func() {
		err := p.cmd.Wait()
		p.code = p.cmd.ProcessState.ExitCode()
		if err != nil && p.code == 0 {
			p.code = -1
		}
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// wait waits up to timeout for p to exit, killing it and failing the test
// if it does not.
func (p *proc) wait(t *testing.T, timeout time.Duration) result {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Fatalf("bridge %v still running after %v; killed\n--- stdout:\n%s--- stderr:\n%s", p.cmd.Args[1:], timeout, p.stdout, p.stderr)
	}
	return result{stdout: p.stdout.String(), stderr: p.stderr.String(), code: p.code}
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// runCLI runs the bridge binary to completion (at most 20 s).
func runCLI(t *testing.T, env []string, stdin string, args ...string) result {
	t.Helper()
	return startCLI(t, env, stdin, args...).wait(t, 20*time.Second)
}

// expect fails the test unless r exited with code and its stderr contains
// every one of want.
func expect(t *testing.T, r result, code int, want ...string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("want exit %d, got %v", code, r)
	}
	for _, w := range want {
		if !strings.Contains(r.stderr, w) {
			t.Fatalf("stderr lacks %q: %v", w, r)
		}
	}
}

// freePort returns a 127.0.0.1 port that nothing listened on a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close()
	return port
}

// startBridge starts an in-process bridge on 127.0.0.1 that logs nothing.
// wo may be nil.
func startBridge(t *testing.T, wo *web.Options) *bridgetest.Bridge {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	if wo == nil {
		wo = &web.Options{}
	}
	wo.Logger = quiet
	return bridgetest.Start(t, &session.Options{Logger: quiet}, wo)
}

// addrOf is the host:port of an in-process bridge.
func addrOf(b *bridgetest.Bridge) string { return strings.TrimPrefix(b.URL, "http://") }

// connectHost connects a host peer of app "demo" that says hello offering
// methods.
func connectHost(t *testing.T, b *bridgetest.Bridge, instance string, methods ...string) *bridgetest.Peer {
	t.Helper()
	p := bridgetest.Dial(t, b.WSURL, nil)
	p.Hello(map[string]any{"app": "demo", "kind": "host", "instance": instance, "label": "Demo panel", "version": "1.2.3", "methods": methods})
	return p
}

// forwarded is a call as the bridge forwards it to a host.
type forwarded struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
	Meta   struct {
		Caller    map[string]any `json:"caller"`
		TimeoutMS int64          `json:"timeout_ms"`
		Attempt   int            `json:"attempt"`
	} `json:"meta"`
}

// readCall reads the next message of host, which must be a forwarded call.
func readCall(t *testing.T, host *bridgetest.Peer) forwarded {
	t.Helper()
	raw := host.ReadRaw(10 * time.Second)
	var f forwarded
	if err := json.Unmarshal(raw, &f); err != nil || f.Method == "" || len(f.ID) == 0 {
		t.Fatalf("host got %s, not a forwarded call", raw)
	}
	return f
}

// answer replies to a forwarded call with the JSON text of a result.
func answer(host *bridgetest.Peer, f forwarded, resultJSON string) {
	host.Send(`{"jsonrpc":"2.0","id":` + string(f.ID) + `,"result":` + resultJSON + `}`)
}

// echoCall runs `bridge call` with args against b while host answers the
// call with {"method":…,"params":…}; it returns the forwarded call and how
// the process ended.
func echoCall(t *testing.T, host *bridgetest.Peer, stdin string, args ...string) (forwarded, result) {
	t.Helper()
	p := startCLI(t, nil, stdin, args...)
	f := readCall(t, host)
	answer(host, f, `{"method":`+jsonString(f.Method)+`,"params":`+string(f.Params)+`}`)
	return f, p.wait(t, 10*time.Second)
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// waitHealthy polls http://addr/healthz until it answers 200, failing the
// test if p exits first or 10 s pass.
func waitHealthy(t *testing.T, p *proc, addr string) {
	t.Helper()
	client := &http.Client{Timeout: time.Second}
	for range 200 {
		if p.exited() {
			t.Fatalf("bridge exited before answering /healthz: %v", p.wait(t, time.Second))
		}
		resp, err := client.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("bridge at %s not healthy after 10 s; stderr:\n%s", addr, p.stderr)
}
