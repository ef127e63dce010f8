package sshpush

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

func TestRun(t *testing.T) {
	s := startSSHD(t, false)
	c := s.rootClient(t)
	ctx := context.Background()

	out, errOut, err := c.Run(ctx, "echo out; echo err >&2", nil)
	if err != nil || string(out) != "out\n" || string(errOut) != "err\n" {
		t.Fatalf("Run = %q, %q, %v", out, errOut, err)
	}
	out, _, err = c.Run(ctx, "cat; echo end", strings.NewReader("line1\nline2"))
	if err != nil || string(out) != "line1\nline2end\n" {
		t.Fatalf("cat = %q, %v", out, err)
	}
	_, _, err = c.Run(ctx, "echo why >&2; exit 3", nil)
	var exit *ssh.ExitError
	if !errors.As(err, &exit) || exit.ExitStatus() != 3 || !strings.Contains(err.Error(), "why") ||
		!strings.Contains(err.Error(), c.Target().Dest()) {
		t.Fatalf("exit 3: err = %v", err)
	}
}

func TestRunCancelClosesSession(t *testing.T) {
	s := startSSHD(t, false)
	c := s.rootClient(t)
	marker := filepath.Join(t.TempDir(), "started")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	// A recognisable sleep, so the test can tell that it was killed.
	go func() {
		_, _, err := c.Run(ctx, "touch "+marker+"; exec sleep 31.4159", nil)
		done <- err
	}()
	waitFor(t, 10*time.Second, "command started", func() bool { _, err := os.Stat(marker); return err == nil })
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	case <-time.After(closeWait + 2*time.Second):
		t.Fatal("Run did not return after cancel")
	}
	waitFor(t, 10*time.Second, "remote sleep killed", func() bool { return len(findProcs(t, "sleep", "31.4159")) == 0 })
	// The connection is still usable.
	if out, _, err := c.Run(context.Background(), "echo ok", nil); err != nil || string(out) != "ok\n" {
		t.Fatalf("after cancel: %q, %v", out, err)
	}
}

func TestRunPasswordUserThroughSudo(t *testing.T) {
	s := startSSHD(t, true)
	user, password := throwawayUser(t)
	allowSudo(t, user, false)
	ctx := context.Background()

	tg := s.target(user)
	tg.Password = password
	c := s.dial(t, tg)
	out, _, err := c.Run(ctx, "id -u", nil)
	if err != nil || strings.TrimSpace(string(out)) != "0" {
		t.Fatalf("id -u through sudo = %q, %v", out, err)
	}
	// The password goes to sudo, not to the command.
	out, _, err = c.Run(ctx, "cat", strings.NewReader("data\n"))
	if err != nil || string(out) != "data\n" {
		t.Fatalf("cat through sudo = %q, %v", out, err)
	}

	// Key login without a password: sudo -n cannot ask.
	ktg := s.target(user)
	ktg.KeyFile = s.newAuthorizedKey(t, user)
	kc := s.dial(t, ktg)
	if _, _, err := kc.Run(ctx, "id -u", nil); !errors.Is(err, ErrSudo) || !strings.Contains(err.Error(), "needs a password for "+user) {
		t.Fatalf("key login, password sudo: err = %v", err)
	}

	// A wrong password is the login's problem, named as such.
	bad := s.target(user)
	bad.Password = "wrong"
	_, err = Dial(ctx, bad, s.options(t))
	if !errors.Is(err, ErrAuthRejected) || err.Error() != "ssh "+user+"@127.0.0.1:"+strconv.Itoa(s.port)+": password rejected" {
		t.Fatalf("wrong password: err = %v", err)
	}
}

func TestRunPasswordUserNopasswdSudo(t *testing.T) {
	s := startSSHD(t, true)
	user, password := throwawayUser(t)
	allowSudo(t, user, true)
	ctx := context.Background()
	tg := s.target(user)
	tg.Password = password
	c := s.dial(t, tg)
	// sudo does not read the password here: the wrapper must eat it.
	out, _, err := c.Run(ctx, "id -u; cat", strings.NewReader("data\n"))
	if err != nil || string(out) != "0\ndata\n" {
		t.Fatalf("NOPASSWD sudo = %q, %v", out, err)
	}
	// Upload through sudo leaves a root-owned file.
	dst := filepath.Join(t.TempDir(), "f")
	if err := c.Upload(ctx, strings.NewReader("hello"), 5, dst, 0o644); err != nil {
		t.Fatalf("upload through sudo: %v", err)
	}
	if b, err := os.ReadFile(dst); err != nil || string(b) != "hello" {
		t.Fatalf("uploaded %q, %v", b, err)
	}

	// Without any sudo rule the error says so.
	os.Remove(sudoersFile(user))
	if _, _, err := c.Run(ctx, "true", nil); !errors.Is(err, ErrSudo) || !strings.Contains(err.Error(), user) {
		t.Fatalf("no sudoers rule: err = %v", err)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// findProcs lists the pids whose argv starts with argv.
func findProcs(t *testing.T, argv ...string) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		got := strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
		if len(got) >= len(argv) && strings.Join(got[:len(argv)], "\x00") == strings.Join(argv, "\x00") {
			pids = append(pids, pid)
		}
	}
	return pids
}
