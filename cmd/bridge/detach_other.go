//go:build !windows

package main

import (
	"os/exec"
	"syscall"
)

// detach makes cmd a process of its own session, so that closing the
// launcher's terminal or killing its process group leaves it running.
func detach(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
}
