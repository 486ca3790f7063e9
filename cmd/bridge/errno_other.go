//go:build !windows

package main

import "syscall"

const (
	// addrInUse is what a listen on a taken port fails with: EADDRINUSE
	// (98 on Linux, 48 on macOS and the BSDs).
	addrInUse = syscall.EADDRINUSE
	// connRefused is what a dial to a port nothing listens on fails with.
	connRefused = syscall.ECONNREFUSED
)
