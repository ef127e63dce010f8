package lab

import (
	"fmt"
	"os/exec"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// startWithTimerSlack starts cmd with the given timer slack (0: this
// process's). A forked process inherits its parent thread's slack and
// keeps it across exec, so cmd is started from a locked thread whose slack
// is set for the fork and then put back. A thread whose slack cannot be
// put back stays locked, so nothing else runs on it: the runtime ends it
// with its goroutine (or parks it for good if it is the main thread).
func startWithTimerSlack(cmd *exec.Cmd, slack time.Duration) error {
	if slack <= 0 {
		return cmd.Start()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		old, err := unix.PrctlRetInt(unix.PR_GET_TIMERSLACK, 0, 0, 0, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("read timer slack: %w", err)
			return
		}
		if err := unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(slack.Nanoseconds()), 0, 0, 0); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("set timer slack %v: %w", slack, err)
			return
		}
		err = cmd.Start()
		if unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(old), 0, 0, 0) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}
