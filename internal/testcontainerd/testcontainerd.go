// Package testcontainerd starts a real containerd (Debian's
// /usr/bin/containerd) for tests, with its root, state, config and
// sockets in a directory of the test's choosing, so several daemons (one
// per lab node) run side by side. Start runs one for the rest of a test;
// Command only writes the config and builds the command, for callers that
// start the daemon elsewhere (inside a lab network namespace).
package testcontainerd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
)

// readyTimeout bounds how long Start waits for the daemon to answer.
const readyTimeout = 30 * time.Second

// stopTimeout is how long Stop waits after SIGTERM before SIGKILL.
const stopTimeout = 10 * time.Second

// Daemon is a running containerd.
type Daemon struct {
	// Address is the gRPC socket path (containerd --address).
	Address string
	// Root and State are containerd's root and state directories.
	Root, State string
	// ConfigPath is the config.toml the daemon runs with.
	ConfigPath string

	layout Layout
	cmd    *exec.Cmd
	exited chan struct{}
}

// Start runs containerd with everything under dir (see Command) for the
// rest of t and returns once its socket answers. It skips t when not
// running as root or when containerd is not installed, and fails t (with
// the daemon's log) when the daemon exits or does not answer in time.
// The daemon is stopped in t.Cleanup; Stop may be called earlier.
func Start(t testing.TB, dir string) *Daemon {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("testcontainerd: containerd needs root (overlayfs mounts); not root")
	}
	for _, bin := range []string{Binary, CtrBinary} {
		if _, err := os.Stat(bin); err != nil {
			t.Skipf("testcontainerd: %s not found (apt-get install containerd): %v", bin, err)
		}
	}
	cmd, l, err := prepare(dir)
	if err != nil {
		t.Fatalf("testcontainerd: %v", err)
	}
	d := &Daemon{Address: l.Address, Root: l.Root, State: l.State, ConfigPath: l.ConfigPath, layout: l}
	logFile, err := os.Create(l.LogPath)
	if err != nil {
		t.Fatalf("testcontainerd: create log: %v", err)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("testcontainerd: start %s: %v", Binary, err)
	}
	logFile.Close()
	d.cmd, d.exited = cmd, make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(d.exited)
	}()
	t.Cleanup(func() {
		d.Stop()
		if t.Failed() {
			t.Logf("containerd %s log:\n%s", d.Address, d.Log())
		}
		if sd := SocketDir(l.Dir); sd != l.Dir {
			_ = os.RemoveAll(sd)
		}
	})
	if err := d.waitReady(); err != nil {
		d.Stop()
		t.Fatalf("testcontainerd: %v\ncontainerd log:\n%s", err, d.Log())
	}
	return d
}

// waitReady polls the daemon's version service until it answers, the
// daemon exits, or readyTimeout passes.
func (d *Daemon) waitReady() error {
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var lastErr error
	for {
		if _, err := os.Stat(d.Address); err == nil {
			lastErr = probe(ctx, d.Address)
			if lastErr == nil {
				return nil
			}
		} else {
			lastErr = err
		}
		select {
		case <-d.exited:
			return fmt.Errorf("containerd exited before answering on %s: %v", d.Address, d.cmd.ProcessState)
		case <-ctx.Done():
			return fmt.Errorf("containerd not answering on %s after %s: %v", d.Address, readyTimeout, lastErr)
		case <-tick.C:
		}
	}
}

// probe asks the daemon at address for its version once.
func probe(ctx context.Context, address string) error {
	c, err := client.New(address)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err = c.Version(ctx)
	return err
}

// Stop terminates the daemon (SIGTERM, then SIGKILL after stopTimeout)
// and waits for it. It is safe to call more than once.
func (d *Daemon) Stop() {
	if d.cmd == nil || d.cmd.Process == nil {
		return
	}
	select {
	case <-d.exited:
		return
	default:
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(stopTimeout):
		_ = d.cmd.Process.Kill()
		<-d.exited
	}
}

// Ctr runs /usr/bin/ctr --address d.Address with args and returns its
// combined output; the error carries the output too.
func (d *Daemon) Ctr(t testing.TB, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(CtrBinary, append([]string{"--address", d.Address}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			return out.String(), fmt.Errorf("ctr %v: %w: %s", args, err, out.String())
		}
		return out.String(), fmt.Errorf("run ctr %v: %w", args, err)
	}
	return out.String(), nil
}

// Log returns what the daemon has logged so far.
func (d *Daemon) Log() string {
	b, err := os.ReadFile(d.layout.LogPath)
	if err != nil {
		return fmt.Sprintf("(cannot read containerd log: %v)", err)
	}
	return string(b)
}
