package sshpush

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/ssh"
)

// Defaults of InstallSpec.
const (
	DefaultRemoteBinary = "/usr/local/bin/drove"
	DefaultDataDir      = "/var/lib/drove"
	DefaultSettle       = time.Second
)

// InstallSpec says what InstallAgent puts on a host.
type InstallSpec struct {
	// Binary is the local path of the drove binary (for the host's
	// architecture).
	Binary string
	// RemoteBinary is where it goes. Default DefaultRemoteBinary.
	RemoteBinary string
	// DataDir is the agent's data directory, created with mode 0700; it
	// also holds the pid file and the install stamp. Default
	// DefaultDataDir.
	DataDir string
	// Args are the arguments after the binary, e.g. "--data-dir", dir,
	// "agent", "--token-file", file, "--join", addr.
	Args []string
	// Token is the content of the token file; nil writes none.
	Token []byte
	// TokenFile is where Token goes, mode 0600. Default <DataDir>/token.
	TokenFile string
	// LogFile receives the agent's output. Default <DataDir>/agent.log.
	LogFile string
	// Settle is how long the started agent must stay alive to count as
	// running. Default DefaultSettle.
	Settle time.Duration
}

func (s *InstallSpec) defaults() error {
	if s.Binary == "" {
		return errors.New("no local binary given")
	}
	if s.RemoteBinary == "" {
		s.RemoteBinary = DefaultRemoteBinary
	}
	if s.DataDir == "" {
		s.DataDir = DefaultDataDir
	}
	if s.TokenFile == "" {
		s.TokenFile = path.Join(s.DataDir, "token")
	}
	if s.LogFile == "" {
		s.LogFile = path.Join(s.DataDir, "agent.log")
	}
	if s.Settle <= 0 {
		s.Settle = DefaultSettle
	}
	for name, p := range map[string]string{"remote binary": s.RemoteBinary, "data directory": s.DataDir,
		"token file": s.TokenFile, "log file": s.LogFile} {
		if !path.IsAbs(p) || path.Clean(p) != p || p == "/" || strings.ContainsFunc(p, isControl) {
			return fmt.Errorf("%s %q must be an absolute, clean path", name, p)
		}
	}
	for _, a := range s.Args {
		if !utf8.ValidString(a) || strings.ContainsRune(a, 0) {
			return fmt.Errorf("agent argument %q is not valid UTF-8 text", a)
		}
	}
	return nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// InstallAgent makes the host run the agent described by spec, and is
// idempotent: the binary is uploaded only when its sha256 differs, the
// token only when it changed, and an agent already running with the same
// binary, arguments and token is left alone; otherwise the one agent is
// restarted. With systemd (/run/systemd/system exists) the agent runs as
// the unit drove-agent.service, enabled at boot; without, as a detached
// process (setsid, nohup) whose pid is in <DataDir>/agent.pid. Either way
// the agent must still be alive after spec.Settle, or the error matches
// ErrAgentNotRunning and quotes the end of its log.
func (c *Client) InstallAgent(ctx context.Context, spec InstallSpec) error {
	dest := c.target.Dest()
	if err := spec.defaults(); err != nil {
		return fmt.Errorf("ssh %s: install agent: %w", dest, err)
	}
	binSum, binSize, err := fileSHA256(spec.Binary)
	if err != nil {
		return fmt.Errorf("ssh %s: install agent: %w", dest, err)
	}
	if _, _, err := c.Run(ctx, "mkdir -p "+shellQuote(spec.DataDir)+" && chmod 700 "+shellQuote(spec.DataDir), nil); err != nil {
		return fmt.Errorf("install agent: create data directory: %w", err)
	}
	if err := c.ensureFile(ctx, binSum, binSize, spec.RemoteBinary, 0o755, func() (io.ReadCloser, error) {
		return os.Open(spec.Binary)
	}); err != nil {
		return fmt.Errorf("install agent: %w", err)
	}
	tokenSum := ""
	if spec.Token != nil {
		tokenSum = sha256Hex(spec.Token)
		if err := c.ensureFile(ctx, tokenSum, int64(len(spec.Token)), spec.TokenFile, 0o600, func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(spec.Token)), nil
		}); err != nil {
			return fmt.Errorf("install agent: %w", err)
		}
	}

	out, _, err := c.Run(ctx, "if [ -d /run/systemd/system ]; then echo drove-systemd=yes; fi", nil)
	if err != nil {
		return fmt.Errorf("install agent: detect systemd: %w", err)
	}
	systemd := parseReport(out)["systemd"] == "yes"
	stamp := stampOf(binSum, tokenSum, spec)
	var script string
	if systemd {
		unit := []byte(renderUnit(spec.RemoteBinary, spec.Args, spec.LogFile))
		if err := c.ensureFile(ctx, sha256Hex(unit), int64(len(unit)), unitPath, 0o644, func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(unit)), nil
		}); err != nil {
			return fmt.Errorf("install agent: write unit: %w", err)
		}
		script = systemdScript(spec, stamp)
	} else {
		script = detachedScript(spec, stamp)
	}
	out, errOut, err := c.Run(ctx, script, nil)
	if err != nil {
		var exit *ssh.ExitError
		if errors.As(err, &exit) && exit.ExitStatus() == exitNotRunning {
			return fmt.Errorf("ssh %s: install agent: the agent exited after start; log ends: %s: %w",
				dest, lastLines(errOut, 5), ErrAgentNotRunning)
		}
		return fmt.Errorf("install agent: start: %w", err)
	}
	rep := parseReport(out)
	c.log.Info("agent installed", "dest", dest, "state", rep["state"], "pid", rep["pid"], "systemd", systemd)
	return nil
}

