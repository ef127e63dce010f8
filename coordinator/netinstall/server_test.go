package netinstall

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/drove-project/drove/internal/clusterauth"
	"github.com/drove-project/drove/protocol"
)

const (
	testToken  = "drove-netinstall-test-token-1"
	otherToken = "drove-netinstall-test-token-2"
)

// testMembers: this coordinator, another live one (its API port not
// gossiped), a dead coordinator and a plain node.
func testMembers() []protocol.Member {
	return []protocol.Member{
		{ID: "m1", Address: "127.0.0.1", GossipPort: 17946, Coord: true, State: "alive"},
		{ID: "m2", Address: "10.9.9.9", Coord: true, State: "alive"},
		{ID: "m3", Address: "10.9.9.10", Coord: true, State: "dead"},
		{ID: "n1", Address: "10.9.9.11", State: "alive"},
	}
}

// testServer runs an install API on 127.0.0.1 for the test's lifetime.
type testServer struct {
	*Server
	base   string // https://127.0.0.1:PORT
	client *http.Client
}

func startServer(t *testing.T, cfg Config) *testServer {
	t.Helper()
	if cfg.Token == "" {
		cfg.Token = testToken
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.Hosts == nil {
		cfg.Hosts = []string{"127.0.0.1", "localhost"}
	}
	if cfg.Members == nil {
		cfg.Members = testMembers
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return &testServer{Server: s, base: "https://" + s.Addr().String(), client: pinnedClient(t, cfg.Token)}
}

// pinnedClient trusts only token's cluster CA.
func pinnedClient(t *testing.T, token string) *http.Client {
	t.Helper()
	pool, err := clusterauth.CAPool(token)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 30 * time.Second}
}

func (s *testServer) get(t *testing.T, path, proof string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if proof != "" {
		req.Header.Set("Authorization", proof)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func goodProof() string { return "Bearer " + clusterauth.InstallProof(testToken) }

func TestTLSPinnedCA(t *testing.T) {
	s := startServer(t, Config{})
	if resp, _ := s.get(t, "/install.sh", ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("install.sh over the pinned CA: %s", resp.Status)
	}
	// Another cluster's CA, or the system's roots, do not vouch for it.
	for name, c := range map[string]*http.Client{
		"another cluster's CA": pinnedClient(t, otherToken),
		"the system roots":     {Timeout: 10 * time.Second},
	} {
		_, err := c.Get(s.base + "/install.sh")
		var unknown x509.UnknownAuthorityError
		if !errors.As(err, &unknown) {
			t.Errorf("with %s: %v, want an unknown authority error", name, err)
		}
	}
	// A DNS name outside the configured hosts, asked for by SNI, gets a
	// certificate of the cluster CA for it.
	pool, _ := clusterauth.CAPool(testToken)
	conn, err := tls.Dial("tcp", s.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "master-1.example.net"})
	if err != nil {
		t.Fatalf("TLS by SNI name: %v", err)
	}
	conn.Close()
}

func TestScriptServed(t *testing.T) {
	s := startServer(t, Config{})
	resp, body := s.get(t, "/install.sh", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /install.sh: %s\n%s", resp.Status, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/x-shellscript") {
		t.Errorf("Content-Type %q", ct)
	}
	script := string(body)
	caPEM, _ := clusterauth.CACertPEM(testToken)
	port := strconv.Itoa(s.Addr().(*net.TCPAddr).Port)
	for _, want := range []string{
		"#!/bin/sh\n",
		"DROVE_CA='" + strings.TrimSpace(string(caPEM)) + "'\n",
		// Live coordinators only; a missing gossip port is the default.
		"DROVE_JOIN='127.0.0.1:17946,10.9.9.9:7946'\n",
		// The address this client used first; m2 at this server's port.
		"DROVE_SERVERS='127.0.0.1:" + port + " 10.9.9.9:" + port + "'\n",
	} {
		if !strings.Contains(script, want) {
			t.Errorf("install.sh lacks %q", want)
		}
	}
	for _, secret := range []string{testToken, clusterauth.InstallProof(testToken)} {
		if strings.Contains(script, secret) {
			t.Errorf("install.sh carries a secret: %q", secret)
		}
	}
}

func TestDownloadRefused(t *testing.T) {
	s := startServer(t, Config{})
	for _, auth := range []string{
		"",
		"Bearer " + clusterauth.InstallProof(otherToken),
		"Bearer " + testToken, // the token itself is no proof
		"Basic " + clusterauth.InstallProof(testToken),
		"Bearer",
	} {
		resp, body := s.get(t, "/dl/"+BinaryName(runtime.GOOS, runtime.GOARCH), auth)
		if resp.StatusCode != http.StatusUnauthorized || string(body) != RefusedMessage+"\n" {
			t.Errorf("Authorization %q: %s %q, want 401 %q", auth, resp.Status, body, RefusedMessage)
		}
	}
	// Refused before the name is looked at: no hint what exists.
	if resp, _ := s.get(t, "/dl/drove-plan9-mips", ""); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("unknown binary without a proof: %s, want 401", resp.Status)
	}
}

func TestDownloadOwnExecutable(t *testing.T) {
	s := startServer(t, Config{})
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	resp, body := s.get(t, "/dl/"+BinaryName(runtime.GOOS, runtime.GOARCH), goodProof())
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("download: %s\n%s", resp.Status, body)
	}
	if !bytes.Equal(body, want) {
		t.Errorf("downloaded %d bytes, not the executable's %d", len(body), len(want))
	}
	if resp.ContentLength != int64(len(want)) {
		t.Errorf("Content-Length %d, want %d", resp.ContentLength, len(want))
	}
}

