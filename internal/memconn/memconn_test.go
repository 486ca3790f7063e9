package memconn_test

import (
	"context"
	"errors"
	"io"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dccbridge/dccbridge/internal/memconn"
	"github.com/dccbridge/dccbridge/session"
)

// Messages cross both ways; what was written before a close is still read;
// each end sees the other's close code.
func TestMessagesAndCloses(t *testing.T) {
	ctx := context.Background()
	conn, peer := memconn.New(memconn.Options{})
	if err := peer.Send([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	if m, err := conn.Read(ctx); string(m) != "hi" || err != nil {
		t.Fatalf("bridge read %q, %v", m, err)
	}
	if err := conn.Write(ctx, []byte("bye")); err != nil {
		t.Fatal(err)
	}
	_ = conn.Close(session.CloseReplaced, "replaced")
	if m, err := peer.Recv(ctx); string(m) != "bye" || err != nil {
		t.Fatalf("peer read %q, %v; want the message written before the close", m, err)
	}
	var ce *session.CloseError
	if _, err := peer.Recv(ctx); !errors.As(err, &ce) || ce.Code != session.CloseReplaced {
		t.Fatalf("peer read error %v, want the bridge's close 4001", err)
	}

	conn, peer = memconn.New(memconn.Options{})
	peer.Close(session.CloseNormal, "done")
	if _, err := conn.Read(ctx); !errors.As(err, &ce) || ce.Code != session.CloseNormal {
		t.Fatalf("bridge read error %v, want the peer's close 1000", err)
	}

	conn, peer = memconn.New(memconn.Options{})
	peer.Drop()
	if _, err := conn.Read(ctx); !errors.Is(err, io.EOF) {
		t.Fatalf("bridge read error %v after a drop, want io.EOF", err)
	}
}

// A peer that does not read blocks the bridge's writes once its buffer is
// full; the write's deadline then drops the connection. A ping it does not
// answer reports ErrNoPong, or ErrReceiving while it is sending.
func TestBackpressureAndPing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		conn, peer := memconn.New(memconn.Options{Buffer: 2})
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		for i := range 2 {
			if err := conn.Write(ctx, []byte{'a' + byte(i)}); err != nil {
				t.Fatalf("write %d: %v", i, err)
			}
		}
		if err := conn.Write(ctx, []byte("c")); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("third write into a full buffer: %v, want the deadline", err)
		}
		select {
		case <-peer.Done():
		default:
			t.Fatal("a write that ran out of time did not drop the connection")
		}

		conn, peer = memconn.New(memconn.Options{})
		if err := conn.Ping(context.Background()); err != nil {
			t.Fatalf("ping: %v", err)
		}
		peer.SetPong(false)
		pctx, pcancel := context.WithTimeout(context.Background(), time.Second)
		defer pcancel()
		if err := conn.Ping(pctx); !errors.Is(err, session.ErrNoPong) {
			t.Fatalf("ping: %v, want ErrNoPong", err)
		}
		peer.SetSending(true)
		pctx2, pcancel2 := context.WithTimeout(context.Background(), time.Second)
		defer pcancel2()
		if err := conn.Ping(pctx2); !errors.Is(err, session.ErrReceiving) {
			t.Fatalf("ping: %v, want ErrReceiving", err)
		}
	})
}
