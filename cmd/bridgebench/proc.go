package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

// stopGrace is how long a child gets to exit after an interrupt before it
// is killed.
const stopGrace = 3 * time.Second

// procSet tracks the subprocesses the harness starts, so that every way out
// of a run — success, error, SIGINT — stops them: the orchestrator defers
// stopAll. It is safe for concurrent use.
type procSet struct {
	log *slog.Logger

	mu       sync.Mutex
	children []*child
}

// newProcSet returns an empty procSet that logs to log.
func newProcSet(log *slog.Logger) *procSet {
	return &procSet{log: log}
}

// childSpec describes a subprocess to start.
type childSpec struct {
	Name string   // used in messages and as the prefix of its stderr lines
	Path string   // executable
	Args []string // arguments after the executable
	Env  []string // nil inherits the harness's environment
	// Lifeline gives the child a stdin pipe whose write end only the
	// harness holds. The harness's own subcommands exit when it reaches
	// EOF, which happens however the harness ends, SIGKILL included.
	Lifeline bool
}

// child is one started subprocess. Its stdout is captured in out; its
// stderr is copied to the harness's stderr, each line prefixed with its
// name. done is closed when the process has exited, after err is set.
type child struct {
	name     string
	cmd      *exec.Cmd
	out      *capture
	lifeline *os.File // write end of the child's stdin, nil without Lifeline
	lifeOnce sync.Once
	done     chan struct{}
	err      error // the result of Wait; read only after done is closed
}

// start starts spec and tracks it until stopAll.
func (p *procSet) start(spec childSpec, stderr io.Writer) (*child, error) {
	cmd := exec.Command(spec.Path, spec.Args...)
	cmd.Env = spec.Env
	c := &child{name: spec.Name, cmd: cmd, out: newCapture(), done: make(chan struct{})}
	cmd.Stdout = c.out
	cmd.Stderr = &prefixWriter{w: stderr, prefix: "[" + spec.Name + "] "}
	configureChild(cmd)

	var stdinR *os.File
	if spec.Lifeline {
		r, w, err := os.Pipe()
		if err != nil {
			return nil, fmt.Errorf("start %s: %w", spec.Name, err)
		}
		stdinR, c.lifeline = r, w
		cmd.Stdin = r
	}
	err := cmd.Start()
	if stdinR != nil {
		stdinR.Close() // the child has its own copy
	}
	if err != nil {
		if c.lifeline != nil {
			c.lifeline.Close()
		}
		return nil, fmt.Errorf("start %s: %w", spec.Name, err)
	}
	p.log.Debug("started", "proc", spec.Name, "pid", cmd.Process.Pid, "args", spec.Args)
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	p.mu.Lock()
	p.children = append(p.children, c)
	p.mu.Unlock()
	return c, nil
}

// stopAll stops every child still running, most recently started first.
func (p *procSet) stopAll() {
	p.mu.Lock()
	children := p.children
	p.children = nil
	p.mu.Unlock()
	for i := len(children) - 1; i >= 0; i-- {
		children[i].stop(stopGrace)
	}
}

// stop ends the child and waits for it: it closes the lifeline, sends an
// interrupt (where the platform has one), and kills the process if it has
// not exited after grace. It is safe to call more than once.
func (c *child) stop(grace time.Duration) {
	c.lifeOnce.Do(func() {
		if c.lifeline != nil {
			c.lifeline.Close()
		}
	})
	select {
	case <-c.done:
		return
	default:
	}
	if err := c.cmd.Process.Signal(os.Interrupt); err != nil {
		c.cmd.Process.Kill() // no interrupt on this platform
	}
	select {
	case <-c.done:
	case <-time.After(grace):
		c.cmd.Process.Kill()
		<-c.done
	}
}

// exitError describes how the child ended; call it only after done.
func (c *child) exitError() error {
	if c.err == nil {
		return fmt.Errorf("%s exited", c.name)
	}
	return fmt.Errorf("%s exited: %w", c.name, c.err)
}

// waitLine waits until the child prints want as a line on stdout.
func (c *child) waitLine(ctx context.Context, want string, timeout time.Duration) error {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case line := <-c.out.lines:
			if line == want {
				return nil
			}
		case <-c.done:
			return fmt.Errorf("%w before printing %q", c.exitError(), want)
		case <-timer.C:
			return fmt.Errorf("%s did not print %q within %v", c.name, want, timeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// waitHealthy polls url every poll until it answers 200, the child exits,
// or timeout passes.
func (c *child) waitHealthy(ctx context.Context, url string, poll, timeout time.Duration) error {
	client := &http.Client{Timeout: poll * 10}
	deadline := time.Now().Add(timeout)
	var last error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		last = err
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready: GET %s did not return 200 within %v (last: %v)", c.name, url, timeout, last)
		}
		select {
		case <-c.done:
			return fmt.Errorf("%w before %s answered 200", c.exitError(), url)
		case <-time.After(poll):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// capture collects a child's stdout and reports each complete line on
// lines (dropping lines nobody reads once 64 are waiting). It is safe for
// concurrent use.
type capture struct {
	lines chan string

	mu      sync.Mutex
	buf     bytes.Buffer
	partial []byte
}

// newCapture returns an empty capture.
func newCapture() *capture {
	return &capture{lines: make(chan string, 64)}
}

// Write implements io.Writer.
func (c *capture) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf.Write(p)
	c.partial = append(c.partial, p...)
	for {
		i := bytes.IndexByte(c.partial, '\n')
		if i < 0 {
			break
		}
		select {
		case c.lines <- string(bytes.TrimRight(c.partial[:i], "\r")):
		default:
		}
		c.partial = c.partial[i+1:]
	}
	return len(p), nil
}

// Bytes returns a copy of everything written so far.
func (c *capture) Bytes() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.buf.Bytes())
}

// prefixWriter copies whole lines to w with prefix in front of each. A
// final line without a newline is held until one arrives. It is safe for
// concurrent use.
type prefixWriter struct {
	w      io.Writer
	prefix string

	mu      sync.Mutex
	partial []byte
}

// Write implements io.Writer.
func (pw *prefixWriter) Write(p []byte) (int, error) {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	pw.partial = append(pw.partial, p...)
	for {
		i := bytes.IndexByte(pw.partial, '\n')
		if i < 0 {
			break
		}
		line := make([]byte, 0, len(pw.prefix)+i+1)
		line = append(line, pw.prefix...)
		line = append(line, pw.partial[:i+1]...)
		if _, err := pw.w.Write(line); err != nil {
			return len(p), err
		}
		pw.partial = pw.partial[i+1:]
	}
	return len(p), nil
}

// childContext returns the context a hidden subcommand runs in. It ends on
// SIGINT or SIGTERM and, with lifeline, when stdin reaches EOF: the harness
// holds the only write end, so that happens however the harness ends.
func childContext(lifeline bool) (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	if !lifeline {
		return ctx, stop
	}
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	return ctx, func() { cancel(); stop() }
}
