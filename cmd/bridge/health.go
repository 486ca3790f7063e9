package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

const healthAbout = `
Check that the bridge answers: GET http://ADDR/healthz. Prints "ok" and exits
0 when it answers 200; exits 3 when nothing answers within --timeout, 1 on
any other answer. Needs no token; made for container healthchecks.
`

// healthCmd runs `bridge health`.
func healthCmd(args []string, stdout, stderr io.Writer) int {
	var (
		c       common
		timeout time.Duration
	)
	sc := newSubcommand("health", "[flags]", healthAbout, stdout, stderr)
	c.registerAddr(sc.fs)
	sc.fs.DurationVar(&timeout, "timeout", 3*time.Second, "give up after this `duration`")
	addr, code, ok := sc.parseAddr(args, &c)
	if !ok {
		return code
	}
	if timeout <= 0 {
		return sc.fail(usageError("--timeout must be positive"))
	}
	url := "http://" + addr + "/healthz"
	resp, err := directClient(timeout).Get(url)
	if err != nil {
		return sc.fail(describeHealthError(addr, timeout, err))
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		msg := strings.TrimSpace(string(body))
		if msg != "" {
			msg = ": " + msg
		}
		return sc.fail(fmt.Errorf("%s answered HTTP %d%s", url, resp.StatusCode, msg))
	}
	fmt.Fprintln(stdout, "ok")
	return exitOK
}

func describeHealthError(addr string, timeout time.Duration, err error) error {
	var ne net.Error
	switch {
	case isConnRefused(err):
		return unreachableError("cannot reach the bridge at %s: connection refused\nnothing is listening there: is the bridge running? Start it with `bridge serve`, or point --addr / BRIDGE_ADDR at it", addr)
	case errors.As(err, &ne) && ne.Timeout():
		return unreachableError("the bridge at %s did not answer within %v", addr, timeout)
	}
	cause := err
	var op *net.OpError
	if errors.As(err, &op) {
		cause = op.Err
	}
	return unreachableError("cannot reach the bridge at %s: %v\nis the bridge running? Start it with `bridge serve`", addr, cause)
}
