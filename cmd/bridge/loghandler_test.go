package main

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"
	"time"
	"unicode/utf8"
)

// A 1 MiB method name, label or error costs a few hundred bytes of log, not
// megabytes; groups and With attributes are cut too.
func TestLogValuesCut(t *testing.T) {
	var out bytes.Buffer
	log, err := newLogger(&out, "info", "text")
	if err != nil {
		t.Fatal(err)
	}
	huge := strings.Repeat("m", 1<<20)
	log.With("label", huge).Info("call failed", "method", huge, "error", errors.New(huge), slog.Group("caller", "app", huge))
	if n := out.Len(); n > 4*maxLogValue+600 {
		t.Fatalf("one line with four 1 MiB values wrote %d bytes of log", n)
	}
	if got := strings.Count(out.String(), "…(1048576 bytes)"); got != 4 {
		t.Fatalf("%d values say how long they were, want 4:\n%s", got, out.String())
	}
}

// A warning repeated 1,000 times in a second is written warnBurst times;
// in the next window the first one says how many were left out. Other
// warnings and info lines are not held back by it.
func TestRepeatedWarningsLimited(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var out bytes.Buffer
		log, err := newLogger(&out, "info", "json")
		if err != nil {
			t.Fatal(err)
		}
		for range 1000 {
			log.Warn("request refused", "status", 401)
		}
		log.Warn("slow reader closed")
		log.Info("session joined")
		if got := strings.Count(out.String(), `"request refused"`); got != warnBurst {
			t.Fatalf("%d refusal lines in the first window, want %d", got, warnBurst)
		}
		if !strings.Contains(out.String(), `"slow reader closed"`) || !strings.Contains(out.String(), `"session joined"`) {
			t.Fatalf("other lines were held back:\n%s", out.String())
		}
		time.Sleep(warnWindow)
		out.Reset()
		log.Warn("request refused", "status", 401)
		if !strings.Contains(out.String(), `"suppressed":995`) {
			t.Fatalf("the first refusal of the next window: %s, want suppressed 995", out.String())
		}
	})
}

// A value cut in the middle of a character keeps valid UTF-8, and warnings
// whose messages all differ do not grow the limiter without bound.
func TestLogCutKeepsUTF8AndLimiterBounded(t *testing.T) {
	s := strings.Repeat("é", maxLogValue) // two bytes each
	if c := cut("x" + s); !utf8.ValidString(c) {
		t.Fatalf("cut left invalid UTF-8: %q", c[maxLogValue-4:])
	}
	l := &warnLimiter{seen: map[string]*warnCount{}}
	for i := range 10 * maxWarnKinds {
		l.allow(fmt.Sprint("promhttp: error at ", i), time.Now())
	}
	if len(l.seen) > maxWarnKinds {
		t.Fatalf("the limiter holds %d messages, want at most %d", len(l.seen), maxWarnKinds)
	}
}
