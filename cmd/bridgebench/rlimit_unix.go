//go:build unix

package main

import "syscall"

// raiseOpenFiles raises this process's soft limit of open files to its
// hard limit, so that it can hold thousands of connections.
func raiseOpenFiles() {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) == nil && l.Cur < l.Max {
		l.Cur = l.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}
