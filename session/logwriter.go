package session

import (
	"context"
	"log/slog"
	"sync"
)

// logLine is a log record waiting to be written.
type logLine struct {
	level slog.Level
	msg   string
	args  []any
}

// maxQueuedLogLines bounds the lines waiting to be written; beyond it, add
// waits for the writer, as a synchronous logger would.
const maxQueuedLogLines = 1024

// logWriter writes the Router's log lines in order, on a goroutine that
// runs only while there are lines to write. They are not written on the
// goroutines that make them, sessions' read loops, because those live as
// long as their connections and keep the stack they grew: a handler's
// formatting needs more than the 4 KiB an idle session's read needs, and
// the runtime halves a stack only when less than a quarter of it is in
// use, which a session blocked in a read (about 3.4 KiB deep) never is.
// It also keeps a slow log destination from holding up routing. Safe for
// concurrent use.
type logWriter struct {
	log     *slog.Logger
	mu      sync.Mutex
	changed sync.Cond // the writer took lines, or ended
	lines   []logLine
	running bool
}

func newLogWriter(log *slog.Logger) *logWriter {
	w := &logWriter{log: log}
	w.changed.L = &w.mu
	return w
}

// add queues lines for writing.
func (w *logWriter) add(lines ...logLine) {
	if len(lines) == 0 {
		return
	}
	w.mu.Lock()
	for len(w.lines) >= maxQueuedLogLines {
		w.changed.Wait()
	}
	w.lines = append(w.lines, lines...)
	if !w.running {
		w.running = true
		go w.run()
	}
	w.mu.Unlock()
}

func (w *logWriter) run() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for len(w.lines) > 0 {
		lines := w.lines
		w.lines = nil
		w.changed.Broadcast()
		w.mu.Unlock()
		for _, l := range lines {
			w.log.Log(context.Background(), l.level, l.msg, l.args...)
		}
		w.mu.Lock()
	}
	w.running = false
	w.changed.Broadcast()
}

// wait returns once every line added so far has been written.
func (w *logWriter) wait() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.running {
		w.changed.Wait()
	}
}

// onFreshStack runs f on a goroutine of its own and returns when it has
// returned: for work that needs a deep stack (encoding/json's recursion,
// say), done for a session's read loop, whose goroutine would otherwise
// keep that stack for the connection's life (see logWriter).
func onFreshStack(f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	<-done
}
