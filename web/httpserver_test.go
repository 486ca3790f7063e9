package web

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dccbridge/dccbridge/internal/pipelisten"
)

// serveOnePipe serves h with the bridge's http.Server on one net.Pipe and
// returns the client end; the server stops when the test's bubble ends it.
func serveOnePipe(t *testing.T, h http.Handler) (net.Conn, func()) {
	ln := pipelisten.New()
	srv := NewHTTPServer(h, nil)
	served := make(chan struct{})
	go func() { _ = srv.Serve(ln); close(served) }()
	client, err := ln.Dial(context.Background(), "", "")
	if err != nil {
		t.Fatal(err)
	}
	return client, func() {
		_ = client.Close()
		_ = ln.Close()
		_ = srv.Close()
		<-served
		time.Sleep(time.Second) // net/http's connection goroutine lingers 500 ms before it closes
	}
}

var okHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })

// An upgrade (or any request) with 1 MB of headers gets 431 and is not
// served.
func TestHTTPServerHeaderLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		client, stop := serveOnePipe(t, okHandler)
		defer stop()
		go func() {
			_, _ = io.WriteString(client, "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:8098\r\nUpgrade: websocket\r\nX-Junk: "+
				strings.Repeat("j", 1_000_000)+"\r\n\r\n")
		}()
		resp, err := http.ReadResponse(bufio.NewReader(client), nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("a request with 1 MB of headers got %d, want 431", resp.StatusCode)
		}
	})
}

// A keep-alive connection that sends one request, then 3 bytes of the
// next, then nothing, is closed once the idle timeout has passed; so is
// one that only stays idle.
func TestHTTPServerIdleConnectionsClosed(t *testing.T) {
	for _, tail := range []string{"GET", ""} {
		synctest.Test(t, func(t *testing.T) {
			client, stop := serveOnePipe(t, okHandler)
			defer stop()
			rd := bufio.NewReader(client)
			if _, err := io.WriteString(client, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:8098\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(rd, nil)
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("first request: %v %v", resp, err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			start := time.Now()
			if tail != "" {
				if _, err := io.WriteString(client, tail); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := rd.ReadByte(); err != io.EOF {
				t.Fatalf("read after %q and silence: %v, want the server to close (EOF)", tail, err)
			}
			if waited := time.Since(start); waited > IdleTimeout+ReadHeaderTimeout {
				t.Errorf("closed after %v, want within %v", waited, IdleTimeout+ReadHeaderTimeout)
			}
		})
	}
}
