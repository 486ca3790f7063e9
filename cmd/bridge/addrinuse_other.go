//go:build !windows

package main

import "syscall"

// addrInUse is what a listen on a taken port fails with: EADDRINUSE (98 on
// Linux, 48 on macOS and the BSDs).
const addrInUse = syscall.EADDRINUSE
