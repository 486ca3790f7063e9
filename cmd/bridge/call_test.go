package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/dccbridge/dccbridge/web"
)

func TestCallJSONParams(t *testing.T) {
	b := startBridge(t, nil)
	host := connectHost(t, b, "d-1", "echo")
	f, r := echoCall(t, host, "", "call", "demo.echo", `{"comps": true, "n": [1, 2.50, -3]}`, "--addr", addrOf(b))
	expect(t, r, exitOK)
	if f.Method != "echo" || string(f.Params) != `{"comps":true,"n":[1,2.50,-3]}` {
		t.Fatalf("host got method %q params %s", f.Method, f.Params)
	}
	want := "{\n  \"method\": \"echo\",\n  \"params\": {\n    \"comps\": true,\n    \"n\": [\n      1,\n      2.50,\n      -3\n    ]\n  }\n}\n"
	if r.stdout != want {
		t.Fatalf("stdout:\n%s\nwant:\n%s", r.stdout, want)
	}
}

func TestCallKeyValueParams(t *testing.T) {
	b := startBridge(t, nil)
	host := connectHost(t, b, "d-1", "echo")
	f, r := echoCall(t, host, "", "call", "demo.echo",
		"shot=sh010", "frame=1001", "render=true", "note=null", `opts={"a": [1]}`, "title=hello world", "empty=", `quoted="42"`, "expr=a=b",
		"--addr", addrOf(b))
	expect(t, r, exitOK)
	want := `{"shot":"sh010","frame":1001,"render":true,"note":null,"opts":{"a":[1]},"title":"hello world","empty":"","quoted":"42","expr":"a=b"}`
	if string(f.Params) != want {
		t.Fatalf("host got params %s, want %s", f.Params, want)
	}
	var out struct{ Params map[string]any }
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || out.Params["frame"] != 1001.0 {
		t.Fatalf("stdout is not the result: %v", r)
	}
}

func TestCallStdinParams(t *testing.T) {
	b := startBridge(t, nil)
	host := connectHost(t, b, "d-1", "echo")
	f, r := echoCall(t, host, "  [1, \"two\", {\"three\": 3}]\n", "call", "demo.echo", "-", "--addr", addrOf(b))
	expect(t, r, exitOK)
	if string(f.Params) != `[1,"two",{"three":3}]` {
		t.Fatalf("host got params %s", f.Params)
	}
}

func TestCallNoParams(t *testing.T) {
	b := startBridge(t, nil)
	host := connectHost(t, b, "d-1", "echo")
	p := startCLI(t, nil, "", "call", "--addr", addrOf(b), "demo.echo")
	raw := host.ReadRaw(10 * time.Second)
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	if _, has := m["params"]; has {
		t.Fatalf("a call without PARAMS sent params: %s", raw)
	}
	host.Send(`{"jsonrpc":"2.0","id":` + string(m["id"]) + `,"result":null}`)
	r := p.wait(t, 10*time.Second)
	expect(t, r, exitOK)
	if r.stdout != "null\n" {
		t.Fatalf("stdout %q, want null", r.stdout)
	}
}

// TestCallFlagsAnywhere gives the flags before the method, after it, and
// after the params; --target picks the instance that did not speak last.
func TestCallFlagsAnywhere(t *testing.T) {
	b := startBridge(t, nil)
	d1 := connectHost(t, b, "d-1", "echo")
	d2 := connectHost(t, b, "d-2", "echo")

	f, r := echoCall(t, d1, "", "call", "demo.echo", "--target", "d-1", "a=1", "--timeout", "30s", "-v", "--wait=2s", "--idempotent", "--addr", addrOf(b))
	expect(t, r, exitOK, "answered by demo instance d-1")
	if string(f.Params) != `{"a":1}` {
		t.Fatalf("params %s", f.Params)
	}
	if f.Meta.TimeoutMS <= 25000 || f.Meta.TimeoutMS > 30000 || f.Meta.Attempt != 1 {
		t.Fatalf("forwarded meta timeout_ms %d attempt %d; want about 30000, 1", f.Meta.TimeoutMS, f.Meta.Attempt)
	}

	f, r = echoCall(t, d2, "", "call", "--addr", addrOf(b), "--target=d-2", "-v", "demo.echo", `[true]`)
	expect(t, r, exitOK, "answered by demo instance d-2")
	if string(f.Params) != `[true]` {
		t.Fatalf("params %s", f.Params)
	}

	// "--" ends the flags: a key=value that looks like a flag is a param.
	f, r = echoCall(t, d1, "", "call", "--addr", addrOf(b), "--target", "d-1", "--", "demo.echo", "--x=1")
	expect(t, r, exitOK)
	if string(f.Params) != `{"--x":1}` {
		t.Fatalf("params %s", f.Params)
	}
}

