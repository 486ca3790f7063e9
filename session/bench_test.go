package session_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"

	"github.com/coder/websocket"

	"github.com/dccbridge/dccbridge/internal/bridgetest"
	"github.com/dccbridge/dccbridge/session"
)

// BenchmarkRoutedCall measures a tool → bridge → host → bridge → tool round
// trip over loopback websockets, in one process (for profiling the router;
// cmd/bridgebench measures across processes against a raw relay).
func BenchmarkRoutedCall(b *testing.B) {
	for _, callers := range []int{1, 32} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			br := bridgetest.Start(b, &session.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, nil)
			ctx := context.Background()
			host, _, err := websocket.Dial(ctx, br.WSURL, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer host.CloseNow()
			host.Write(ctx, websocket.MessageText, []byte(`{"jsonrpc":"2.0","id":1,"method":"bridge.hello","params":{"app":"bench","instance":"h","methods":["echo"]}}`))
			if _, _, err := host.Read(ctx); err != nil {
				b.Fatal(err)
			}
			go func() { // echo host
				for {
					_, data, err := host.Read(ctx)
					if err != nil {
						return
					}
					var m struct {
						ID     json.RawMessage `json:"id"`
						Params json.RawMessage `json:"params"`
					}
					json.Unmarshal(data, &m)
					out := append(append(append(append([]byte(`{"jsonrpc":"2.0","id":`), m.ID...), `,"result":`...), m.Params...), '}')
					host.Write(ctx, websocket.MessageText, out)
				}
			}()
			payload := `{"payload":"` + string(make([]byte, 0)) + `xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`
			conns := make([]*websocket.Conn, callers)
			for i := range conns {
				c, _, err := websocket.Dial(ctx, br.WSURL, nil)
				if err != nil {
					b.Fatal(err)
				}
				defer c.CloseNow()
				conns[i] = c
			}
			b.ResetTimer()
			var wg sync.WaitGroup
			per := b.N/callers + 1
			for _, c := range conns {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < per; i++ {
						req := fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"bench.echo","params":%s}`, i, payload)
						if err := c.Write(ctx, websocket.MessageText, []byte(req)); err != nil {
							b.Error(err)
							return
						}
						if _, _, err := c.Read(ctx); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
		})
	}
}
