//go:build !linux

package lab

import (
	"os/exec"
	"time"
)

// startWithTimerSlack starts cmd; timer slack is a Linux setting.
func startWithTimerSlack(cmd *exec.Cmd, _ time.Duration) error { return cmd.Start() }