func TestCallProgress(t *testing.T) {
	b := startBridge(t, nil)
	host := connectHost(t, b, "d-1", "render")
	p := startCLI(t, nil, "", "call", "demo.render", "--addr", addrOf(b))
	f := readCall(t, host)
	host.Send(`{"jsonrpc":"2.0","method":"$/progress","params":{"id":` + string(f.ID) + `,"value":{"percent":50}}}`)
	answer(host, f, `"done"`)
	r := p.wait(t, 10*time.Second)
	expect(t, r, exitOK, `progress: {"percent":50}`)
	if r.stdout != "\"done\"\n" {
		t.Fatalf("stdout %q", r.stdout)
	}
}

func TestCallRPCError(t *testing.T) {
	b := startBridge(t, nil)
	host := connectHost(t, b, "d-1", "open")

	p := startCLI(t, nil, "", "call", "demo.open", "path=/x.aep", "--addr", addrOf(b))
	f := readCall(t, host)
	host.Send(`{"jsonrpc":"2.0","id":` + string(f.ID) + `,"error":{"code":4242,"message":"no such project","data":{"path":"/x.aep"}}}`)
	r := p.wait(t, 10*time.Second)
	expect(t, r, exitRPCError, "error 4242: no such project\n{\n  \"path\": \"/x.aep\"\n}\n")
	if r.stdout != "" {
		t.Fatalf("stdout not empty: %v", r)
	}

	// The app is there but does not offer the method: -32601 at once, with data.
	r = runCLI(t, nil, "", "call", "demo.missing", "--addr", addrOf(b))
	expect(t, r, exitRPCError, "error -32601:", `"method": "demo.missing"`, "bridge sessions")

	// Nobody offers it within --wait: -32001.
	r = runCLI(t, nil, "", "call", "other.thing", "--wait", "50ms", "--addr", addrOf(b))
	expect(t, r, exitRPCError, "error -32001:", `"waited_ms": 50`)
}

func TestCallUsage(t *testing.T) {
	addr := "127.0.0.1:" + freePort(t) // nothing listens: a dial would exit 3, not 2
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no method", []string{"call", "--addr", addr}, "no METHOD"},
		{"only flags after", []string{"call", "--addr", addr, "--target", "x"}, "no METHOD"},
		{"bad JSON", []string{"call", "demo.x", `{"a":`, "--addr", addr}, "bad JSON"},
		{"bad JSON array", []string{"call", "demo.x", `[1,]`, "--addr", addr}, "bad JSON"},
		{"scalar params", []string{"call", "demo.x", "5", "--addr", addr}, "object or array"},
		{"word params", []string{"call", "demo.x", "hello", "--addr", addr}, "bad JSON"},
		{"JSON and pairs", []string{"call", "demo.x", `{"a":1}`, "b=2", "--addr", addr}, "not both"},
		{"pair without =", []string{"call", "demo.x", "a=1", "b", "--addr", addr}, `bad params "b"`},
		{"empty key", []string{"call", "demo.x", "=1", "--addr", addr}, `bad params "=1"`},
		{"duplicate key", []string{"call", "demo.x", "a=1", "a=2", "--addr", addr}, "given twice"},
		{"unknown flag", []string{"call", "--bogus", "demo.x", "--addr", addr}, "-bogus"},
		{"unknown flag after method", []string{"call", "demo.x", "--bogus", "--addr", addr}, "-bogus"},
		{"bad duration", []string{"call", "demo.x", "--timeout", "soon", "--addr", addr}, "-timeout"},
		{"bad wait", []string{"call", "demo.x", "--wait", "soon", "--addr", addr}, "-wait"},
		{"negative timeout", []string{"call", "demo.x", "--timeout", "-1s", "--addr", addr}, "negative"},
		{"bad address", []string{"call", "demo.x", "--addr", "no-port-here:"}, "bad address"},
		{"missing token file", []string{"call", "demo.x", "--addr", addr, "--token-file", "/nonexistent/token"}, "token file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, nil, "", tc.args...)
			expect(t, r, exitUsage, tc.want, "usage: bridge call")
		})
	}
	t.Run("empty stdin", func(t *testing.T) {
		expect(t, runCLI(t, nil, "", "call", "demo.x", "-", "--addr", addr), exitUsage, "no params on stdin")
	})
	t.Run("bad stdin", func(t *testing.T) {
		expect(t, runCLI(t, nil, "{oops", "call", "demo.x", "-", "--addr", addr), exitUsage, "bad JSON in stdin")
	})
}

