package web_test

import (
	"context"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/dccbridge/dccbridge/internal/bridgetest"
)

// Invalid UTF-8 inside a JSON string is never forwarded: on a websocket the
// sender's connection is failed with 1007 and a reason (RFC 6455 §8.1) and
// the host receives nothing; POST /rpc answers a parse error with id null.
func TestInvalidUTF8NeverForwarded(t *testing.T) {
	b := bridgetest.Start(t, nil, nil)
	host, _ := startHost(t, b, "open")
	tool := bridgetest.Dial(t, b.WSURL, nil)
	tool.Hello(map[string]any{"app": "pipeline", "kind": "tool"})

	poison := []byte("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"aftereffects.open\",\"params\":{\"path\":\"sh010_\xff\xfe.aep\"}}")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := tool.Conn.Write(ctx, websocket.MessageText, poison); err != nil {
		t.Fatal(err)
	}
	if code := tool.Closed(5 * time.Second); code != websocket.StatusInvalidFramePayloadData {
		t.Fatalf("the sender's connection ended with %d, want 1007", code)
	}
	// The host is still there and got nothing of it: the next thing it
	// reads is the answer to its own ping.
	host.Send(`{"jsonrpc":"2.0","id":"after","method":"bridge.ping"}`)
	if r := host.Read(); r["id"] != "after" || r["result"] == nil {
		t.Fatalf("the host's next message is %v, want its ping's reply and nothing before it", r)
	}

	resp, body := post(t, b, string(poison))
	m := decodeObject(t, body)
	e, _ := m["error"].(map[string]any)
	if resp.StatusCode != 200 || e == nil || e["code"] != float64(-32700) || m["id"] != nil {
		t.Fatalf("POST /rpc with invalid UTF-8: %d %s, want a -32700 with id null", resp.StatusCode, body)
	}
}
