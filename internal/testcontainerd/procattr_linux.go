package testcontainerd

import "syscall"

// sysProcAttr makes containerd die with the test process, so a crashed
// test leaves no containerd behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