func TestCallUnreachable(t *testing.T) {
	addr := "127.0.0.1:" + freePort(t)
	r := runCLI(t, nil, "", "call", "bridge.ping", "--addr", addr)
	expect(t, r, exitUnreachable, "cannot reach the bridge at "+addr, "connection refused", "`bridge serve`")

	// Something that is not a bridge answers there.
	other := httptest.NewServer(http.NotFoundHandler())
	defer other.Close()
	addr = strings.TrimPrefix(other.URL, "http://")
	r = runCLI(t, nil, "", "sessions", "--addr", addr)
	expect(t, r, exitUnreachable, "answered HTTP 404", "not a websocket upgrade", "something else listening on "+addr)
}

func TestCallToken(t *testing.T) {
	const token = "s3cret-token"
	b := startBridge(t, &web.Options{Token: token, TokenInForce: true})
	addr := addrOf(b)

	// A wrong token is exit 4, not 3 (unreachable: worth retrying), for
	// every client subcommand.
	r := runCLI(t, nil, "", "call", "bridge.ping", "--addr", addr, "--token", "wrong")
	expect(t, r, exitRefused, "refused the token", "HTTP 401", "--token")
	expect(t, runCLI(t, nil, "", "sessions", "--addr", addr, "--token", "wrong"), exitRefused, "refused the token")
	expect(t, runCLI(t, nil, "", "context", "get", "--app", "x", "--addr", addr, "--token", "wrong"), exitRefused, "refused the token")
	expect(t, runCLI(t, nil, "", "stop", "--addr", addr, "--token", "wrong"), exitRefused, "refused to stop")

	env, _ := childEnv(t, "BRIDGE_TOKEN="+token)
	r = runCLI(t, env, "", "call", "bridge.ping", "--addr", addr)
	expect(t, r, exitOK)
	if !strings.Contains(r.stdout, `"pong": true`) {
		t.Fatalf("stdout: %v", r)
	}

	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	expect(t, runCLI(t, nil, "", "call", "bridge.ping", "--token-file", file, "--addr", addr), exitOK)

	// No token where one is in force: the upgrade is accepted, the call
	// is refused with -32005.
	r = runCLI(t, nil, "", "call", "bridge.ping", "--addr", addr)
	expect(t, r, exitRefused, "error -32005", "hint: the bridge needs a token", "--token")
}

// TestCallDefaultTokenOfAnotherBridge: the default file's token is not the
// bridge's, and the bridge has no token in force: the client connects
// without one.
func TestCallDefaultTokenOfAnotherBridge(t *testing.T) {
	b := startBridge(t, &web.Options{Token: "the-bridges-own"})
	for _, tok := range []string{"someone-elses", "the-bridges-own"} {
		env, home := childEnv(t)
		path := filepath.Join(home, ".config", "dccbridge", "token")
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		expect(t, runCLI(t, env, "", "call", "bridge.ping", "--addr", addrOf(b)), exitOK)
	}
}

func TestCallHelp(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"call", "-h"}, []string{"Usage: bridge call [flags] METHOD [PARAMS]", "-target", "-timeout", "-wait", "-idempotent", "-addr", "-token-file", "key=value", "Exit codes"}},
		{[]string{"call", "demo.x", "--help"}, []string{"Usage: bridge call"}},
		{[]string{"sessions", "-h"}, []string{"Usage: bridge sessions", "-json", "-addr", "-token"}},
		{[]string{"token", "-h"}, []string{"Usage: bridge token", "-token-file", "0600"}},
		{[]string{"health", "-h"}, []string{"Usage: bridge health", "-addr", "-timeout", "/healthz"}},
	} {
		r := runCLI(t, nil, "", tc.args...)
		if r.code != exitOK || r.stderr != "" {
			t.Fatalf("%v: want exit 0 and the help on stdout only: %v", tc.args, r)
		}
		for _, w := range tc.want {
			if !strings.Contains(r.stdout, w) {
				t.Fatalf("%v: stdout lacks %q: %v", tc.args, w, r)
			}
		}
	}
}

