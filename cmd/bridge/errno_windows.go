package main

import "syscall"

// Winsock's codes, which the standard library's syscall does not name (its
// EADDRINUSE and ECONNREFUSED are invented values no Winsock call returns);
// golang.org/x/sys/windows names them WSAEADDRINUSE and WSAECONNREFUSED.
const (
	// addrInUse is what a listen on a taken port fails with.
	addrInUse syscall.Errno = 10048
	// connRefused is what a dial to a port nothing listens on fails with.
	connRefused syscall.Errno = 10061
)
