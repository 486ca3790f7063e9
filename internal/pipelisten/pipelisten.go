// Package pipelisten is a net.Listener whose connections are net.Pipe
// ends, so that an http.Server and its clients run inside a
// testing/synctest bubble, where loopback sockets cannot.
package pipelisten

import (
	"context"
	"net"
	"sync"
)

// Listener hands the server end of each Dial to Accept. Safe for
// concurrent use.
type Listener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

// New returns an open Listener.
func New() *Listener {
	return &Listener{conns: make(chan net.Conn), done: make(chan struct{})}
}

// Accept returns the server end of the next Dial.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close makes Accept and Dial fail from now on; safe to call twice.
func (l *Listener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

// Addr is 127.0.0.1:8098, a loopback address the bridge's Host check
// admits.
func (l *Listener) Addr() net.Addr { return addr{} }

// Dial makes a pipe, hands its server end to Accept and returns the client
// end; it has the signature of http.Transport.DialContext.
func (l *Listener) Dial(ctx context.Context, _, _ string) (net.Conn, error) {
	client, server := net.Pipe()
	select {
	case l.conns <- server:
		return client, nil
	case <-l.done:
		return nil, net.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

type addr struct{}

func (addr) Network() string { return "pipe" }
func (addr) String() string  { return "127.0.0.1:8098" }