func TestParseInterleaved(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		pos    []string
		target string
	}{
		{[]string{"m", "a=1"}, []string{"m", "a=1"}, ""},
		{[]string{"--target", "x", "m"}, []string{"m"}, "x"},
		{[]string{"m", "--target", "x", "a=1"}, []string{"m", "a=1"}, "x"},
		{[]string{"m", "a=1", "--target=x"}, []string{"m", "a=1"}, "x"},
		{[]string{"m", "-", "--target", "x"}, []string{"m", "-"}, "x"},
		{[]string{"--target", "x", "--", "m", "--target=y"}, []string{"m", "--target=y"}, "x"},
		{nil, nil, ""},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		target := fs.String("target", "", "")
		pos, err := parseInterleaved(fs, tc.args)
		if err != nil || !slices.Equal(pos, tc.pos) || *target != tc.target {
			t.Errorf("%q: got %q target %q err %v; want %q target %q", tc.args, pos, *target, err, tc.pos, tc.target)
		}
	}
}

func TestBuildParams(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		stdin string
		want  string // "" for no params; "!" for a usage error
	}{
		{nil, "", ""},
		{[]string{`{ "a" : 1 }`}, "", `{"a":1}`},
		{[]string{` [1, 2] `}, "", `[1,2]`},
		{[]string{`{"e":"x=y"}`}, "", `{"e":"x=y"}`},
		{[]string{"-"}, `{"s": "t"}`, `{"s":"t"}`},
		{[]string{"-"}, " \n", "!"},
		{[]string{"-"}, `"scalar"`, "!"},
		{[]string{"n=1", "f=1.5e3", "s=x", "b=false", "z=null", `o={"k":[1]}`, "a=[1, 2]"}, "", `{"n":1,"f":1.5e3,"s":"x","b":false,"z":null,"o":{"k":[1]},"a":[1,2]}`},
		{[]string{`u=ünï "q"`}, "", `{"u":"ünï \"q\""}`},
		{[]string{`k"ey=1`}, "", `{"k\"ey":1}`},
		{[]string{"true"}, "", "!"},
		{[]string{"null"}, "", "!"},
		{[]string{"{"}, "", "!"},
	} {
		got, err := buildParams(tc.args, strings.NewReader(tc.stdin))
		var ce *cliError
		switch {
		case tc.want == "!":
			if !errors.As(err, &ce) || ce.code != exitUsage {
				t.Errorf("%q: want a usage error, got %s, %v", tc.args, got, err)
			}
		case err != nil || string(got) != tc.want:
			t.Errorf("%q: got %s, %v; want %s", tc.args, got, err, tc.want)
		}
		if err == nil && got != nil && !json.Valid(got) {
			t.Errorf("%q: invalid JSON %s", tc.args, got)
		}
	}
}

// TestCallNoReply: a "bridge" that takes the call and then neither answers
// nor reads: the client gives up --timeout plus the grace later, exit 3,
// without waiting for a close handshake.
func TestCallNoReply(t *testing.T) {
	t.Parallel()
	stop := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer conn.CloseNow()
		_, _, _ = conn.Read(context.Background())
		<-stop
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(stop) })

	start := time.Now()
	r := runCLI(t, nil, "", "call", "demo.x", "--timeout", "200ms", "--addr", strings.TrimPrefix(srv.URL, "http://"))
	took := time.Since(start)
	expect(t, r, exitUnreachable, "no reply from the bridge", "within 3.2s")
	if took > replyGrace+2*time.Second {
		t.Fatalf("gave up after %v; want about 3.2 s", took)
	}
}

// On a terminal, a call with no reply after a second says on stderr what it
// waits for; -q says nothing. (The terminal is script(1)'s pty.)
func TestCallSaysWhatItWaitsFor(t *testing.T) {
	script, err := exec.LookPath("script")
	if err != nil {
		t.Skip("no script(1) to give the command a terminal")
	}
	b := startBridge(t, nil)
	env, _ := childEnv(t, "BRIDGE_ADDR="+addrOf(b))
	run := func(args string) string {
		cmd := exec.Command(script, "-qefc", bridgeBin+" call "+args, "/dev/null")
		cmd.Env = env
		out, _ := cmd.CombinedOutput()
		return string(out)
	}
	out := run("aftereffects.get_items --wait 2s")
	if !strings.Contains(out, "waiting for a session that offers aftereffects.get_items") || !strings.Contains(out, "2s") {
		t.Errorf("on a terminal, a call waiting for a panel says nothing of it:\n%s", out)
	}
	if out := run("aftereffects.get_items --wait 2s -q"); strings.Contains(out, "waiting for") {
		t.Errorf("-q still says it waits:\n%s", out)
	}
}
