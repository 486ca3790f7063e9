package main

import (
	"os/exec"
	"syscall"
)

// configureChild asks Linux to kill the child if the harness dies without
// cleaning up (SIGKILL, a crash). The harness's own subcommands also watch
// their lifeline; this covers the bridge binary, which does not.
func configureChild(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
