package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/dccbridge/dccbridge/web"
)

const ensureAbout = `Starts a bridge in the background unless one already answers at the
address, waits until it is healthy, and prints its URL: what a launcher
runs before it starts a DCC. The bridge it starts is detached from this
console and process group, and logs to a file in your cache directory.
Flags after -- go to the bridge (bridge serve -h lists them).

Example:
  bridge ensure
  bridge ensure --addr 127.0.0.1:8098 -- --listen aftereffects=127.0.0.1:8097 --skyhook maya

Exit codes: 0 running (started now or already), 1 it did not start (the
log's last lines are printed), 2 bad usage, 3 something that is not a
bridge holds the address.`

const stopAbout = `Stops the bridge at the address gracefully, as Ctrl+C does: sessions
are closed, calls in flight fail with -32006. The bridge's token is sent;
a bridge without a token in force takes this only from this machine.

Example:
  bridge stop
  bridge stop --addr 127.0.0.1:9000

Exit codes: 0 stopped (or none was running), 1 it did not stop or was
refused (403), 2 bad usage, 4 the bridge refused the token.`

// bridgeAt tells what answers /healthz at addr: a bridge (its version), or
// another program, or nothing.
func bridgeAt(addr string, timeout time.Duration) (version string, other bool, err error) {
	resp, err := directClient(timeout).Get("http://" + addr + "/healthz")
	if err != nil {
		return "", false, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 512))
	if v := resp.Header.Get(web.IdentityHeader); resp.StatusCode == http.StatusOK && v != "" {
		return v, false, nil
	}
	return "", true, nil
}

