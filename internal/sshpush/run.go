package sshpush

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// closeWait bounds how long a cancelled call waits for the server to
// confirm that the session is closed.
const closeWait = 5 * time.Second

// Run runs cmd on the host with /bin/sh semantics, as root: a user other
// than root goes through `sudo -S -p ”` fed the password, or `sudo -n`
// when logged in with a key. stdin (may be nil) is the command's input.
// A non-zero exit returns an error that wraps *ssh.ExitError and quotes
// the end of stderr; a sudo failure matches ErrSudo. Cancelling ctx
// signals the command and closes the session.
//
// With a sudo password, sudo reads the password as the first line of
// input; if the password is wrong sudo retries with the following lines.
func (c *Client) Run(ctx context.Context, cmd string, stdin io.Reader) (stdout, stderr []byte, err error) {
	script, in := c.privileged(cmd, stdin)
	r, err := c.exec(ctx, script, in, false)
	if err != nil {
		return r.stdout, r.stderr, c.runError(cmd, r, err)
	}
	return r.stdout, r.stderr, nil
}

// privileged wraps cmd so that it runs as root, and prefixes stdin with
// the sudo password where sudo will read it.
func (c *Client) privileged(cmd string, stdin io.Reader) (string, io.Reader) {
	if c.target.user() == "root" {
		return cmd, stdin
	}
	if c.target.Password == "" {
		return "sudo -n sh -c " + shellQuote(cmd), stdin
	}
	// The password is always the first line. When sudo will not ask for
	// it (NOPASSWD, or credentials cached) the shell eats that line
	// itself, so the command sees only its own input. -k makes the asking
	// sudo ignore a cache that expired between the two calls.
	wrapper := `if sudo -n true 2>/dev/null; then IFS= read -r _; exec sudo -n sh -c "$1"; ` +
		`else exec sudo -k -S -p '' sh -c "$1"; fi`
	script := "sh -c " + shellQuote(wrapper) + " drove-sudo " + shellQuote(cmd)
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	return script, io.MultiReader(strings.NewReader(c.target.Password+"\n"), stdin)
}

// result is what a finished session left.
type result struct {
	stdout, stderr []byte
	// stdinErr is the error reading stdin, when exec waited for it.
	stdinErr error
}

// exec runs script in a new session. With waitStdin it also waits for
// stdin to be copied (an upload must know whether all bytes were read).
func (c *Client) exec(ctx context.Context, script string, stdin io.Reader, waitStdin bool) (result, error) {
	var r result
	sess, err := c.conn.NewSession()
	if err != nil {
		return r, fmt.Errorf("open session: %w", err)
	}
	defer sess.Close()
	var out bytes.Buffer
	errb := &stderrBuffer{}
	sess.Stdout = &out
	sess.Stderr = errb
	var w io.WriteCloser
	if stdin != nil {
		if w, err = sess.StdinPipe(); err != nil {
			return r, fmt.Errorf("open stdin: %w", err)
		}
	}
	// sshd makes the command's shell a session and process group leader;
	// its pid lets a cancel stop the whole group.
	if err := sess.Start("echo \"" + pgidPrefix + "$$\" >&2\n" + script); err != nil {
		return r, fmt.Errorf("start command: %w", err)
	}
	copied := make(chan error, 1)
	if stdin != nil {
		// Not part of the session's own copying: Wait must not hang on a
		// reader the command never drains.
		go func() {
			_, err := io.Copy(w, stdin)
			w.Close()
			copied <- err
		}()
	} else {
		copied <- nil
	}
	waited := make(chan error, 1)
	go func() { waited <- sess.Wait() }()

	select {
	case err = <-waited:
	case <-ctx.Done():
		// sshd refuses signals to sessions it does not run with privilege
		// separation (root logins), hence the kill through a new session.
		sess.Signal(ssh.SIGTERM)
		if pgid := errb.pgid(); pgid > 1 {
			c.killGroup(pgid)
		}
		sess.Close()
		select {
		case <-waited:
		case <-time.After(closeWait):
			// The buffers may still be written to: return none of them.
			return r, ctx.Err()
		}
		return result{stdout: out.Bytes(), stderr: errb.bytes()}, ctx.Err()
	}
	r = result{stdout: out.Bytes(), stderr: errb.bytes()}
	if waitStdin {
		select {
		case r.stdinErr = <-copied:
		case <-ctx.Done():
			return r, ctx.Err()
		}
	}
	return r, err
}

