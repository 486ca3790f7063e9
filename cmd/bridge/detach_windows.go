//go:build windows

package main

import (
	"os/exec"
	"syscall"
)

// detach starts cmd without the launcher's console and in a process group
// of its own, so that closing the launcher's window or its Ctrl+C leaves it
// running.
func detach(cmd *exec.Cmd) {
	const detachedProcess = 0x00000008 // DETACHED_PROCESS
	cmd.SysProcAttr = &syscall.SysProcAttr{CreationFlags: detachedProcess | syscall.CREATE_NEW_PROCESS_GROUP, HideWindow: true}
}
