package js_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/dccbridge/dccbridge/clients/js/internal/classic"
)

// TestClassicBuildUpToDate fails when bridge.classic.js is not what
// `go generate` (gen.go) makes from bridge.js, so the two never drift.
func TestClassicBuildUpToDate(t *testing.T) {
	src, err := os.ReadFile("bridge.js")
	if err != nil {
		t.Fatal(err)
	}
	want, err := classic.Build(src)
	if err != nil {
		t.Fatalf("bridge.js cannot be turned into a classic script: %v", err)
	}
	got, err := os.ReadFile("bridge.classic.js")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Fatal("bridge.classic.js is not what gen.go makes from bridge.js: run `go generate ./clients/js/`")
	}
}

// browserTests reports whether BRIDGE_BROWSER_TESTS asks for the tests that
// need node, npm and chromium (then a missing tool fails them).
func browserTests() bool { return os.Getenv("BRIDGE_BROWSER_TESTS") != "" }

var acornOnce struct {
	sync.Once
	err error
	out string
}

// needNode returns node's path after making sure acorn is installed in
// node_modules (npm ci from package-lock.json); it skips the test when node
// or npm is missing, unless BRIDGE_BROWSER_TESTS is set.
func needNode(t *testing.T) string {
	t.Helper()
	node, errNode := exec.LookPath("node")
	npm, errNpm := exec.LookPath("npm")
	if errNode != nil || errNpm != nil {
		if browserTests() {
			t.Fatalf("BRIDGE_BROWSER_TESTS is set but node or npm is missing (node: %v, npm: %v)", errNode, errNpm)
		}
		t.Skip("node or npm is missing (set BRIDGE_BROWSER_TESTS=1 to make that a failure)")
	}
	acornOnce.Do(func() {
		if _, err := os.Stat(filepath.Join("node_modules", "acorn", "package.json")); err == nil {
			return
		}
		cmd := exec.Command(npm, "ci", "--no-audit", "--no-fund", "--loglevel=error")
		out, err := cmd.CombinedOutput()
		acornOnce.err, acornOnce.out = err, string(out)
	})
	if acornOnce.err != nil {
		if !browserTests() { // offline, say: a check this machine cannot run is skipped, and says why
			t.Skipf("npm ci in clients/js failed (offline?), so the syntax check cannot run (set BRIDGE_BROWSER_TESTS=1 to make that a failure): %v\n%s", acornOnce.err, acornOnce.out)
		}
		t.Fatalf("npm ci in clients/js: %v\n%s", acornOnce.err, acornOnce.out)
	}
	return node
}

// TestSyntaxES2017 parses bridge.js (module) and bridge.classic.js (script)
// with acorn at ecmaVersion 2017 and fails on names Chromium 61 lacks.
func TestSyntaxES2017(t *testing.T) {
	node := needNode(t)
	out, err := exec.Command(node, "check.js").CombinedOutput()
	if err != nil {
		t.Fatalf("node check.js: %v\n%s", err, out)
	}
}

// TestSyntaxCheckCatches proves the checker refuses what Chromium 61 cannot
// run, and accepts ES2017.
func TestSyntaxCheckCatches(t *testing.T) {
	node := needNode(t)
	cases := []struct {
		src, sourceType string
		ok              bool
	}{
		{"let x = 1; async function f() { await x; }", "module", true},
		{"export function f() { return 1; }", "module", true},
		{"var a = x ** 2; [1].includes(1); Object.entries({});", "script", true},
		{"a?.b", "module", false},
		{"a ?? b", "module", false},
		{"class A { x = 1 }", "module", false},
		{"class A { #x() {} }", "module", false},
		{"const {a, ...rest} = o;", "module", false},
		{"async function* g() {}", "module", false},
		{"try { f() } catch { }", "module", false},
		{"/(?<n>a)/", "module", false},
		{"p.finally(f)", "module", false},
		{"p['finally'](f)", "module", false},
		{"crypto.randomUUID()", "module", false},
		{"new AbortController()", "module", false},
		{"globalThis.x = 1", "module", false},
		{"var g = globalThis;", "script", false},
		{"window.globalThis", "script", false},
		{"Promise.allSettled([])", "module", false},
		{"queueMicrotask(f)", "module", false},
		{"export function f() {}", "script", false},
		{"import x from 'y';", "script", false},
	}
	for _, c := range cases {
		cmd := exec.Command(node, "check.js", "--stdin", c.sourceType)
		cmd.Stdin = strings.NewReader(c.src)
		out, err := cmd.CombinedOutput()
		if (err == nil) != c.ok {
			t.Errorf("check %q as %s: accepted %v, want %v\n%s", c.src, c.sourceType, err == nil, c.ok, out)
		}
	}
}

// TestSDKUnit runs the SDK's unit tests (sdk.test.js: a fake WebSocket
// drives hello, re-registering, the result cache, calls across reconnects,
// events, cancel and progress) with node's test runner.
func TestSDKUnit(t *testing.T) {
	node := needNode(t)
	cmd := exec.Command(node, "--test", "--test-reporter=tap", "sdk.test.js")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node --test sdk.test.js: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "# fail 0") {
		t.Fatalf("node --test sdk.test.js did not report its results:\n%s", out)
	}
}
