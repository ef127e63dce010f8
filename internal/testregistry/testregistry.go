// Package testregistry starts a real OCI distribution registry (Debian's
// /usr/bin/docker-registry) for tests: on a free loopback port, with its
// storage in a temporary directory and, optionally, htpasswd (bcrypt)
// authentication. It is stopped when the test ends.
package testregistry

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// Binary is the registry executable Start runs.
const Binary = "/usr/bin/docker-registry"

// readyTimeout bounds how long Start waits for the registry to answer.
const readyTimeout = 30 * time.Second

// bindAttempts is how many ports Start tries when another process takes
// the chosen port between probing and binding.
const bindAttempts = 5

// Opts configure a registry. The zero value is an anonymous registry on
// 127.0.0.1.
type Opts struct {
	// User and Password, when both set, turn on htpasswd authentication
	// with this single account.
	User, Password string
	// IP is the loopback address to listen on; default 127.0.0.1.
	IP string
	// TLS serves HTTPS with a fresh self-signed certificate for IP,
	// localhost and ::1 instead of plain HTTP.
	TLS bool
}

// Registry is a running registry.
type Registry struct {
	// Host is "IP:PORT", usable as the registry part of a reference.
	Host string
	// User and Password are the account, empty for an anonymous registry.
	User, Password string
	// Dir is the registry's storage root.
	Dir string
	// CertFile is the PEM certificate served with Opts.TLS, else empty.
	CertFile string

	scheme  string // "http" or "https"
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{}
}

// Start runs a registry for the rest of t and returns once it answers
// GET /v2/. It skips t when the registry binary (or, for an authenticated
// registry, htpasswd) is not installed.
func Start(t testing.TB, opts Opts) *Registry {
	t.Helper()
	if _, err := os.Stat(Binary); err != nil {
		t.Skipf("%s not found (apt-get install docker-registry): %v", Binary, err)
	}
	if opts.IP == "" {
		opts.IP = "127.0.0.1"
	}
	dir := t.TempDir()
	r := &Registry{User: opts.User, Password: opts.Password, Dir: filepath.Join(dir, "storage"), scheme: "http"}
	if err := os.Mkdir(r.Dir, 0o700); err != nil {
		t.Fatalf("create registry storage: %v", err)
	}
	htpasswdPath := ""
	if opts.User != "" || opts.Password != "" {
		if opts.User == "" || opts.Password == "" {
			t.Fatalf("testregistry: User and Password must both be set")
		}
		htpasswdPath = filepath.Join(dir, "htpasswd")
		writeHtpasswd(t, htpasswdPath, opts.User, opts.Password)
	}
	var tlsFiles *tlsPair
	if opts.TLS {
		pair, err := writeSelfSigned(dir, opts.IP)
		if err != nil {
			t.Fatalf("testregistry: %v", err)
		}
		tlsFiles = &pair
		r.CertFile = pair.cert
		r.scheme = "https"
	}
	for attempt := 1; ; attempt++ {
		port := pickPort(t, opts.IP)
		r.Host = net.JoinHostPort(opts.IP, strconv.Itoa(port))
		r.logPath = filepath.Join(dir, fmt.Sprintf("registry-%d.log", attempt))
		configPath := filepath.Join(dir, fmt.Sprintf("config-%d.yml", attempt))
		if err := writeConfig(configPath, r.Dir, r.Host, htpasswdPath, tlsFiles); err != nil {
			t.Fatalf("testregistry: %v", err)
		}
		err := r.run(t, configPath)
		if err == nil {
			return r
		}
		log := r.Log()
		if attempt < bindAttempts && strings.Contains(log, "address already in use") {
			t.Logf("testregistry: port %d taken, retrying", port)
			continue
		}
		t.Fatalf("testregistry: %v\nregistry log:\n%s", err, log)
	}
}

// run starts the registry with configPath and waits until it is ready or
// has exited. On success the process is stopped in t.Cleanup.
func (r *Registry) run(t testing.TB, configPath string) error {
	logFile, err := os.Create(r.logPath)
	if err != nil {
		return fmt.Errorf("create registry log: %w", err)
	}
	defer logFile.Close()
	cmd := exec.Command(Binary, "serve", configPath)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.Env = registryEnv()
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", Binary, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	r.cmd, r.exited = cmd, exited
	if err := r.waitReady(exited); err != nil {
		r.stop()
		return err
	}
	t.Cleanup(func() {
		r.stop()
		if t.Failed() {
			t.Logf("registry %s log:\n%s", r.Host, r.Log())
		}
	})
	return nil
}

