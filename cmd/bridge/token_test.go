package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestTokenExplicit(t *testing.T) {
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte("  from-the-file \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := runCLI(t, nil, "", "token", "--token-file", file); r.code != exitOK || r.stdout != "from-the-file\n" {
		t.Fatalf("--token-file: %v", r)
	}
	if r := runCLI(t, nil, "", "token", "--token", "from-the-flag"); r.code != exitOK || r.stdout != "from-the-flag\n" {
		t.Fatalf("--token: %v", r)
	}
	env, _ := childEnv(t, "BRIDGE_TOKEN=from-the-env")
	if r := runCLI(t, env, "", "token"); r.code != exitOK || r.stdout != "from-the-env\n" {
		t.Fatalf("BRIDGE_TOKEN: %v", r)
	}
	env, _ = childEnv(t, "BRIDGE_TOKEN_FILE="+file)
	if r := runCLI(t, env, "", "token"); r.code != exitOK || r.stdout != "from-the-file\n" {
		t.Fatalf("BRIDGE_TOKEN_FILE: %v", r)
	}
	r := runCLI(t, nil, "", "token", "--token-file", filepath.Join(t.TempDir(), "missing"))
	expect(t, r, exitRPCError, "reading the token file")
}

// TestTokenDefaultFile: with no token given, `bridge token` creates the
// default file (0600, random token) in the user's config dir, and prints
// the same token next time.
func TestTokenDefaultFile(t *testing.T) {
	env, home := childEnv(t)
	path := filepath.Join(home, ".config", "dccbridge", "token")
	r := runCLI(t, env, "", "token")
	expect(t, r, exitOK)
	tok := strings.TrimSpace(r.stdout)
	if !regexp.MustCompile(`^[0-9a-f]{32,}$`).MatchString(tok) {
		t.Fatalf("token %q does not look random", tok)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatalf("the default token file was not created: %v", err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode %v, want 0600", st.Mode().Perm())
	}
	b, _ := os.ReadFile(path)
	if strings.TrimSpace(string(b)) != tok {
		t.Fatalf("file holds %q, printed %q", b, tok)
	}
	if r := runCLI(t, env, "", "token"); r.code != exitOK || strings.TrimSpace(r.stdout) != tok {
		t.Fatalf("second run printed another token: %v", r)
	}
	// Another user (another HOME) gets another token.
	if r := runCLI(t, nil, "", "token"); r.code != exitOK || strings.TrimSpace(r.stdout) == tok {
		t.Fatalf("a fresh config dir reused the token: %v", r)
	}
}

// Every hint about the token is true for how the bridge was started: one
// given its own token says so (`bridge token` would print the default
// file's, another), one using the default file says `bridge token`
// prints it; and `bridge token` says where its token comes from.
func TestTokenHintsMatchTheBridge(t *testing.T) {
	port := freePort(t)
	env, _ := childEnv(t, "BRIDGE_ADDR=127.0.0.1:"+port)
	startServe(t, env, "127.0.0.1:"+port, "--token", "its-own-token-0123456789")
	r := runCLI(t, env, "", "call", "bridge.ping", "--token", "wrong-token-0123456789")
	expect(t, r, exitRefused, "the token this bridge was started with (its --token")
	if strings.Contains(r.stderr, "`bridge token` prints it (the default") {
		t.Errorf("a bridge with its own token sends the user to the default file: %v", r)
	}
	r = runCLI(t, env, "", "token")
	expect(t, r, exitOK, "from the default token file", "a bridge given --token, BRIDGE_TOKEN or --token-file has that one")
	r = runCLI(t, append(env, "BRIDGE_TOKEN=abc-def-0123456789abc"), "", "token")
	expect(t, r, exitOK, "from BRIDGE_TOKEN")
	if strings.TrimSpace(r.stdout) != "abc-def-0123456789abc" {
		t.Errorf("bridge token's stdout is %q, want the token alone", r.stdout)
	}

	port2 := freePort(t)
	env2, _ := childEnv(t, "BRIDGE_ADDR=127.0.0.1:"+port2)
	startServe(t, env2, "127.0.0.1:"+port2)
	resp, err := http.Get("http://127.0.0.1:" + port2 + "/api/token-hint")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var hint struct{ Hint string }
	json.NewDecoder(resp.Body).Decode(&hint)
	if !strings.Contains(hint.Hint, "`bridge token` prints it") {
		t.Errorf("a bridge on the default token file hints %q", hint.Hint)
	}
}