// ensureFile uploads a file unless the remote copy already has sum.
func (c *Client) ensureFile(ctx context.Context, sum string, size int64, remote string, mode os.FileMode, open func() (io.ReadCloser, error)) error {
	have, err := c.RemoteSHA256(ctx, remote)
	if err != nil {
		return err
	}
	if have == sum {
		// Same bytes; make sure of the mode (a token must stay private).
		_, _, err := c.Run(ctx, "chmod "+strconv.FormatUint(uint64(mode.Perm()), 8)+" "+shellQuote(remote), nil)
		return err
	}
	r, err := open()
	if err != nil {
		return err
	}
	defer r.Close()
	return c.Upload(ctx, r, size, remote, mode)
}

// exitNotRunning is the exit status of the start scripts when the agent
// died.
const exitNotRunning = 97

// stampOf identifies one configuration of the agent: a running agent with
// another stamp is restarted.
func stampOf(binSum, tokenSum string, spec InstallSpec) string {
	h := sha256.New()
	for _, w := range append([]string{binSum, tokenSum, spec.RemoteBinary, spec.LogFile}, spec.Args...) {
		h.Write([]byte(w))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// detachedScript starts the agent as a detached process unless it runs
// with the same stamp. The pid file is written by the process itself
// before it execs the agent. A process counts as ours only if its argv[0]
// is the binary (pids are reused).
func detachedScript(spec InstallSpec, stamp string) string {
	settle := strconv.FormatFloat(spec.Settle.Seconds(), 'f', -1, 64)
	return strings.Join([]string{
		"bin=" + shellQuote(spec.RemoteBinary),
		"pidf=" + shellQuote(path.Join(spec.DataDir, "agent.pid")),
		"stampf=" + shellQuote(path.Join(spec.DataDir, "agent.stamp")),
		"log=" + shellQuote(spec.LogFile),
		"want=" + stamp,
		`alive() {`,
		`	pid=$(cat "$pidf" 2>/dev/null) || return 1`,
		`	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1`,
		`	[ "$(tr '\000' '\n' < /proc/$pid/cmdline 2>/dev/null | head -n 1)" = "$bin" ]`,
		`}`,
		`if alive; then`,
		`	if [ "$(cat "$stampf" 2>/dev/null)" = "$want" ]; then echo drove-state=running; echo "drove-pid=$pid"; exit 0; fi`,
		`	kill "$pid"`,
		// alive, not kill -0: an exited agent may linger as a zombie.
		`	i=0; while alive && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done`,
		`	if alive; then kill -9 "$pid"; fi`,
		`	echo "drove-stopped=$pid"`,
		`fi`,
		`rm -f "$pidf" "$stampf"`,
		`mkdir -p "$(dirname "$log")"`,
		`cd /`,
		`setsid sh -c 'echo $$ > "$1"; shift; exec nohup "$@"' drove-agent "$pidf" "$bin" ` +
			shellJoin(spec.Args) + ` >>"$log" 2>&1 </dev/null &`,
		`i=0; while [ ! -s "$pidf" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done`,
		`sleep ` + settle,
		`if ! alive; then tail -n 20 "$log" >&2; exit ` + strconv.Itoa(exitNotRunning) + `; fi`,
		`printf '%s\n' "$want" > "$stampf"`,
		`echo drove-state=started; echo "drove-pid=$pid"`,
	}, "\n")
}

// systemdScript enables the unit and (re)starts it unless it is active
// with the same stamp.
func systemdScript(spec InstallSpec, stamp string) string {
	settle := strconv.FormatFloat(spec.Settle.Seconds(), 'f', -1, 64)
	return strings.Join([]string{
		"set -e",
		"stampf=" + shellQuote(path.Join(spec.DataDir, "agent.stamp")),
		"want=" + stamp,
		"unit=" + UnitName,
		`mkdir -p "$(dirname ` + shellQuote(spec.LogFile) + `)"`,
		`systemctl daemon-reload`,
		`systemctl enable "$unit" 2>&1`,
		`if [ "$(cat "$stampf" 2>/dev/null)" = "$want" ] && systemctl is-active --quiet "$unit"; then echo drove-state=running; exit 0; fi`,
		`rm -f "$stampf"`,
		`systemctl restart "$unit"`,
		`sleep ` + settle,
		`if ! systemctl is-active --quiet "$unit"; then journalctl -u "$unit" -n 20 --no-pager >&2 || true; exit ` +
			strconv.Itoa(exitNotRunning) + `; fi`,
		`printf '%s\n' "$want" > "$stampf"`,
		`echo drove-state=started; echo "drove-pid=$(systemctl show -p MainPID --value "$unit")"`,
	}, "\n")
}

// fileSHA256 hashes a local file.
func fileSHA256(name string) (string, int64, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", 0, fmt.Errorf("open local binary: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("read local binary %s: %w", name, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