// waitReady polls GET /v2/ until the registry answers (200 or 401) and
// has logged that it listens on r.Host, it exits, or readyTimeout passes.
func (r *Registry) waitReady(exited <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	// A request in flight is abandoned as soon as the registry exits: the
	// port may belong to another process that never answers.
	go func() {
		select {
		case <-exited:
			cancel()
		case <-ctx.Done():
		}
	}()
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		// The readiness probe only needs an answer; the certificate is
		// the test's business.
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // test registry, self-signed
	}}
	defer client.CloseIdleConnections()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.URL()+"/v2/", nil)
		if err != nil {
			return fmt.Errorf("build readiness request: %w", err)
		}
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			// The log line proves the answer came from this process, not
			// from another one that took the port first.
			if (resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized) &&
				strings.Contains(r.Log(), "listening on "+r.Host) {
				return nil
			}
		}
		select {
		case <-exited:
			return fmt.Errorf("registry exited before it was ready (%s)", r.cmd.ProcessState)
		default:
		}
		select {
		case <-exited:
			return fmt.Errorf("registry exited before it was ready (%s)", r.cmd.ProcessState)
		case <-ctx.Done():
			return fmt.Errorf("registry at %s not ready after %s", r.Host, readyTimeout)
		case <-tick.C:
		}
	}
}

// stop kills the registry process and waits for it to be reaped.
func (r *Registry) stop() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	select {
	case <-r.exited:
		return
	default:
	}
	_ = r.cmd.Process.Kill()
	<-r.exited
}

// URL is the registry's base URL, "http://IP:PORT" (https with Opts.TLS).
func (r *Registry) URL() string { return r.scheme + "://" + r.Host }

// Log returns what the registry has logged so far.
func (r *Registry) Log() string {
	b, err := os.ReadFile(r.logPath)
	if err != nil {
		return fmt.Sprintf("(cannot read registry log: %v)", err)
	}
	return string(b)
}

// Ref returns "HOST/repo" followed by suffix, e.g. r.Ref("app", ":v1").
func (r *Registry) Ref(repo, suffix string) string { return r.Host + "/" + repo + suffix }

// pickPort chooses the port to try; tests replace it to force a collision.
var pickPort = freePort

// freePort returns a port that was free on ip a moment ago.
func freePort(t testing.TB, ip string) int {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatalf("testregistry: find a free port on %s: %v", ip, err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		t.Fatalf("testregistry: release port %d: %v", port, err)
	}
	return port
}

// writeHtpasswd writes a one-account bcrypt htpasswd file with the
// htpasswd tool, skipping t if it is missing.
func writeHtpasswd(t testing.TB, path, user, password string) {
	t.Helper()
	bin, err := exec.LookPath("htpasswd")
	if err != nil {
		t.Skipf("htpasswd not found (apt-get install apache2-utils): %v", err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(bin, "-Bbn", user, password)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("testregistry: htpasswd -Bbn: %v: %s", err, stderr.String())
	}
	line := strings.TrimSpace(string(out))
	if !strings.HasPrefix(line, user+":$2") {
		t.Fatalf("testregistry: htpasswd gave no bcrypt hash: %q", line)
	}
	if err := os.WriteFile(path, []byte(line+"\n"), 0o600); err != nil {
		t.Fatalf("testregistry: write htpasswd: %v", err)
	}
}

// writeConfig writes the registry's YAML configuration.
func writeConfig(path, storage, addr, htpasswd string, tlsFiles *tlsPair) error {
	cfg := map[string]any{
		"version": "0.1",
		"log": map[string]any{
			"level":     "info",
			"accesslog": map[string]any{"disabled": true},
		},
		"storage": map[string]any{
			"filesystem": map[string]any{"rootdirectory": storage},
			"delete":     map[string]any{"enabled": true},
			"redirect":   map[string]any{"disable": true},
			"maintenance": map[string]any{
				"uploadpurging": map[string]any{"enabled": false},
			},
		},
		"http": map[string]any{
			"addr":   addr,
			"secret": "drove-testregistry",
		},
	}
	if tlsFiles != nil {
		cfg["http"].(map[string]any)["tls"] = map[string]any{
			"certificate": tlsFiles.cert,
			"key":         tlsFiles.key,
		}
	}
	if htpasswd != "" {
		cfg["auth"] = map[string]any{
			"htpasswd": map[string]any{"realm": "drove-test", "path": htpasswd},
		}
	}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("encode registry config: %w", err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return fmt.Errorf("write registry config: %w", err)
	}
	return nil
}

// registryEnv is the environment without REGISTRY_* overrides, which the
// registry would apply on top of its configuration file.
func registryEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "REGISTRY_") {
			env = append(env, kv)
		}
	}
	return env
}

// Stop kills the registry now (tests of what works with the upstream
// down); the test's cleanup would otherwise do it.
func (r *Registry) Stop() { r.stop() }
