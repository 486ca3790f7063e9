package main

import "syscall"

// addrInUse is Winsock's WSAEADDRINUSE (10048), what a listen on a taken
// port fails with on Windows. The standard library's syscall does not name
// it (its EADDRINUSE is an invented value no Winsock call returns); it is
// golang.org/x/sys/windows.WSAEADDRINUSE.
const addrInUse syscall.Errno = 10048
