package main

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"
	"time"
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
