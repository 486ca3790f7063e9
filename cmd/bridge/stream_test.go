package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/sourcegraph/jsonrpc2"

	"github.com/dccbridge/dccbridge/rpc"
)

const streamReadLimit = 1 << 20

// serveWS starts a websocket server on 127.0.0.1 that runs handle for each
// connection, and returns its ws:// URL. Cleanup waits for the handlers.
func serveWS(t *testing.T, handle func(ctx context.Context, c *websocket.Conn)) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		wg.Add(1)
		defer wg.Done()
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			t.Errorf("accept: %v", err)
			return
		}
		defer c.CloseNow()
		c.SetReadLimit(streamReadLimit)
		handle(ctx, c)
	}))
	t.Cleanup(func() {
		cancel()
		srv.Close()
		wg.Wait()
	})
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}

// dialJSONRPC connects a sourcegraph/jsonrpc2 Conn to url over an
// objectStream.
func dialJSONRPC(t *testing.T, ctx context.Context, url string, h jsonrpc2.Handler) *jsonrpc2.Conn {
	t.Helper()
	c, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadLimit(streamReadLimit)
	jc := jsonrpc2.NewConn(ctx, newObjectStream(ctx, c, 5*time.Second), h)
	t.Cleanup(func() {
		jc.Close()
		<-jc.DisconnectNotify()
		c.CloseNow()
	})
	return jc
}

// A jsonrpc2 client calls a server that answers with raw JSON text, and
// nothing the server sends besides the answers (garbage, a batch, a binary
// frame, a request it cannot decode) disturbs the calls or the connection.
func TestObjectStreamCall(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	received := make(chan rpc.Message, 16)
	url := serveWS(t, func(ctx context.Context, c *websocket.Conn) {
		write := func(typ websocket.MessageType, b []byte) {
			if err := c.Write(ctx, typ, b); err != nil {
				t.Errorf("server write: %v", err)
			}
		}
		for {
			typ, b, err := c.Read(ctx)
			if err != nil {
				return
			}
			items, batch := rpc.Decode(b)
			if typ != websocket.MessageText || batch || len(items) != 1 || items[0].Err != nil {
				t.Errorf("server got %v %s: %+v", typ, b, items)
				return
			}
			m := items[0].Msg
			received <- *m
			if !m.IsRequest() || m.IsNotification() {
				continue
			}
			var res json.RawMessage
			switch m.Method {
			case "sum":
				var args []int
				if err := json.Unmarshal(m.Params, &args); err != nil {
					t.Errorf("sum params %s: %v", m.Params, err)
				}
				sum := 0
				for _, a := range args {
					sum += a
				}
				res = json.RawMessage(strconv.Itoa(sum))
			case "echo":
				res = m.Params
			}
			// Garbage first; each of these made a jsonrpc2 stream fail
			// (and the connection close) or would answer the call wrongly.
			write(websocket.MessageText, []byte("not json"))
			write(websocket.MessageText, []byte(`[1,2]`))
			write(websocket.MessageText, []byte(`{}`))
			write(websocket.MessageText, []byte(`{"jsonrpc":"2.0","id":1.5,"method":"evil"}`))
			write(websocket.MessageText, []byte(`{"jsonrpc":"2.0","id":{"x":1},"result":-1}`))
			write(websocket.MessageBinary, rpc.AppendResult(nil, m.ID, json.RawMessage(`-1`), nil))
			write(websocket.MessageText, rpc.AppendResult(nil, m.ID, res, nil))
		}
	})

	var (
		mu       sync.Mutex
		requests []string
	)
	jc := dialJSONRPC(t, ctx, url, jsonrpc2.HandlerWithError(func(_ context.Context, _ *jsonrpc2.Conn, req *jsonrpc2.Request) (any, error) {
		mu.Lock()
		defer mu.Unlock()
		requests = append(requests, req.Method)
		return nil, nil
	}))

	var sum int
	if err := jc.Call(ctx, "sum", []int{1, 2, 4}, &sum); err != nil {
		t.Fatalf("Call sum: %v", err)
	}
	if sum != 7 {
		t.Errorf("sum = %d, want 7", sum)
	}
	m := <-received
	if m.Method != "sum" || string(m.Params) != "[1,2,4]" || m.ID == nil || m.IsNotification() {
		t.Errorf("server received %+v", m)
	}

	// The connection is still up: a second call, with a string id the
	// server echoes from the raw bytes.
	id := jsonrpc2.ID{Str: `c-"1"`, IsString: true}
	if err := jc.Call(ctx, "sum", []int{10, 20}, &sum, jsonrpc2.PickID(id)); err != nil {
		t.Fatalf("second Call: %v", err)
	}
	if sum != 30 {
		t.Errorf("sum = %d, want 30", sum)
	}
	if m := <-received; string(m.ID) != `"c-\"1\""` {
		t.Errorf("server received id %s", m.ID)
	}

	// Messages above coder/websocket's default 32 KiB limit pass both ways.
	big := strings.Repeat("x", 100<<10)
	var echoed []string
	if err := jc.Call(ctx, "echo", []string{big}, &echoed); err != nil {
		t.Fatalf("echo: %v", err)
	}
	if len(echoed) != 1 || echoed[0] != big {
		t.Errorf("echo returned %d strings", len(echoed))
	}
	<-received

	if err := jc.Notify(ctx, "note", map[string]int{"a": 1}); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-received:
		if !m.IsNotification() || m.Method != "note" || string(m.Params) != `{"a":1}` {
			t.Errorf("server received %+v, want the notification", m)
		}
	case <-ctx.Done():
		t.Fatal("notification not received")
	}

	mu.Lock()
	defer mu.Unlock()
	if len(requests) != 0 {
		t.Errorf("client handler got requests %q; the server sent none it could decode", requests)
	}
}

