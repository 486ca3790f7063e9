package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"syscall"
	"testing"
)

// TestAddrInUseErrno: the platform file uses the number the platform's
// listen fails with: Winsock's WSAEADDRINUSE on Windows, EADDRINUSE
// elsewhere.
func TestAddrInUseErrno(t *testing.T) {
	want := syscall.EADDRINUSE
	if runtime.GOOS == "windows" {
		want = syscall.Errno(10048) // WSAEADDRINUSE
	}
	if addrInUse != want {
		t.Fatalf("on %s addrInUse = %d, want %d", runtime.GOOS, uintptr(addrInUse), uintptr(want))
	}
}

// TestIsAddrInUse: the platform's errno, wrapped as net.Listen wraps it, is
// recognised; other listen failures are not.
func TestIsAddrInUse(t *testing.T) {
	addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8098}
	// listenErr wraps err as net.Listen does when bind fails.
	listenErr := func(err error) error {
		return &net.OpError{Op: "listen", Net: "tcp", Addr: addr, Err: &os.SyscallError{Syscall: "bind", Err: err}}
	}
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"listen: bind: address in use", listenErr(addrInUse), true},
		{"wrapped again with %w", fmt.Errorf("serve: %w", listenErr(addrInUse)), true},
		{"the bare errno", addrInUse, true},
		{"listen: bind: connection refused", listenErr(syscall.ECONNREFUSED), false},
		{"listen: bind: Winsock's connection refused (10061)", listenErr(syscall.Errno(10061)), false},
		{"listen: bind: permission denied", listenErr(syscall.EACCES), false},
		{"listen: bind: address not available", listenErr(syscall.EADDRNOTAVAIL), false},
		{"listen: a bad address", &net.OpError{Op: "listen", Net: "tcp", Err: &net.AddrError{Err: "missing port in address", Addr: "127.0.0.1"}}, false},
		{"only the words", errors.New("bind: address already in use"), false},
		{"nil", nil, false},
	}
	for _, c := range cases {
		if got := isAddrInUse(c.err); got != c.want {
			t.Errorf("%s: isAddrInUse(%v) = %v, want %v", c.name, c.err, got, c.want)
		}
	}
}

// TestIsAddrInUseListen: a real second listen on a port taken on this
// machine fails with an error isAddrInUse recognises, whatever the OS the
// test runs on.
func TestIsAddrInUseListen(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ln2, err := net.Listen("tcp", ln.Addr().String())
	if err == nil {
		ln2.Close()
		t.Fatalf("a second listen on %s succeeded", ln.Addr())
	}
	if !isAddrInUse(err) {
		t.Fatalf("isAddrInUse(%#v) = false for a second listen on %s: %v", err, ln.Addr(), err)
	}
}

// TestIsConnRefused: the platform's errno for a refused dial is the one
// Windows (Winsock's WSAECONNREFUSED) or the others use, a real dial to a
// closed port on this machine is recognised, and other dial errors are not.
func TestIsConnRefused(t *testing.T) {
	want := syscall.ECONNREFUSED
	if runtime.GOOS == "windows" {
		want = syscall.Errno(10061) // WSAECONNREFUSED
	}
	if connRefused != want {
		t.Fatalf("on %s connRefused = %d, want %d", runtime.GOOS, uintptr(connRefused), uintptr(want))
	}
	dialErr := &net.OpError{Op: "dial", Net: "tcp", Err: &os.SyscallError{Syscall: "connect", Err: connRefused}}
	if !isConnRefused(fmt.Errorf("dial: %w", dialErr)) {
		t.Errorf("isConnRefused(%v) = false", dialErr)
	}
	if isConnRefused(&net.OpError{Op: "dial", Net: "tcp", Err: &os.SyscallError{Syscall: "connect", Err: addrInUse}}) {
		t.Error("isConnRefused of an address-in-use error = true")
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	conn, err := net.Dial("tcp", addr)
	if err == nil {
		conn.Close()
		t.Fatalf("a dial to %s, just closed, succeeded", addr)
	}
	if !isConnRefused(err) {
		t.Fatalf("isConnRefused(%v) = false for a dial to a closed port", err)
	}
}
