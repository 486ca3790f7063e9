package main

import "errors"

// isAddrInUse reports whether err, from net.Listen, says the address is
// already taken. The errno differs by platform (addrInUse, set in
// addrinuse_windows.go and addrinuse_other.go): Windows reports Winsock's
// WSAEADDRINUSE, which syscall.EADDRINUSE does not match there.
func isAddrInUse(err error) bool {
	return errors.Is(err, addrInUse)
}
