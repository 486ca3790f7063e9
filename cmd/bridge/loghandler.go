package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
	"unicode/utf8"
)

// A peer controls much of what the bridge logs (method names, labels,
// tokens that do not match, origins), so the serve logger guards itself:
// long values are cut, and a warning that repeats is written a few times
// per window, then once more with how many were left out.
const (
	// maxLogValue is the most bytes of one logged value.
	maxLogValue = 256
	// warnBurst is how many warnings with the same message are written per
	// warnWindow; the rest of the window's are counted.
	warnBurst  = 5
	warnWindow = 10 * time.Second
	// maxWarnKinds bounds the distinct warning messages counted at once.
	maxWarnKinds = 256
)

// guardedHandler wraps a slog.Handler, cutting long values and
// rate-limiting repeated warnings. Safe for concurrent use.
type guardedHandler struct {
	next  slog.Handler
	limit *warnLimiter // shared by the handlers WithAttrs and WithGroup make
}

func newGuardedHandler(next slog.Handler) *guardedHandler {
	return &guardedHandler{next: next, limit: &warnLimiter{seen: map[string]*warnCount{}}}
}

func (h *guardedHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h *guardedHandler) Handle(ctx context.Context, r slog.Record) error {
	suppressed := 0
	if r.Level >= slog.LevelWarn {
		var write bool
		if write, suppressed = h.limit.allow(r.Message, r.Time); !write {
			return nil
		}
	}
	out := slog.NewRecord(r.Time, r.Level, cut(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(cutAttr(a))
		return true
	})
	if suppressed > 0 {
		out.AddAttrs(slog.Int("suppressed", suppressed))
	}
	return h.next.Handle(ctx, out)
}

func (h *guardedHandler) WithAttrs(as []slog.Attr) slog.Handler {
	cutAs := make([]slog.Attr, len(as))
	for i, a := range as {
		cutAs[i] = cutAttr(a)
	}
	return &guardedHandler{next: h.next.WithAttrs(cutAs), limit: h.limit}
}

func (h *guardedHandler) WithGroup(name string) slog.Handler {
	return &guardedHandler{next: h.next.WithGroup(name), limit: h.limit}
}

// cut shortens s to at most maxLogValue bytes, on a character boundary,
// saying how long it was.
func cut(s string) string {
	if len(s) <= maxLogValue {
		return s
	}
	n := maxLogValue
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return fmt.Sprintf("%s…(%d bytes)", s[:n], len(s))
}

// cutAttr shortens a's value if it is, or prints as, a long string.
func cutAttr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		a.Value = slog.StringValue(cut(v.String()))
	case slog.KindAny:
		if s := fmt.Sprint(v.Any()); len(s) > maxLogValue {
			a.Value = slog.StringValue(cut(s))
		}
	case slog.KindGroup:
		group := v.Group()
		cutGroup := make([]slog.Attr, len(group))
		for i, g := range group {
			cutGroup[i] = cutAttr(g)
		}
		a.Value = slog.GroupValue(cutGroup...)
	}
	return a
}

// warnLimiter counts warnings by message in windows of warnWindow. Its
// map holds one entry per distinct message, at most maxWarnKinds (a
// message may carry a library's error text); when full it starts over.
// Safe for concurrent use.
type warnLimiter struct {
	mu   sync.Mutex
	seen map[string]*warnCount
}

type warnCount struct {
	windowStart time.Time
	written     int
	suppressed  int // in windows since the last line written
}

// allow reports whether a warning with msg at t is written, and how many
// like it were left out since the last one written.
func (l *warnLimiter) allow(msg string, t time.Time) (write bool, suppressed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.seen[msg]
	if c == nil && len(l.seen) >= maxWarnKinds {
		clear(l.seen)
	}
	if c == nil {
		c = &warnCount{windowStart: t}
		l.seen[msg] = c
	}
	if t.Sub(c.windowStart) >= warnWindow {
		c.windowStart, c.written = t, 0
	}
	if c.written >= warnBurst {
		c.suppressed++
		return false, 0
	}
	c.written++
	suppressed, c.suppressed = c.suppressed, 0
	return true, suppressed
}
