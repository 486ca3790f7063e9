package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// `bridge catalog` lists the apps; with an app (or an alias) it lists its
// methods, whether they are re-sent after a drop and their timeouts; a
// --catalog directory adds a studio's own app and methods.
func TestCatalogCommand(t *testing.T) {
	expectOuts(t, runCLI(t, nil, "", "catalog"), "aftereffects", "After Effects", "wsrpc", "8097", "photoshop", "maya", "65501", "unreal")
	expectOuts(t, runCLI(t, nil, "", "catalog", "AEFT"),
		"aftereffects.get_items", "comps, folders, footages", "yes (idempotent)", "aftereffects.render", "4h0m0s", "publish_route")
	expect(t, runCLI(t, nil, "", "catalog", "nosuchapp"), exitUsage, `no app "nosuchapp"`)

	dir := t.TempDir()
	studio := `{"app":"aftereffects","methods":[{"name":"studio_export","params":["path"],"timeout_ms":60000}]}`
	newApp := `{"app":"harmony","label":"Toon Boom Harmony","kind":"host","dialect":"jsonrpc","methods":[{"name":"get_scene","idempotent":true}]}`
	os.WriteFile(filepath.Join(dir, "ae.json"), []byte(studio), 0o644)
	os.WriteFile(filepath.Join(dir, "harmony.json"), []byte(newApp), 0o644)
	expectOuts(t, runCLI(t, nil, "", "catalog", "--catalog", dir, "aftereffects"), "aftereffects.studio_export", "1m0s", "aftereffects.get_items")
	expectOuts(t, runCLI(t, nil, "", "catalog", "harmony", "--catalog", dir), "Toon Boom Harmony", "harmony.get_scene")

	os.WriteFile(filepath.Join(dir, "bad.json"), []byte(`{"app":"x","dialect":"smoke-signals"}`), 0o644)
	expect(t, runCLI(t, nil, "", "catalog", "--catalog", dir), exitUsage, "bad.json", "smoke-signals")
}

// `bridge serve --listen aftereffects=…`: an AYON After Effects panel
// that connects to that port and says nothing (as after a reconnect) is
// listed by `bridge sessions` as an aftereffects host, and `bridge call`
// reaches it; --listen with an app the catalog lacks is refused.
func TestServeListenForPanels(t *testing.T) {
	port, aePort := freePort(t), freePort(t)
	env, _ := childEnv(t, "BRIDGE_ADDR=127.0.0.1:"+port)
	expect(t, runCLI(t, env, "", "serve", "--listen", "nosuch=127.0.0.1:"+aePort), exitRPCError, "no app", "nosuch", "bridge catalog")
	startServe(t, env, "127.0.0.1:"+port, "--listen", "aftereffects=127.0.0.1:"+aePort)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	panel, _, err := websocket.Dial(ctx, "ws://127.0.0.1:"+aePort+"/ws/", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer panel.CloseNow()
	go func() { // answers get_items as the panel does: a JSX string, its id, no "jsonrpc"
		for {
			_, b, err := panel.Read(ctx)
			if err != nil {
				return
			}
			var m struct {
				ID     json.RawMessage `json:"id"`
				Method string          `json:"method"`
			}
			if json.Unmarshal(b, &m) == nil && m.Method == "AfterEffects.get_items" {
				panel.Write(ctx, websocket.MessageText, []byte(`{"id":`+string(m.ID)+`,"result":"[{\"id\":1,\"name\":\"comp_sh010\"}]"}`))
			}
		}
	}()

	var out string
	for range 50 {
		if out = runCLI(t, env, "", "sessions").stdout; strings.Contains(out, "aftereffects@127.0.0.1") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(out, "aftereffects@127.0.0.1") || !strings.Contains(out, "After Effects panel (wsrpc)") {
		t.Fatalf("bridge sessions does not list the silent panel:\n%s", out)
	}
	expectOut(t, runCLI(t, env, "", "call", "aftereffects.get_items", "comps=true"), `comp_sh010`)
}

// expectOuts checks that r exited 0 and printed each of want.
func expectOuts(t *testing.T, r result, want ...string) {
	t.Helper()
	for _, w := range want {
		expectOut(t, r, w)
	}
}