func TestDownloadOtherPlatforms(t *testing.T) {
	dir := t.TempDir()
	arch := "riscv64"
	if runtime.GOARCH == arch {
		arch = "s390x"
	}
	other := []byte("#!/bin/sh\necho a drove for linux/" + arch + "\n")
	if err := os.WriteFile(filepath.Join(dir, BinaryName("linux", arch)), other, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, BinaryName("linux", "dir")), 0o755); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, Config{BinaryDir: dir})
	resp, body := s.get(t, "/dl/"+BinaryName("linux", arch), goodProof())
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, other) {
		t.Errorf("binary from the directory: %s %q", resp.Status, body)
	}
	for path, want := range map[string]string{
		"/dl/drove-plan9-mips":         "no drove binary for plan9/mips: put one at " + filepath.Join(dir, "drove-plan9-mips"),
		"/dl/drove-linux-dir":          "cannot read " + filepath.Join(dir, "drove-linux-dir"),
		"/dl/drove-linux":              "want drove-<os>-<arch>",
		"/dl/..%2f..%2fetc%2fpasswd":   "want drove-<os>-<arch>",
		"/dl/drove-..%2f..-passwd":     "want drove-<os>-<arch>",
		"/dl/drove-linux-amd64.tar.gz": "want drove-<os>-<arch>",
	} {
		resp, body := s.get(t, path, goodProof())
		if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(body), want) {
			t.Errorf("GET %s: %s %q, want 404 saying %q", path, resp.Status, body, want)
		}
	}
	// Without a binary directory the error says what is served.
	bare := startServer(t, Config{})
	resp, body = bare.get(t, "/dl/drove-plan9-mips", goodProof())
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(body), "only its own, "+runtime.GOOS+"/"+runtime.GOARCH) {
		t.Errorf("no binary directory: %s %q", resp.Status, body)
	}
	// An executable that is gone is a 404 that says so.
	gone := startServer(t, Config{Executable: filepath.Join(dir, "deleted")})
	resp, body = gone.get(t, "/dl/"+BinaryName(runtime.GOOS, runtime.GOARCH), goodProof())
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(body), "cannot read its own executable") {
		t.Errorf("missing executable: %s %q", resp.Status, body)
	}
}

func TestOtherPaths(t *testing.T) {
	s := startServer(t, Config{})
	resp, body := s.get(t, "/", "")
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(body), "GET /install.sh") {
		t.Errorf("GET /: %s %q", resp.Status, body)
	}
	r, err := s.client.Post(s.base+"/install.sh", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /install.sh: %s, want 405", r.Status)
	}
}

func TestNewRefuses(t *testing.T) {
	if _, err := New(Config{Token: "short", Listen: "127.0.0.1:0", Hosts: []string{"127.0.0.1"}, Members: testMembers}); !errors.Is(err, clusterauth.ErrTokenTooShort) {
		t.Errorf("short token: %v", err)
	}
	if _, err := New(Config{Token: testToken, Listen: "127.0.0.1:0", Hosts: []string{"not a host"}, Members: testMembers}); !errors.Is(err, clusterauth.ErrBadHost) {
		t.Errorf("bad host: %v", err)
	}
	s := startServer(t, Config{})
	_, err := New(Config{Token: testToken, Listen: s.Addr().String(), Hosts: []string{"127.0.0.1"}, Members: testMembers})
	if err == nil || !strings.Contains(err.Error(), "--api-port") {
		t.Errorf("port in use: %v, want an error naming --api-port", err)
	}
}

// TestRunStops: Run returns once its context ends and the port is free.
func TestRunStops(t *testing.T) {
	s, err := New(Config{Token: testToken, Listen: "127.0.0.1:0", Hosts: []string{"127.0.0.1"}, Members: testMembers})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	c := pinnedClient(t, testToken)
	resp, err := c.Get("https://" + s.Addr().String() + "/install.sh")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run after cancel: %v", err)
		}
	case <-time.After(shutdownGrace + 5*time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	ln, err := net.Listen("tcp", s.Addr().String())
	if err != nil {
		t.Fatalf("the port is still taken after Run returned: %v", err)
	}
	ln.Close()
}

// TestCertRenewed: a certificate past two thirds of its life is replaced.
func TestCertRenewed(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	c, err := newCertSource(testToken, []string{"127.0.0.1"}, clock)
	if err != nil {
		t.Fatal(err)
	}
	first, _ := c.get(&tls.ClientHelloInfo{})
	again, _ := c.get(&tls.ClientHelloInfo{})
	if again != first {
		t.Error("a fresh certificate was replaced")
	}
	now = now.Add(clusterauth.ServingCertLifetime * 3 / 4)
	later, _ := c.get(&tls.ClientHelloInfo{})
	if later.Leaf.SerialNumber.Cmp(first.Leaf.SerialNumber) == 0 {
		t.Error("an old certificate was not replaced")
	}
	// SNI names are bounded.
	for i := range maxSNINames + 5 {
		if _, err := c.get(&tls.ClientHelloInfo{ServerName: "h" + strconv.Itoa(i) + ".example"}); err != nil {
			t.Fatal(err)
		}
	}
	if len(c.byName) != maxSNINames {
		t.Errorf("%d SNI certificates kept, want at most %d", len(c.byName), maxSNINames)
	}
}
