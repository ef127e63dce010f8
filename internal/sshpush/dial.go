package sshpush

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// DefaultTimeout bounds connecting and the SSH handshake when
// Options.Timeout is zero.
const DefaultTimeout = 10 * time.Second

// Target is one host to reach, with sealer's SSH settings.
type Target struct {
	// Host is an IP address or a name.
	Host string
	// Port defaults to 22.
	Port int
	// User defaults to root. Any other user runs commands through sudo.
	User string
	// Password is used for password (and keyboard-interactive) login and
	// fed to sudo.
	Password string
	// KeyFile is a private key in any format ssh-keygen writes.
	KeyFile string
	// KeyPassphrase decrypts KeyFile.
	KeyPassphrase string
}

func (t Target) user() string {
	if t.User == "" {
		return "root"
	}
	return t.User
}

func (t Target) addr() string {
	port := t.Port
	if port == 0 {
		port = 22
	}
	return net.JoinHostPort(t.Host, strconv.Itoa(port))
}

// Dest is "user@host:port", the prefix of every error about this target.
func (t Target) Dest() string { return t.user() + "@" + t.addr() }

// Options tune Dial.
type Options struct {
	// KnownHostsFile records host keys: a host seen for the first time has
	// its key appended (trust on first use), a host whose key changed is
	// refused. Default DefaultKnownHostsFile(). The file and its directory
	// are created when missing.
	KnownHostsFile string
	// Timeout bounds the TCP connect and the SSH handshake. Default
	// DefaultTimeout.
	Timeout time.Duration
	// Logger receives debug and info records. Default: discard.
	Logger *slog.Logger
}

// DefaultKnownHostsFile is ~/.ssh/known_hosts, as OpenSSH uses it.
func DefaultKnownHostsFile() (string, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("find home directory for known_hosts: %w", err)
	}
	return filepath.Join(home, ".ssh", "known_hosts"), nil
}

// Client is an SSH connection to one target. It is safe for concurrent
// use; every call opens its own session.
type Client struct {
	target Target
	conn   *ssh.Client
	log    *slog.Logger
	// sumCmd prints "<sha256 hex>  <file>" for the file named by "$1";
	// tests replace it to simulate corruption.
	sumCmd string
}

// Dial connects to t, checks its host key against opts.KnownHostsFile and
// logs in with t's key and/or password.
func Dial(ctx context.Context, t Target, opts Options) (*Client, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	khFile := opts.KnownHostsFile
	if khFile == "" {
		var err error
		if khFile, err = DefaultKnownHostsFile(); err != nil {
			return nil, fmt.Errorf("ssh %s: %w", t.Dest(), err)
		}
	}
	dest := t.Dest()
	auth, tried, err := authMethods(t)
	if err != nil {
		return nil, fmt.Errorf("ssh %s: %w", dest, err)
	}
	hk, err := newHostKeys(khFile, log)
	if err != nil {
		return nil, fmt.Errorf("ssh %s: %w", dest, err)
	}
	algos, err := hk.algorithms(t.addr())
	if err != nil {
		return nil, fmt.Errorf("ssh %s: %w", dest, err)
	}
	cfg := &ssh.ClientConfig{
		User:              t.user(),
		Auth:              auth,
		HostKeyCallback:   hk.callback,
		HostKeyAlgorithms: algos,
		Timeout:           timeout,
	}

	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(dctx, "tcp", t.addr())
	if err != nil {
		return nil, fmt.Errorf("ssh %s: connect: %w", dest, err)
	}
	// The handshake has no context: a deadline bounds it and ctx
	// cancellation closes the socket under it.
	nc.SetDeadline(time.Now().Add(timeout))
	stop := context.AfterFunc(dctx, func() { nc.Close() })
	sc, chans, reqs, err := ssh.NewClientConn(nc, t.addr(), cfg)
	stopped := stop()
	if err != nil {
		nc.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("ssh %s: %w", dest, ctx.Err())
		}
		if !stopped {
			return nil, fmt.Errorf("ssh %s: handshake timed out after %s", dest, timeout)
		}
		return nil, handshakeError(dest, err, hk, algos, tried)
	}
	if !stopped {
		// ctx or the timeout ended just as the handshake finished, and
		// the socket is closed.
		sc.Close()
		return nil, fmt.Errorf("ssh %s: handshake interrupted: %w", dest, context.Cause(dctx))
	}
	nc.SetDeadline(time.Time{})
	log.Debug("ssh connected", "dest", dest, "server", string(sc.ServerVersion()))
	return &Client{target: t, conn: ssh.NewClient(sc, chans, reqs), log: log, sumCmd: defaultSumCmd}, nil
}

