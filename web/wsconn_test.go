package web

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dccbridge/dccbridge/internal/pipelisten"
	"github.com/dccbridge/dccbridge/session"
)

// rawClient is a websocket client written by hand over net.Pipe, so a test
// can send one frame slowly, the way a browser sends a large message: a
// single frame, with no pong until it is written.
type rawClient struct {
	conn net.Conn
	rd   *bufio.Reader
}

// acceptOverPipe upgrades a raw client through the adapter and returns
// both ends; cleanup ends them. early is sent in the same write as the
// upgrade request, before the client has read the server's answer.
func acceptOverPipe(t *testing.T, early ...byte) (*wsConn, *rawClient, func()) {
	ln := pipelisten.New()
	stop := make(chan struct{})
	accepted := make(chan *wsConn, 1)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := acceptWS(w, r, nil)
		if err != nil {
			t.Errorf("accept: %v", err)
			return
		}
		c.ws.SetReadLimit(16 << 20)
		accepted <- c
		<-stop
		_ = c.CloseNow()
	})}
	served := make(chan struct{})
	go func() { _ = srv.Serve(ln); close(served) }()
	client, err := ln.Dial(context.Background(), "", "")
	if err != nil {
		t.Fatal(err)
	}

	rc := &rawClient{conn: client, rd: bufio.NewReader(client)}
	req := "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:8098\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := client.Write(append([]byte(req), early...)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(rc.rd, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	c := <-accepted
	return c, rc, func() {
		close(stop)
		_ = client.Close()
		_ = ln.Close()
		_ = srv.Close()
		<-served
	}
}

// header writes a masked frame header (mask key 0, so the payload goes as
// it is) for a final frame of opcode and length n.
func (c *rawClient) header(opcode byte, n int) error {
	_, err := c.conn.Write(frameHeader(opcode, n))
	return err
}

func frameHeader(opcode byte, n int) []byte {
	h := make([]byte, 14)
	h[0] = 0x80 | opcode
	h[1] = 0x80 | 127
	binary.BigEndian.PutUint64(h[2:10], uint64(n))
	return h
}

// A client may send its first message before it has read the upgrade's
// answer; the bytes net/http read past the request are the start of what
// the session reads, also when they are more than the adapter's buffer.
func TestWSConnKeepsBytesSentWithTheUpgrade(t *testing.T) {
	for _, size := range []int{40, 3 * wsReadBuffer} {
		synctest.Test(t, func(t *testing.T) {
			msg := []byte(`{"jsonrpc":"2.0","method":"bridge.hello","params":{"pad":"` + strings.Repeat("x", size) + `"}}`)
			c, client, cleanup := acceptOverPipe(t, append(frameHeader(0x1, len(msg)), msg...)...)
			defer cleanup()
			go client.discard()
			got, err := c.Read(context.Background())
			if err != nil || string(got) != string(msg) {
				t.Fatalf("first message (%d bytes sent with the upgrade): %d bytes, %v; want it whole", len(msg), len(got), err)
			}
		})
	}
}

// discard reads and drops what the server sends (its pings) until the
// connection ends.
func (c *rawClient) discard() { _, _ = io.Copy(io.Discard, c.rd) }

// While a 1 MiB message arrives in one frame over 32 s, a ping the peer
// cannot answer reports ErrReceiving, not ErrNoPong; the message arrives
// whole; a ping to a peer that sends nothing and never answers reports
// ErrNoPong; a binary message is a Violation with 1003.
func TestWSConnPingWhileReceiving(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, client, cleanup := acceptOverPipe(t)
		defer cleanup()
		go client.discard()

		const size, chunk = 1 << 20, 32 << 10
		read := make(chan []byte, 1)
		go func() {
			msg, err := c.Read(context.Background())
			if err != nil {
				t.Errorf("read: %v", err)
			}
			read <- msg
		}()
		go func() {
			if err := client.header(0x1, size); err != nil {
				t.Errorf("header: %v", err)
				return
			}
			part := []byte(strings.Repeat("x", chunk))
			for range size / chunk {
				time.Sleep(time.Second)
				if _, err := client.conn.Write(part); err != nil {
					t.Errorf("payload: %v", err)
					return
				}
			}
		}()

		time.Sleep(2 * time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		err := c.Ping(ctx)
		cancel()
		if !errors.Is(err, session.ErrReceiving) {
			t.Fatalf("ping while a message arrives: %v, want ErrReceiving", err)
		}
		if msg := <-read; len(msg) != size {
			t.Fatalf("read %d bytes, want %d", len(msg), size)
		}

		ctx, cancel = context.WithTimeout(context.Background(), 15*time.Second)
		err = c.Ping(ctx)
		cancel()
		if !errors.Is(err, session.ErrNoPong) {
			t.Fatalf("ping to a silent peer: %v, want ErrNoPong", err)
		}

		go func() {
			if err := client.header(0x2, 3); err == nil {
				_, _ = client.conn.Write([]byte("bin"))
			}
		}()
		_, err = c.Read(context.Background())
		var v *session.Violation
		if !errors.As(err, &v) || v.Code != session.CloseUnsupportedData {
			t.Fatalf("binary message: %v, want a Violation with 1003", err)
		}
	})
}
