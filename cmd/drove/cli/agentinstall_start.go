package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/drove-project/drove/deploy/systemd"
)

// systemctl runs systemctl with args, returning its output in the error.
func systemctl(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "systemctl", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("systemctl %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// startUnit enables (and starts, or restarts when something changed) the
// agent's unit under this host's systemd.
func startUnit(ctx context.Context, g *Globals, changed, noStart bool) error {
	if err := systemctl(ctx, "daemon-reload"); err != nil {
		return err
	}
	if noStart {
		if err := systemctl(ctx, "enable", systemd.UnitName); err != nil {
			return err
		}
		fmt.Fprintf(g.Out, "enabled %s, not started (--no-start)\n", systemd.UnitName)
		return nil
	}
	if err := systemctl(ctx, "enable", "--now", systemd.UnitName); err != nil {
		return err
	}
	if changed {
		if err := systemctl(ctx, "restart", systemd.UnitName); err != nil {
			return err
		}
	}
	if err := systemctl(ctx, "is-active", "--quiet", systemd.UnitName); err != nil {
		return fmt.Errorf("%s is not active after start (see journalctl -u %s): %w", systemd.UnitName, systemd.UnitName, err)
	}
	fmt.Fprintf(g.Out, "%s enabled and running (journalctl -u %s)\n", systemd.UnitName, systemd.UnitName)
	return nil
}

// runningAgent returns the pid of the agent the layout's pid file names,
// if that process is still this layout's agent (pids are reused).
func runningAgent(l installLayout) (int, bool) {
	b, err := os.ReadFile(l.PID)
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, false
	}
	return pid, isAgentProcess(pid, l.Binary)
}

// isAgentProcess reports whether pid runs `binary agent …` and is not a
// zombie.
func isAgentProcess(pid int, binary string) bool {
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		// The state follows the command name in parentheses.
		if i := bytes.LastIndexByte(st, ')'); i >= 0 && bytes.HasPrefix(bytes.TrimLeft(st[i+1:], " "), []byte("Z")) {
			return false
		}
	}
	args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
	return len(args) >= 2 && args[0] == binary && args[1] == "agent"
}

// startDetached starts the agent as a process of its own session unless
// it already runs with the same files; a running agent is restarted when
// something changed. The agent must stay up for settle.
func startDetached(ctx context.Context, g *Globals, l installLayout, changed bool, settle time.Duration) error {
	if pid, ok := runningAgent(l); ok {
		if !changed {
			fmt.Fprintf(g.Out, "agent already running: pid %d, log %s\n", pid, l.Log)
			return nil
		}
		if err := stopPID(ctx, pid, l.Binary); err != nil {
			return err
		}
		fmt.Fprintf(g.Out, "stopped the old agent (pid %d)\n", pid)
	}
	logf, err := os.OpenFile(l.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("start agent: open log: %w", err)
	}
	defer logf.Close()
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return fmt.Errorf("start agent: %w", err)
	}
	defer devnull.Close()
	// Not CommandContext: the agent outlives this command.
	cmd := exec.Command(l.Binary, "agent", "--config", l.Config)
	cmd.Dir = "/"
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start agent %s: %w", l.Binary, err)
	}
	pid := cmd.Process.Pid
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	if err := os.WriteFile(l.PID, []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		cmd.Process.Kill()
		return fmt.Errorf("start agent: write pid file: %w", err)
	}
	timer := time.NewTimer(settle)
	defer timer.Stop()
	select {
	case err := <-exited:
		os.Remove(l.PID)
		return fmt.Errorf("%w (%v); log %s ends:\n%s", errAgentExited, err, l.Log, logTail(l.Log, 20))
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
	}
	fmt.Fprintf(g.Out, "agent started: pid %d, log %s\n", pid, l.Log)
	return nil
}

// logTail is the last n lines of a log file.
func logTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// stopPID stops the agent pid with SIGTERM (it leaves gossip), then
// SIGKILL if it is still there after 10 s.
func stopPID(ctx context.Context, pid int, binary string) error {
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("stop agent (pid %d): %w", pid, err)
	}
	if waitExit(ctx, pid, binary, 10*time.Second) {
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill agent (pid %d): %w", pid, err)
	}
	if !waitExit(ctx, pid, binary, 5*time.Second) {
		return fmt.Errorf("agent (pid %d) still runs after SIGKILL", pid)
	}
	return nil
}

// waitExit polls until pid is no longer the agent or d passes.
func waitExit(ctx context.Context, pid int, binary string, d time.Duration) bool {
	deadline := time.Now().Add(d)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for isAgentProcess(pid, binary) {
		if time.Now().After(deadline) {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-tick.C: // polling a process that is not our child
		}
	}
	return true
}
