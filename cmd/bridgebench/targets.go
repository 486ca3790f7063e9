package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// healthPoll is how often a starting server's /healthz is polled.
const healthPoll = 20 * time.Millisecond

// target is a server under test, running with its host peer connected and
// routable. The tool peers of each scenario dial toolsURL.
type target struct {
	name         string // "relay" or "bridge"
	server       *child
	toolsURL     string
	relayRouting bool // tools announce their id prefix in the URL
}

// startRelayTarget starts the relay and its host peer, each in its own
// process, and waits until both are ready.
func startRelayTarget(ctx context.Context, procs *procSet, env *benchEnv) (*target, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	srv, err := procs.start(childSpec{
		Name:     "relay",
		Path:     env.self,
		Args:     append([]string{"relay", "-addr", addr}, env.childFlags()...),
		Lifeline: true,
	}, env.stderr)
	if err != nil {
		return nil, err
	}
	if err := srv.waitHealthy(ctx, "http://"+addr+"/healthz", healthPoll, env.cfg.ReadyTimeout); err != nil {
		return nil, err
	}
	if err := startHost(ctx, procs, env, "relay-host", "ws://"+addr+"/host", false); err != nil {
		return nil, err
	}
	return &target{name: "relay", server: srv, toolsURL: "ws://" + addr + "/tool", relayRouting: true}, nil
}

// startBridgeTarget starts the bridge binary and a host peer registered with
// it by bridge.hello, and waits until both are ready.
//
// Assumed of the bridge (docs/protocol.md): `serve --addr 127.0.0.1:<port>
// --log-level warn`; GET /healthz answers 200 once it serves; websocket
// endpoint /ws; no token in force for a local client without an Origin
// when none is configured.
func startBridgeTarget(ctx context.Context, procs *procSet, env *benchEnv, bin string) (*target, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	srv, err := procs.start(childSpec{
		Name: "bridge",
		Path: bin,
		Args: []string{"serve", "--addr", addr, "--log-level", "warn"},
		Env:  bridgeEnv(os.Environ(), filepath.Join(env.tmp, "config")),
	}, env.stderr)
	if err != nil {
		return nil, fmt.Errorf("cannot start the bridge: %w", err)
	}
	if err := srv.waitHealthy(ctx, "http://"+addr+"/healthz", healthPoll, env.cfg.ReadyTimeout); err != nil {
		return nil, fmt.Errorf("the bridge did not start: %w", err)
	}
	if err := startHost(ctx, procs, env, "bridge-host", "ws://"+addr+"/ws", true); err != nil {
		return nil, fmt.Errorf("the host peer could not register with the bridge: %w", err)
	}
	return &target{name: "bridge", server: srv, toolsURL: "ws://" + addr + "/ws"}, nil
}

// startHost starts a host peer process and waits until it reports ready.
func startHost(ctx context.Context, procs *procSet, env *benchEnv, name, url string, hello bool) error {
	args := append([]string{"host", "-url", url, "-hello=" + strconv.FormatBool(hello)}, env.childFlags()...)
	h, err := procs.start(childSpec{Name: name, Path: env.self, Args: args, Lifeline: true}, env.stderr)
	if err != nil {
		return err
	}
	return h.waitLine(ctx, hostReadyLine, env.cfg.ReadyTimeout)
}

// bridgeEnv returns environ without the variables that would change where
// the bridge listens or put a token in force, with the user config dir
// (where the bridge may create its token file) moved to configDir on
// platforms where XDG_CONFIG_HOME decides it.
func bridgeEnv(environ []string, configDir string) []string {
	out := make([]string, 0, len(environ)+1)
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "BRIDGE_TOKEN", "BRIDGE_TOKEN_FILE", "BRIDGE_ADDR", "WEBSOCKET_URL", "XDG_CONFIG_HOME":
			continue
		}
		out = append(out, kv)
	}
	if runtime.GOOS != "windows" && runtime.GOOS != "darwin" {
		out = append(out, "XDG_CONFIG_HOME="+configDir)
	}
	return out
}

// buildBridge builds pkg into dir with the go command and returns the
// binary's path. The error carries the compiler's output.
func buildBridge(ctx context.Context, pkg, dir string) (string, error) {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		goCmd = "go" // not on PATH: exec reports it clearly
	}
	bin := filepath.Join(dir, "bridge")
	if runtime.GOOS == "windows" {
		bin += ".exe"
	}
	cmd := exec.CommandContext(ctx, goCmd, "build", "-o", bin, pkg)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("cannot build the bridge (go build %s): %w\n%s", pkg, err, strings.TrimSpace(string(out)))
	}
	return bin, nil
}

// freeAddr returns a 127.0.0.1 address with a port that was free a moment
// ago (the servers under test choose their port from a flag).
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
