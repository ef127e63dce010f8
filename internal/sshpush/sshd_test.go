package sshpush

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

const sshdPath = "/usr/sbin/sshd"

// sshd is a real OpenSSH server on 127.0.0.1, started for one test.
type sshd struct {
	dir     string
	port    int
	hostKey ssh.PublicKey
	log     string
}

// needRoot skips a test that needs root and OpenSSH's sshd.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: sshd must run as root to log users in")
	}
	if _, err := os.Stat(sshdPath); err != nil {
		t.Skipf("needs %s (Debian package openssh-server): %v", sshdPath, err)
	}
}

// startSSHD starts sshd -D with a temporary config, host key and
// authorized_keys directory (<dir>/authorized_keys/<user>).
func startSSHD(t *testing.T, passwordAuth bool) *sshd {
	t.Helper()
	needRoot(t)
	dir := t.TempDir()
	hostPub, hostPEM := newKey(t, "")
	hostKeyFile := filepath.Join(dir, "host_ed25519")
	writeFile(t, hostKeyFile, hostPEM, 0o600)
	if err := os.MkdirAll(filepath.Join(dir, "authorized_keys"), 0o755); err != nil {
		t.Fatal(err)
	}
	// sshd reads authorized_keys as the user logging in.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// sshd's privilege separation directory; Debian's init script makes it.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatal(err)
	}
	s := &sshd{dir: dir, hostKey: hostPub, log: filepath.Join(dir, "sshd.log")}
	pw := "no"
	if passwordAuth {
		pw = "yes"
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		s.port = freePort(t)
		cfg := filepath.Join(dir, "sshd_config")
		writeFile(t, cfg, []byte(strings.Join([]string{
			"Port " + strconv.Itoa(s.port),
			"ListenAddress 127.0.0.1",
			"HostKey " + hostKeyFile,
			"AuthorizedKeysFile " + filepath.Join(dir, "authorized_keys", "%u"),
			"PidFile " + filepath.Join(dir, "sshd.pid"),
			"UsePAM no",
			"StrictModes no",
			"PermitRootLogin yes",
			"PubkeyAuthentication yes",
			"PasswordAuthentication " + pw,
			"KbdInteractiveAuthentication no",
			"UseDNS no",
			"MaxStartups 100",
			"MaxSessions 100",
			"LogLevel VERBOSE",
		}, "\n")+"\n"), 0o600)
		if out, err := exec.Command(sshdPath, "-t", "-f", cfg).CombinedOutput(); err != nil {
			t.Fatalf("sshd -t: %v: %s", err, out)
		}
		logf, err := os.Create(s.log)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(sshdPath, "-D", "-e", "-f", cfg)
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatalf("start sshd: %v", err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); logf.Close(); close(exited) }()
		if lastErr = waitBanner(s.port, exited); lastErr == nil {
			t.Cleanup(func() {
				cmd.Process.Kill()
				<-exited
				if t.Failed() {
					b, _ := os.ReadFile(s.log)
					t.Logf("sshd log:\n%s", b)
				}
			})
			return s
		}
		cmd.Process.Kill()
		<-exited
	}
	b, _ := os.ReadFile(s.log)
	t.Fatalf("sshd did not start: %v\n%s", lastErr, b)
	return nil
}

// waitBanner polls until the server on port sends its SSH banner.
func waitBanner(port int, exited <-chan struct{}) error {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("sshd exited")
		default:
		}
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second)
		if err == nil {
			c.SetDeadline(time.Now().Add(2 * time.Second))
			line, err := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if err == nil && strings.HasPrefix(line, "SSH-2.0-") {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("no SSH banner on port %d", port)
}

// authorize lets a user log in with a public key.
func (s *sshd) authorize(t *testing.T, user string, pub ssh.PublicKey) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(s.dir, "authorized_keys", user), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(ssh.MarshalAuthorizedKey(pub)); err != nil {
		t.Fatal(err)
	}
}

// target is a Target for this server.
func (s *sshd) target(user string) Target {
	return Target{Host: "127.0.0.1", Port: s.port, User: user}
}

// rootClient dials the server as root with a fresh authorized key.
func (s *sshd) rootClient(t *testing.T) *Client {
	t.Helper()
	tg := s.target("root")
	tg.KeyFile = s.newAuthorizedKey(t, "root")
	return s.dial(t, tg)
}

// newAuthorizedKey writes a new key pair and authorizes it for user.
func (s *sshd) newAuthorizedKey(t *testing.T, user string) string {
	t.Helper()
	pub, priv := newKey(t, "")
	file := filepath.Join(t.TempDir(), "id_ed25519")
	writeFile(t, file, priv, 0o600)
	s.authorize(t, user, pub)
	return file
}

func (s *sshd) dial(t *testing.T, tg Target) *Client {
	t.Helper()
	c, err := Dial(context.Background(), tg, s.options(t))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func (s *sshd) options(t *testing.T) Options {
	return Options{KnownHostsFile: filepath.Join(s.dir, "known_hosts"), Timeout: 10 * time.Second, Logger: testLogger(t)}
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// newKey makes an ed25519 key pair; the private half as OpenSSH PEM,
// encrypted when passphrase is set.
func newKey(t *testing.T, passphrase string) (ssh.PublicKey, []byte) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var block *pem.Block
	if passphrase == "" {
		block, err = ssh.MarshalPrivateKey(priv, "drove test")
	} else {
		block, err = ssh.MarshalPrivateKeyWithPassphrase(priv, "drove test", []byte(passphrase))
	}
	if err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return sshPub, pem.EncodeToMemory(block)
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func writeFile(t *testing.T, name string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(name, data, mode); err != nil {
		t.Fatal(err)
	}
}

// throwawayUser creates a local user with a password, removed (with its
// home and any sudoers file) when the test ends.
func throwawayUser(t *testing.T) (name, password string) {
	t.Helper()
	needRoot(t)
	for _, tool := range []string{"useradd", "userdel", "chpasswd"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s to create a throwaway user: %v", tool, err)
		}
	}
	b := make([]byte, 4)
	rand.Read(b)
	name = "drovetest" + hex.EncodeToString(b)
	rand.Read(b)
	password = "pw-" + hex.EncodeToString(b) + "'\"$x"
	if out, err := exec.Command("useradd", "-m", "-s", "/bin/sh", name).CombinedOutput(); err != nil {
		t.Fatalf("useradd: %v: %s", err, out)
	}
	t.Cleanup(func() {
		os.Remove(sudoersFile(name))
		if out, err := exec.Command("userdel", "-r", "-f", name).CombinedOutput(); err != nil {
			t.Logf("userdel %s: %v: %s", name, err, out)
		}
	})
	cmd := exec.Command("chpasswd")
	cmd.Stdin = strings.NewReader(name + ":" + password + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chpasswd: %v: %s", err, out)
	}
	return name, password
}

func sudoersFile(user string) string { return filepath.Join("/etc/sudoers.d", user) }

// allowSudo lets user run anything with sudo, with or without password.
func allowSudo(t *testing.T, user string, nopasswd bool) {
	t.Helper()
	if _, err := os.Stat("/etc/sudoers.d"); err != nil {
		t.Skipf("needs sudo with /etc/sudoers.d: %v", err)
	}
	if _, err := exec.LookPath("sudo"); err != nil {
		t.Skipf("needs sudo: %v", err)
	}
	rule := user + " ALL=(ALL) ALL\n"
	if nopasswd {
		rule = user + " ALL=(ALL) NOPASSWD: ALL\n"
	}
	writeFile(t, sudoersFile(user), []byte(rule), 0o440)
}
