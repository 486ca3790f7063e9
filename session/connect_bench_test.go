package session_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/dccbridge/dccbridge/internal/memconn"
	"github.com/dccbridge/dccbridge/session"
)

// BenchmarkConnectHello measures a connect, hello and leave with 0, 1,000
// and 9,000 other sessions connected (in memory, one of them subscribed to
// session.*): it should not grow with their number.
func BenchmarkConnectHello(b *testing.B) {
	for _, others := range []int{0, 1000, 9000} {
		b.Run(fmt.Sprintf("others=%d", others), func(b *testing.B) {
			r := session.New(session.Options{Logger: quietLogger(), MaxSessions: 20000, MaxUnhelloed: 20000})
			ctx := context.Background()
			join := func(i int, topics bool) *memconn.Peer {
				buffer := 4
				if topics { // it reads nothing: room for every event
					buffer = 1 << 16
				}
				conn, peer := memconn.New(memconn.Options{Buffer: buffer})
				go r.Serve(conn, session.Peer{Authorized: true, Remote: "mem"})
				_ = peer.Send([]byte(fmt.Sprintf(`{"jsonrpc":"2.0","id":1,"method":"bridge.hello","params":{"app":"maya","instance":"m-%d","methods":["export"]}}`, i)))
				if _, err := peer.Recv(ctx); err != nil {
					b.Fatal(err)
				}
				if topics {
					_ = peer.Send([]byte(`{"jsonrpc":"2.0","id":2,"method":"bridge.subscribe","params":{"topics":["session.*"]}}`))
				}
				return peer
			}
			join(-1, true)
			for i := range others {
				join(i, false)
			}
			b.ResetTimer()
			for i := range b.N {
				p := join(others+i, false)
				p.Close(session.CloseNormal, "")
			}
			b.StopTimer()
			_ = r.Shutdown(ctx)
		})
	}
}
