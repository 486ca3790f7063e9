package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A SkyHook server given in the config file (as --skyhook maya=HOST:PORT
// gives it): its functions are listed by `bridge sessions` as a maya
// session and `bridge call` reaches them; --skyhook with an app that does
// not run SkyHook is refused, saying which do; a config file with a
// misspelt section is refused, naming it.
func TestServeSkyHook(t *testing.T) {
	sky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			FunctionName string
			Parameters   map[string]any
		}
		json.NewDecoder(r.Body).Decode(&req)
		reply := map[string]any{"Time": "12:00:00", "Success": true, "Command": req.FunctionName}
		switch req.FunctionName {
		case "SKY_LS":
			reply["ReturnValue"] = []string{"SKY_SHUTDOWN", "SKY_LS", "export_abc"}
		case "export_abc":
			reply["ReturnValue"] = "wrote " + req.Parameters["path"].(string)
		default:
			reply["Success"], reply["ReturnValue"] = false, "ValueError: Function "+req.FunctionName+" not found"
		}
		json.NewEncoder(w).Encode(reply)
	}))
	defer sky.Close()
	port := freePort(t)
	env, home := childEnv(t, "BRIDGE_ADDR=127.0.0.1:"+port)
	expect(t, runCLI(t, env, "", "serve", "--skyhook", "nuke"), exitRPCError, "does not run SkyHook", "maya, houdini")
	bad := filepath.Join(home, "bad.json")
	os.WriteFile(bad, []byte(`{"skyhooks":{"maya":""}}`), 0o644)
	expect(t, runCLI(t, env, "", "serve", "--config", bad), exitUsage, "config file", `unknown field "skyhooks"`)

	// maya's server comes from the config file in the user's config dir.
	cfgDir := filepath.Join(home, ".config", "dccbridge")
	os.MkdirAll(cfgDir, 0o700)
	os.WriteFile(filepath.Join(cfgDir, "config.json"), []byte(`{"skyhook":{"maya":"`+strings.TrimPrefix(sky.URL, "http://")+`"}}`), 0o644)
	startServe(t, env, "127.0.0.1:"+port)

	var out string
	for range 50 {
		if out = runCLI(t, env, "", "sessions", "--methods").stdout; strings.Contains(out, "maya.export_abc") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(out, "skyhook") || !strings.Contains(out, "maya.export_abc") || strings.Contains(out, "SKY_") {
		t.Fatalf("bridge sessions does not list maya's SkyHook server as it should:\n%s", out)
	}
	expectOut(t, runCLI(t, env, "", "call", "maya.export_abc", "path=/shots/sh010/cache.abc"), "wrote /shots/sh010/cache.abc")
}
