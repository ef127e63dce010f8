package testregistry

import "syscall"

// sysProcAttr makes the registry die with the test process, so a crashed
// test leaves no registry behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
