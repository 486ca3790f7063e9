package main

import "errors"

// The socket errors the CLI explains differ by platform: addrInUse and
// connRefused are set in errno_windows.go and errno_other.go, because
// Windows reports Winsock's codes, which the syscall package's EADDRINUSE
// and ECONNREFUSED do not match there.

// isAddrInUse reports whether err, from net.Listen, says the address is
// already taken.
func isAddrInUse(err error) bool { return errors.Is(err, addrInUse) }

// isConnRefused reports whether err, from a dial, says nothing listens
// there.
func isConnRefused(err error) bool { return errors.Is(err, connRefused) }