func ensureCmd(args []string, stdout, stderr io.Writer) int {
	var (
		c       common
		timeout time.Duration
	)
	serveArgs := []string{}
	if i := indexOf(args, "--"); i >= 0 {
		args, serveArgs = args[:i], args[i+1:]
	}
	sc := newSubcommand("ensure", "[flags] [-- serve flags]", ensureAbout, stdout, stderr)
	c.register(sc.fs)
	sc.fs.DurationVar(&timeout, "timeout", 15*time.Second, "how long to wait for the bridge to become healthy")
	addr, code, ok := sc.parseAddr(args, &c)
	if !ok {
		return code
	}
	listen, err := listenAddr(c.addr) // what serve listens on (a wildcard stays one); addr is what is dialled
	if err != nil {
		return sc.fail(usageError("%v", err))
	}
	url := "ws://" + addr + "/ws"
	// 5 s: on Windows a refused connection to a local port takes about 2.
	switch v, other, err := bridgeAt(addr, 5*time.Second); {
	case err == nil && !other:
		fmt.Fprintf(stdout, "%s\n", url)
		fmt.Fprintf(stderr, "a bridge (version %s) already runs at %s\n", v, addr)
		return exitOK
	case err == nil && other:
		return sc.fail(unreachableError("%s is held by another program (it answers HTTP, but not as a bridge): stop it, or give the bridge another --addr", addr))
	case !isConnRefused(err):
		return sc.fail(unreachableError("%s is held by something that does not answer HTTP (%v): stop it, or give the bridge another --addr", addr, err))
	}

	logPath, err := bridgeLogPath()
	if err != nil {
		return sc.fail(err)
	}
	if st, err := os.Stat(logPath); err == nil && st.Size() > maxLog {
		_ = os.Rename(logPath, logPath+".1") // one older log is kept
	}
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return sc.fail(fmt.Errorf("cannot open the bridge's log: %w", err))
	}
	defer logFile.Close()
	exe, err := os.Executable()
	if err != nil {
		return sc.fail(fmt.Errorf("cannot find this program to start it: %w", err))
	}
	cmd := exec.Command(exe, append([]string{"serve", "--addr", listen}, serveArgs...)...)
	// The token goes by the environment, not the command line, where any
	// local user could read it.
	cmd.Env = os.Environ()
	if c.token != "" {
		cmd.Env = append(cmd.Env, "BRIDGE_TOKEN="+c.token)
	}
	if c.tokenFile != "" {
		cmd.Env = append(cmd.Env, "BRIDGE_TOKEN_FILE="+c.tokenFile)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	detach(cmd)
	if err := cmd.Start(); err != nil {
		return sc.fail(fmt.Errorf("cannot start the bridge: %w", err))
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.After(timeout)
	for {
		select {
		case err := <-exited:
			if v, other, herr := bridgeAt(addr, 2*time.Second); herr == nil && !other {
				// Another launcher's ensure started one first.
				fmt.Fprintf(stdout, "%s\n", url)
				fmt.Fprintf(stderr, "a bridge (version %s) already runs at %s\n", v, addr)
				return exitOK
			}
			fmt.Fprintf(stderr, "bridge ensure: the bridge exited at once (%v); the end of %s:\n%s", err, logPath, tail(logPath, 10))
			return exitRPCError
		case <-deadline:
			_ = cmd.Process.Kill() // not left running, unhealthy, for the next ensure to trip on
			fmt.Fprintf(stderr, "bridge ensure: the bridge (pid %d) was not healthy after %v, and is stopped; the end of %s:\n%s", cmd.Process.Pid, timeout, logPath, tail(logPath, 10))
			return exitRPCError
		case <-time.After(100 * time.Millisecond):
		}
		if _, other, err := bridgeAt(addr, time.Second); err == nil && !other {
			fmt.Fprintf(stdout, "%s\n", url)
			fmt.Fprintf(stderr, "started a bridge at %s (pid %d), logging to %s\n", addr, cmd.Process.Pid, logPath)
			return exitOK
		}
	}
}

func stopCmd(args []string, stdout, stderr io.Writer) int {
	var (
		c       common
		timeout time.Duration
	)
	sc := newSubcommand("stop", "[flags]", stopAbout, stdout, stderr)
	c.register(sc.fs)
	sc.fs.DurationVar(&timeout, "timeout", 10*time.Second, "how long to wait for the bridge to stop")
	addr, code, ok := sc.parseAddr(args, &c)
	if !ok {
		return code
	}
	token, _, err := c.tokenForClient(stderr)
	if err != nil {
		return sc.fail(err)
	}
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/admin/shutdown", nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := directClient(5 * time.Second).Do(req)
	if err != nil {
		if isConnRefused(err) {
			fmt.Fprintf(stderr, "no bridge runs at %s: nothing to stop\n", addr)
			return exitOK
		}
		return sc.fail(fmt.Errorf("cannot reach %s: %w", addr, err))
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusAccepted:
	case http.StatusUnauthorized:
		return sc.fail(refusedError("the bridge at %s refused to stop (HTTP 401): %s", addr, strings.TrimSpace(string(body))))
	default:
		return sc.fail(fmt.Errorf("the bridge at %s refused to stop (HTTP %d): %s", addr, resp.StatusCode, strings.TrimSpace(string(body))))
	}
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if _, _, err := bridgeAt(addr, time.Second); isConnRefused(err) {
			fmt.Fprintf(stdout, "stopped the bridge at %s\n", addr)
			return exitOK
		}
	}
	return sc.fail(fmt.Errorf("the bridge at %s still answers %v after it was asked to stop", addr, timeout))
}

// maxLog is the size past which `bridge ensure` starts a new log, keeping
// the last one as bridge.log.1.
const maxLog = 10 << 20

// bridgeLogPath is the log of a bridge started by `bridge ensure`, in the
// user's cache directory.
func bridgeLogPath() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory for the bridge's log: %w", err)
	}
	dir = filepath.Join(dir, "dccbridge")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("cannot make %s for the bridge's log: %w", dir, err)
	}
	return filepath.Join(dir, "bridge.log"), nil
}

// tail returns the last n lines of the file at path (of its last 64 KiB).
func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return "  (" + err.Error() + ")\n"
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > 64<<10 {
		_, _ = f.Seek(-64<<10, io.SeekEnd)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return "  (" + err.Error() + ")\n"
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	var out strings.Builder
	for _, l := range lines {
		out.WriteString("  " + string(l) + "\n")
	}
	return out.String()
}

func indexOf(args []string, s string) int {
	for i, a := range args {
		if a == s {
			return i
		}
	}
	return -1
}