// killGroup sends SIGTERM to a remote process group, as root.
func (c *Client) killGroup(pgid int) {
	ctx, cancel := context.WithTimeout(context.Background(), closeWait)
	defer cancel()
	script, in := c.privileged("kill -TERM -- -"+strconv.Itoa(pgid)+" 2>/dev/null || true", nil)
	if _, err := c.exec(ctx, script, in, false); err != nil {
		c.log.Warn("stop cancelled remote command", "dest", c.target.Dest(), "pgid", pgid, "err", err)
	}
}

// pgidPrefix starts the line by which a remote shell reports its pid.
const pgidPrefix = "drove-pgid="

// stderrBuffer collects a session's stderr, less the first line when it
// is the pgid report.
type stderrBuffer struct {
	mu       sync.Mutex
	head     []byte
	headDone bool
	group    int
	buf      bytes.Buffer
}

func (b *stderrBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.headDone {
		return b.buf.Write(p)
	}
	b.head = append(b.head, p...)
	i := bytes.IndexByte(b.head, '\n')
	if i < 0 {
		return len(p), nil
	}
	if v, ok := strings.CutPrefix(string(b.head[:i]), pgidPrefix); ok {
		b.group, _ = strconv.Atoi(v)
		b.buf.Write(b.head[i+1:])
	} else {
		b.buf.Write(b.head)
	}
	b.head, b.headDone = nil, true
	return len(p), nil
}

func (b *stderrBuffer) pgid() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.group
}

func (b *stderrBuffer) bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.headDone {
		return append([]byte(nil), b.head...)
	}
	return append([]byte(nil), b.buf.Bytes()...)
}

// runError describes a failed command: a sudo failure as ErrSudo, a
// non-zero exit with the end of stderr.
func (c *Client) runError(cmd string, r result, err error) error {
	dest := c.target.Dest()
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("ssh %s: run %s: %w", dest, shortCmd(cmd), err)
	}
	if sudoErr := c.sudoError(r.stderr); sudoErr != nil {
		return fmt.Errorf("ssh %s: %w", dest, sudoErr)
	}
	var exit *ssh.ExitError
	if errors.As(err, &exit) {
		if tail := lastLines(r.stderr, 3); tail != "" {
			return fmt.Errorf("ssh %s: run %s: exit status %d: %s: %w", dest, shortCmd(cmd), exit.ExitStatus(), tail, err)
		}
		return fmt.Errorf("ssh %s: run %s: exit status %d: %w", dest, shortCmd(cmd), exit.ExitStatus(), err)
	}
	return fmt.Errorf("ssh %s: run %s: %w", dest, shortCmd(cmd), err)
}

// sudoError recognises sudo's own complaints in stderr.
func (c *Client) sudoError(stderr []byte) error {
	if c.target.user() == "root" {
		return nil
	}
	s := string(stderr)
	u := c.target.user()
	switch {
	case strings.Contains(s, "a password is required"):
		return fmt.Errorf("sudo needs a password for %s and none was given (-p): %w", u, ErrSudo)
	case strings.Contains(s, "incorrect password") || strings.Contains(s, "Sorry, try again"):
		return fmt.Errorf("sudo rejected the password of %s: %w", u, ErrSudo)
	case strings.Contains(s, "not in the sudoers file") || strings.Contains(s, "is not allowed to run sudo"):
		return fmt.Errorf("%s may not use sudo: %w", u, ErrSudo)
	case strings.Contains(s, "sudo: not found") || strings.Contains(s, "sudo: command not found"):
		return fmt.Errorf("sudo is not installed, and %s is not root: %w", u, ErrSudo)
	}
	return nil
}

// shortCmd is the first line of cmd, cut to a readable length.
func shortCmd(cmd string) string {
	if i := strings.IndexByte(cmd, '\n'); i >= 0 {
		cmd = cmd[:i] + " ..."
	}
	if len(cmd) > 80 {
		cmd = cmd[:77] + "..."
	}
	return fmt.Sprintf("%q", cmd)
}

// lastLines returns the last n non-empty lines of b, joined by "; ".
func lastLines(b []byte, n int) string {
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "; ")
}
