package web_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/dccbridge/dccbridge/internal/bridgetest"
	"github.com/dccbridge/dccbridge/web"
)

// POST /rpc bodies held at once are bounded in bytes: while one 700 KB call
// waits for its host, a second gets 503 with Retry-After (the bound is
// 1 MiB here), and once the first is answered the next is served.
func TestRPCBodiesBounded(t *testing.T) {
	b := bridgetest.Start(t, nil, &web.Options{MaxMessage: 1 << 20, MaxRPCBytes: 1 << 20})
	host, _ := startHost(t, b, "open")
	big := strings.Repeat("x", 700<<10)
	body := func(id string) string {
		return `{"jsonrpc":"2.0","id":"` + id + `","method":"aftereffects.open","params":{"pad":"` + big + `"}}`
	}
	first := postAsync(context.Background(), b, body("first"))
	call := host.Expect(5*time.Second, func(m map[string]any) bool { return m["method"] == "open" })

	resp, msg := post(t, b, body("second"))
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("a second 700 KB POST while the first is held: %d %q (Retry-After %q), want 503 with Retry-After", resp.StatusCode, msg, resp.Header.Get("Retry-After"))
	}
	if resp, _ := post(t, b, `{"jsonrpc":"2.0","id":1,"method":"bridge.ping"}`); resp.StatusCode != 200 {
		t.Fatalf("a small POST while the first is held: %d, want 200", resp.StatusCode)
	}

	host.Send(`{"jsonrpc":"2.0","id":"` + call["id"].(string) + `","result":true}`)
	if r := waitResult(t, first); r.status != 200 || !strings.Contains(string(r.body), `"result":true`) {
		t.Fatalf("the first POST: %d %s", r.status, r.body)
	}
	third := postAsync(context.Background(), b, body("third"))
	call = host.Expect(5*time.Second, func(m map[string]any) bool { return m["method"] == "open" })
	host.Send(`{"jsonrpc":"2.0","id":"` + call["id"].(string) + `","result":3}`)
	if r := waitResult(t, third); r.status != 200 {
		t.Fatalf("the third POST after the first was answered: %d %s", r.status, r.body)
	}
}

// A client that announces a body and sends none holds nothing of the
// bound: a real call still gets through beside it.
func TestRPCSilentBodyHoldsNothing(t *testing.T) {
	b := bridgetest.Start(t, nil, &web.Options{MaxMessage: 1 << 20, MaxRPCBytes: 1 << 20})
	host, _ := startHost(t, b, "open")
	for range 4 {
		c, err := net.Dial("tcp", b.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "POST /rpc HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", b.Addr, 1<<20)
	}
	time.Sleep(100 * time.Millisecond) // the four requests are being read
	call := postAsync(context.Background(), b, `{"jsonrpc":"2.0","id":1,"method":"aftereffects.open","params":{"pad":"`+strings.Repeat("x", 700<<10)+`"}}`)
	m := host.Expect(5*time.Second, func(m map[string]any) bool { return m["method"] == "open" })
	host.Send(`{"jsonrpc":"2.0","id":"` + m["id"].(string) + `","result":true}`)
	if r := waitResult(t, call); r.status != 200 {
		t.Fatalf("a 700 KB call beside four silent bodies: %d %s, want 200", r.status, r.body)
	}
}
