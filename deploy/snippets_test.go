package deploy

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dccbridge/dccbridge/internal/bridgetest"
	"github.com/dccbridge/dccbridge/internal/browsertest"
	"github.com/dccbridge/dccbridge/web"
)

// The snippets of README.md run as written, against a bridge the test
// starts: the bridge's address replaces 127.0.0.1:8098, nothing else.

// snippets returns README.md's fenced blocks of lang under the section
// heading.
func snippets(t *testing.T, file, heading, lang string) []string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	i := strings.Index(text, "\n## "+heading+"\n")
	if i < 0 {
		t.Fatalf("%s has no section %q", file, heading)
	}
	text = text[i+1:]
	if j := strings.Index(text[3:], "\n## "); j >= 0 {
		text = text[:j+3]
	}
	var out []string
	for _, m := range regexp.MustCompile("(?s)```"+lang+"\n(.*?)```").FindAllStringSubmatch(text, -1) {
		out = append(out, m[1])
	}
	if len(out) == 0 {
		t.Fatalf("%s, %q: no %s snippet", file, heading, lang)
	}
	return out
}

// The panel snippet, opened as a file:// page (a CEP panel) with the
// bridge's token in its URL: both panels connect, and the page throws
// nothing (Chromium 61 would throw on a top-level await, and on an
// undefined token).
func TestREADMEPanelSnippetRuns(t *testing.T) {
	for _, file := range []string{"../README.md", "../clients/js/README.md"} {
		name := "README"
		if strings.Contains(file, "clients") {
			name = "clients-js-README"
		}
		t.Run(name, func(t *testing.T) {
			heading := "A panel (JavaScript SDK)"
			if strings.Contains(file, "clients") {
				heading = ""
			}
			var html string
			if heading == "" {
				b, _ := os.ReadFile(file)
				html = regexp.MustCompile("(?s)```html\n(.*?)```").FindStringSubmatch(string(b))[1]
			} else {
				html = snippets(t, file, heading, "html")[0]
			}
			const token = "snippet-token-0123456789"
			b := bridgetest.Start(t, nil, &web.Options{Token: token})
			page := filepath.Join(t.TempDir(), "panel.html")
			html = strings.ReplaceAll(html, "127.0.0.1:8098", strings.TrimPrefix(b.URL, "http://"))
			if err := os.WriteFile(page, []byte("<!doctype html>\n"+html), 0o644); err != nil {
				t.Fatal(err)
			}
			browsertest.Chromium(t)
			br := browsertest.Start(t)
			br.Open(t, "file://"+page+"?token="+token)
			apps := func() map[string]bool {
				m := map[string]bool{}
				for _, s := range b.Router.Sessions() {
					m[s.App] = true
				}
				return m
			}
			for deadline := time.Now().Add(15 * time.Second); !(apps()["aftereffects"] && apps()["photoshop"]); time.Sleep(50 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("the snippet's panels did not connect: sessions %v; page exceptions %v", apps(), br.Exceptions())
				}
			}
			if ex := br.Exceptions(); len(ex) > 0 {
				t.Errorf("the snippet threw: %v", ex)
			}
		})
	}
}

// The Go tool snippet: it says hello, calls aftereffects.get_items on
// instance ae-7f3a, and prints the items.
func TestREADMEGoSnippetRuns(t *testing.T) {
	src := snippets(t, "../README.md", "A tool (Go, and the `bridge call` CLI)", "go")[0]
	b := bridgetest.Start(t, nil, nil)
	src = strings.ReplaceAll(src, "127.0.0.1:8098", strings.TrimPrefix(b.URL, "http://"))
	host := bridgetest.Dial(t, b.WSURL, nil)
	host.Hello(map[string]any{"app": "aftereffects", "kind": "host", "instance": "ae-7f3a", "methods": []string{"get_items"}})
	go func() {
		m := host.Expect(60*time.Second, func(m map[string]any) bool { return m["method"] == "get_items" })
		host.Send(map[string]any{"jsonrpc": "2.0", "id": m["id"], "result": map[string]any{"items": []string{"Comp 1", "Comp 2"}}})
	}()
	dir, err := os.MkdirTemp("..", "_snippet")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "run", "./"+filepath.Base(dir))
	cmd.Dir = ".." // the module's root: the snippet uses its dependencies
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "[Comp 1 Comp 2]" {
		t.Fatalf("go run of the README's Go snippet: %v\n%s", err, out)
	}
}

// The Python snippets: the standard-library one prints the pong and the
// -32001 the README shows; the SDK's tool and host snippets run as written
// against a bridge with an After Effects host.
func TestREADMEPythonSnippetsRun(t *testing.T) {
	python := "/usr/bin/python3"
	if _, err := os.Stat(python); err != nil {
		if python, err = exec.LookPath("python3"); err != nil {
			t.Skip("no python3")
		}
	}
	b := bridgetest.Start(t, nil, nil)
	env := append(os.Environ(), "BRIDGE_URL="+b.URL, "BRIDGE_ADDR="+strings.TrimPrefix(b.URL, "http://"), "PYTHONPATH=../clients/python", "HOME="+t.TempDir())
	run := func(src string) (string, error) {
		cmd := exec.Command(python, "-c", src)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	stdlib := snippets(t, "../README.md", "Python, standard library only (`POST /rpc`)", "python")[0]
	out, err := run(stdlib)
	if err != nil || !strings.Contains(out, "({'pong': True") || !strings.Contains(out, "-32001 no healthy session offers aftereffects.get_items") {
		t.Errorf("the standard-library snippet: %v\n%s", err, out)
	}

	if err := exec.Command(python, "-c", "import websockets").Run(); err != nil {
		if os.Getenv("BRIDGE_BROWSER_TESTS") != "" {
			t.Fatal("python3 has no websockets (apt install python3-websockets)")
		}
		t.Skip("python3 has no websockets: the SDK snippets are not run")
	}
	sdk := snippets(t, "../README.md", "Python (the SDK, `clients/python`)", "python")
	ae := bridgetest.Dial(t, b.WSURL, nil)
	ae.Hello(map[string]any{"app": "aftereffects", "kind": "host", "instance": "ae-1", "methods": []string{"get_items", "render", "set_context"}})
	go func() { // answers get_items and set_context; render runs until cancelled
		for {
			raw := ae.ReadRaw(60 * time.Second)
			if bytes.Contains(raw, []byte(`"method":"get_items"`)) || bytes.Contains(raw, []byte(`"method":"set_context"`)) {
				m, _ := bridgetest.DecodeObject(raw)
				ae.Send(map[string]any{"jsonrpc": "2.0", "id": m["id"], "result": []string{"Comp 1"}})
			}
		}
	}()
	if out, err := run(sdk[0] + "\nb.close()\nprint('tool snippet done')\n"); err != nil || !strings.Contains(out, "tool snippet done") {
		t.Errorf("the SDK's tool snippet: %v\n%s", err, out)
	}
	host := sdk[1] + "\nfrom dccbridge import Bridge as _B\n_t = _B(app='pipeline')\nprint(_t.call('blender.export_abc', path='/tmp/x.abc'))\n_t.close(); b.close()\n"
	if out, err := run(host); err != nil || !strings.Contains(out, "'written': '/tmp/x.abc'") {
		t.Errorf("the SDK's host snippet, called: %v\n%s", err, out)
	}
}
