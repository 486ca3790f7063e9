// Package browsertest drives Debian's chromium through chromedp for the
// project's browser tests: headless, as root, with the flags LIBRARIES.md
// gives (--no-sandbox, --disable-gpu, --disable-background-networking,
// --disable-component-update, --disable-sync, --no-first-run and a fresh
// --user-data-dir per test). A test that needs chromium skips only when
// chromium is absent and BRIDGE_BROWSER_TESTS is unset; with it set (as
// .ci/run does), a missing chromium fails the test.
package browsertest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// Chromium returns the chromium to run. When there is none it skips the
// test, or fails it if BRIDGE_BROWSER_TESTS is set.
func Chromium(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("BRIDGE_BROWSER_TESTS") != "" {
		t.Fatal("BRIDGE_BROWSER_TESTS is set but chromium is missing (apt-get install chromium)")
	}
	t.Skip("chromium is missing (set BRIDGE_BROWSER_TESTS=1 to make that a failure)")
	return ""
}

// Browser is one headless chromium with a fresh profile, for one test.
// Its Page is the first tab, which lives as long as the browser.
type Browser struct {
	*Page

	mu   sync.Mutex
	logs []string // console output and exceptions of the pages
}

// Page is one tab of a Browser.
type Page struct {
	T   *testing.T
	b   *Browser
	ctx context.Context // the tab's chromedp context
}

// Start starts chromium for t and stops it when t ends; if t failed, it
// then logs what the pages wrote to their console and the exceptions they
// threw. opts add to the allocator's options (a window size, more flags).
func Start(t *testing.T, opts ...chromedp.ExecAllocatorOption) *Browser {
	t.Helper()
	all := append([]chromedp.ExecAllocatorOption{
		chromedp.ExecPath(Chromium(t)),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
	}, opts...)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), all...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	b := &Browser{}
	b.Page = &Page{T: t, b: b, ctx: ctx}
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		if t.Failed() {
			b.mu.Lock()
			defer b.mu.Unlock()
			for _, l := range b.logs {
				t.Logf("page: %s", l)
			}
		}
	})
	// The first action starts the browser; it has no timeout of its own
	// (one would stop the browser), so bound it from outside.
	started := make(chan error, 1)
	go func() {
		if err := b.listen(ctx); err != nil {
			started <- err
			return
		}
		started <- chromedp.Do(ctx)
	}()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("starting chromium: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("chromium did not start within 60 s")
	}
	return b
}

func (b *Browser) logf(format string, args ...any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.logs = append(b.logs, time.Now().Format("15:04:05.000")+" "+fmt.Sprintf(format, args...))
}

// Exceptions returns the exceptions the pages have thrown so far.
func (b *Browser) Exceptions() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, l := range b.logs {
		if strings.Contains(l, " exception ") {
			out = append(out, l)
		}
	}
	return out
}

// listen keeps the console output and the exceptions of the tab of ctx.
func (b *Browser) listen(ctx context.Context) error {
	return chromedp.Listen(ctx, func(ev any) {
		switch e := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			var parts []string
			for _, a := range e.Args {
				if len(a.Value) > 0 {
					parts = append(parts, string(a.Value))
				} else {
					parts = append(parts, a.Description)
				}
			}
			b.logf("console.%s %s", e.Type, strings.Join(parts, " "))
		case *runtime.EventExceptionThrown:
			d := e.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			b.logf("exception %s:%d %s", d.URL, d.LineNumber, msg)
		}
	})
}

// Open opens url in a new tab, closed when t ends.
func (b *Browser) Open(t *testing.T, url string) *Page {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx)
	t.Cleanup(cancel)
	p := &Page{T: t, b: b, ctx: ctx}
	if err := b.listen(ctx); err != nil {
		t.Fatalf("listening to the tab: %v", err)
	}
	ctxNav, cancelNav := context.WithTimeout(ctx, 30*time.Second)
	defer cancelNav()
	if err := chromedp.Do(ctxNav, chromedp.Navigate(url)); err != nil {
		t.Fatalf("navigate %s: %v", url, err)
	}
	return p
}

// Do runs actions in the tab, failing the test after timeout.
func (p *Page) Do(timeout time.Duration, actions ...chromedp.Action[chromedp.Void]) {
	p.T.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, timeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		p.T.Fatalf("in the page: %v", err)
	}
}

// Eval evaluates expr in the page and decodes its value into T (awaiting
// a promise), failing the test after timeout.
func Eval[T any](p *Page, timeout time.Duration, expr string) T {
	p.T.Helper()
	v, err := TryEval[T](p, timeout, expr)
	if err != nil {
		p.T.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// TryEval is Eval returning the error instead of failing the test.
func TryEval[T any](p *Page, timeout time.Duration, expr string) (T, error) {
	ctx, cancel := context.WithTimeout(p.ctx, timeout)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
}

// Poll evaluates the boolean expr every 50 ms until it is true or timeout
// has passed. It reports whether expr came true, and else the last
// evaluation's error (nil when expr was merely false), for the caller's
// failure message.
func (p *Page) Poll(timeout time.Duration, expr string) (bool, error) {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		ok, err := TryEval[bool](p, max(time.Until(deadline), time.Millisecond), "!!("+expr+")")
		if err == nil && ok {
			return true, nil
		}
		last = err
		time.Sleep(50 * time.Millisecond)
	}
	return false, last
}