// When the server closes the socket, a pending call returns an error
// instead of hanging.
func TestObjectStreamServerClose(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	url := serveWS(t, func(ctx context.Context, c *websocket.Conn) {
		if _, _, err := c.Read(ctx); err != nil {
			t.Errorf("server read: %v", err)
		}
		c.Close(4001, "replaced")
	})
	jc := dialJSONRPC(t, ctx, url, jsonrpc2.HandlerWithError(func(context.Context, *jsonrpc2.Conn, *jsonrpc2.Request) (any, error) {
		return nil, nil
	}))
	var res any
	err := jc.Call(ctx, "never_answered", nil, &res)
	if err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Call = %v, want the connection's close", err)
	}
	select {
	case <-jc.DisconnectNotify():
	case <-ctx.Done():
		t.Fatal("DisconnectNotify did not fire")
	}
}

// TestRPCCodesAreJSONRPC2s: rpc spells the specification's five codes as
// numbers (it imports only the standard library); they are the ones
// jsonrpc2 gives the client side, which compares them (call.go).
func TestRPCCodesAreJSONRPC2s(t *testing.T) {
	cases := []struct {
		name     string
		rpc      int64
		jsonrpc2 int64
	}{
		{"parse error", rpc.CodeParseError, jsonrpc2.CodeParseError},
		{"invalid request", rpc.CodeInvalidRequest, jsonrpc2.CodeInvalidRequest},
		{"method not found", rpc.CodeMethodNotFound, jsonrpc2.CodeMethodNotFound},
		{"invalid params", rpc.CodeInvalidParams, jsonrpc2.CodeInvalidParams},
		{"internal error", rpc.CodeInternalError, jsonrpc2.CodeInternalError},
	}
	for _, c := range cases {
		if c.rpc != c.jsonrpc2 {
			t.Errorf("%s: rpc %d, jsonrpc2 %d", c.name, c.rpc, c.jsonrpc2)
		}
	}
}
