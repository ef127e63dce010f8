package sshpush

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// knownHostsMu serialises appends to known_hosts files within this process
// (drove run dials many hosts at once).
var knownHostsMu sync.Mutex

// hostKeys checks host keys against one known_hosts file, trusting on first
// use. It remembers why it refused a key, for the error message.
type hostKeys struct {
	file string
	log  *slog.Logger

	mu  sync.Mutex
	err error
}

func newHostKeys(file string, log *slog.Logger) (*hostKeys, error) {
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return nil, fmt.Errorf("create directory of known_hosts %s: %w", file, err)
	}
	f, err := os.OpenFile(file, os.O_CREATE|os.O_RDONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open known_hosts %s: %w", file, err)
	}
	f.Close()
	return &hostKeys{file: file, log: log}, nil
}

// load parses the file as it is now.
func (h *hostKeys) load() (ssh.HostKeyCallback, error) {
	cb, err := knownhosts.New(h.file)
	if err != nil {
		return nil, fmt.Errorf("read known_hosts %s: %w", h.file, err)
	}
	return cb, nil
}

// algorithms lists the host key algorithms that match the key types
// recorded for addr, so that the server presents a key we can compare
// (rather than a key of another type that looks "changed"). Nil when the
// host is unknown: then any algorithm will do.
func (h *hostKeys) algorithms(addr string) ([]string, error) {
	cb, err := h.load()
	if err != nil {
		return nil, err
	}
	var ke *knownhosts.KeyError
	if err := cb(addr, probeAddr(addr), probeKey{}); !errors.As(err, &ke) {
		return nil, nil
	}
	var algos []string
	seen := map[string]bool{}
	for _, k := range ke.Want {
		for _, a := range algorithmsFor(k.Key.Type()) {
			if !seen[a] {
				seen[a] = true
				algos = append(algos, a)
			}
		}
	}
	return algos, nil
}

// algorithmsFor maps a key type to the signature algorithms that use it.
func algorithmsFor(keyType string) []string {
	if keyType == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	}
	return []string{keyType}
}

// callback is the ssh.HostKeyCallback: known and equal passes, unknown is
// recorded, different is refused.
func (h *hostKeys) callback(hostname string, remote net.Addr, key ssh.PublicKey) error {
	knownHostsMu.Lock()
	defer knownHostsMu.Unlock()
	cb, err := h.load()
	if err != nil {
		return h.fail(err)
	}
	err = cb(hostname, remote, key)
	var ke *knownhosts.KeyError
	var re *knownhosts.RevokedError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &re):
		return h.fail(fmt.Errorf("host key %s %s is marked revoked in %s line %d",
			key.Type(), ssh.FingerprintSHA256(key), re.Revoked.Filename, re.Revoked.Line))
	case errors.As(err, &ke) && len(ke.Want) > 0:
		w := ke.Want[0]
		return h.fail(fmt.Errorf("host key for %s has CHANGED: the server presents %s %s but %s line %d records %s %s; "+
			"if the host was reinstalled, remove that line: %w",
			hostname, key.Type(), ssh.FingerprintSHA256(key), w.Filename, w.Line,
			w.Key.Type(), ssh.FingerprintSHA256(w.Key), ErrHostKeyChanged))
	case errors.As(err, &ke):
		if err := h.record(hostname, key); err != nil {
			return h.fail(err)
		}
		h.log.Info("trusting new ssh host key", "host", hostname, "key", ssh.FingerprintSHA256(key), "known_hosts", h.file)
		return nil
	default:
		return h.fail(fmt.Errorf("check host key of %s: %w", hostname, err))
	}
}

// record appends one line for hostname.
func (h *hostKeys) record(hostname string, key ssh.PublicKey) error {
	f, err := os.OpenFile(h.file, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("record host key in %s: %w", h.file, err)
	}
	line := knownhosts.Line([]string{knownhosts.Normalize(hostname)}, key) + "\n"
	if _, err := f.WriteString(line); err != nil {
		f.Close()
		return fmt.Errorf("record host key in %s: %w", h.file, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("record host key in %s: %w", h.file, err)
	}
	return nil
}

func (h *hostKeys) fail(err error) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.err = err
	return err
}

// failure is the reason the callback refused a key, or nil.
func (h *hostKeys) failure() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.err
}

// probeAddr is a placeholder remote address: a lookup by name never
// looks at it.
func probeAddr(string) net.Addr { return &net.TCPAddr{IP: net.IPv4zero} }

// probeKey is a key no host has: checking it lists the recorded keys.
type probeKey struct{}

func (probeKey) Type() string                                 { return "drove-probe" }
func (probeKey) Marshal() []byte                              { return []byte("drove-probe") }
func (probeKey) Verify(data []byte, sig *ssh.Signature) error { return errors.New("probe key") }