// Close ends the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Target is the target this client is connected to.
func (c *Client) Target() Target { return c.target }

// attempts records which authentication methods the server asked for.
type attempts struct {
	mu      sync.Mutex
	methods []string
}

func (a *attempts) add(m string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, x := range a.methods {
		if x == m {
			return
		}
	}
	a.methods = append(a.methods, m)
}

func (a *attempts) list() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.methods...)
}

// authMethods builds the key, password and keyboard-interactive methods
// that t's credentials allow, each recording its use in the returned
// attempts.
func authMethods(t Target) ([]ssh.AuthMethod, *attempts, error) {
	tried := &attempts{}
	var methods []ssh.AuthMethod
	if t.KeyFile != "" {
		signer, err := loadKey(t.KeyFile, t.KeyPassphrase)
		if err != nil {
			return nil, nil, err
		}
		name := "public key " + t.KeyFile
		methods = append(methods, ssh.PublicKeysCallback(func() ([]ssh.Signer, error) {
			tried.add(name)
			return []ssh.Signer{signer}, nil
		}))
	}
	if t.Password != "" {
		pw := t.Password
		methods = append(methods,
			ssh.PasswordCallback(func() (string, error) {
				tried.add("password")
				return pw, nil
			}),
			// Servers with PasswordAuthentication off often still take the
			// password through keyboard-interactive (PAM).
			ssh.KeyboardInteractive(func(_, _ string, questions []string, echos []bool) ([]string, error) {
				tried.add("keyboard-interactive")
				answers := make([]string, len(questions))
				for i := range questions {
					if !echos[i] {
						answers[i] = pw
					}
				}
				return answers, nil
			}))
	}
	if len(methods) == 0 {
		return nil, nil, ErrNoCredentials
	}
	return methods, tried, nil
}

// loadKey reads and decrypts a private key file.
func loadKey(file, passphrase string) (ssh.Signer, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read private key: %w", err)
	}
	var signer ssh.Signer
	if passphrase != "" {
		signer, err = ssh.ParsePrivateKeyWithPassphrase(pem, []byte(passphrase))
	} else {
		signer, err = ssh.ParsePrivateKey(pem)
	}
	var missing *ssh.PassphraseMissingError
	switch {
	case err == nil:
		return signer, nil
	case errors.As(err, &missing):
		return nil, fmt.Errorf("private key %s is encrypted and no passphrase was given (--pk-passwd)", file)
	case errors.Is(err, x509.IncorrectPasswordError):
		return nil, fmt.Errorf("private key %s: wrong passphrase", file)
	default:
		return nil, fmt.Errorf("parse private key %s: %w", file, err)
	}
}

// handshakeError turns the library's "ssh: handshake failed" into what
// went wrong: a changed host key, rejected credentials or else the cause.
func handshakeError(dest string, err error, hk *hostKeys, algos []string, tried *attempts) error {
	if hkErr := hk.failure(); hkErr != nil {
		return fmt.Errorf("ssh %s: %w", dest, hkErr)
	}
	msg := err.Error()
	if strings.Contains(msg, "unable to authenticate") {
		return &AuthError{Dest: dest, Methods: tried.list()}
	}
	if len(algos) > 0 && strings.Contains(msg, "no common algorithm for host key") {
		return fmt.Errorf("ssh %s: host offers none of the key types recorded in %s (%s); if the host was reinstalled, remove its lines: %w",
			dest, hk.file, strings.Join(algos, ", "), ErrHostKeyChanged)
	}
	return fmt.Errorf("ssh %s: %w", dest, err)
}
