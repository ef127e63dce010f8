package testregistry

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
)

func get(t *testing.T, url, user, password string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestAnonymousRegistryAnswers(t *testing.T) {
	r := Start(t, Opts{})
	if !strings.HasPrefix(r.Host, "127.0.0.1:") {
		t.Errorf("Host = %q, want 127.0.0.1:PORT", r.Host)
	}
	if code := get(t, r.URL()+"/v2/", "", ""); code != http.StatusOK {
		t.Errorf("GET /v2/ = %d, want 200", code)
	}
	if _, err := os.Stat(r.Dir); err != nil {
		t.Errorf("storage dir: %v", err)
	}
}

func TestAuthRegistryChecksPassword(t *testing.T) {
	r := Start(t, Opts{User: "alice", Password: "s3cret"})
	for _, tc := range []struct {
		user, password string
		want           int
	}{
		{"", "", http.StatusUnauthorized},
		{"alice", "wrong", http.StatusUnauthorized},
		{"alice", "s3cret", http.StatusOK},
	} {
		if code := get(t, r.URL()+"/v2/", tc.user, tc.password); code != tc.want {
			t.Errorf("GET /v2/ as %q/%q = %d, want %d", tc.user, tc.password, code, tc.want)
		}
	}
}

func TestOtherLoopbackAddress(t *testing.T) {
	r := Start(t, Opts{IP: "127.0.0.2"})
	if !strings.HasPrefix(r.Host, "127.0.0.2:") {
		t.Errorf("Host = %q, want 127.0.0.2:PORT", r.Host)
	}
	if code := get(t, r.URL()+"/v2/", "", ""); code != http.StatusOK {
		t.Errorf("GET /v2/ = %d, want 200", code)
	}
}

func TestStopFreesPort(t *testing.T) {
	var host string
	t.Run("registry", func(t *testing.T) {
		host = Start(t, Opts{}).Host
	})
	// The subtest's cleanup has killed and reaped the registry, so its port
	// can be bound again.
	l, err := net.Listen("tcp", host)
	if err != nil {
		t.Fatalf("port of stopped registry still in use: %v", err)
	}
	l.Close()
}

func TestSeparateRegistriesDoNotShareStorage(t *testing.T) {
	a := Start(t, Opts{})
	b := Start(t, Opts{})
	if a.Host == b.Host || a.Dir == b.Dir {
		t.Errorf("registries share host or storage: %+v %+v", a, b)
	}
}

func TestRetriesWhenPortIsTaken(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	takenPort := taken.Addr().(*net.TCPAddr).Port
	calls := 0
	pickPort = func(t testing.TB, ip string) int {
		calls++
		if calls == 1 {
			return takenPort
		}
		return freePort(t, ip)
	}
	t.Cleanup(func() { pickPort = freePort })

	r := Start(t, Opts{})
	if calls < 2 {
		t.Fatalf("pickPort called %d times, want a retry after the collision", calls)
	}
	if r.Host == taken.Addr().String() {
		t.Errorf("registry claims the taken port %s", r.Host)
	}
	if code := get(t, r.URL()+"/v2/", "", ""); code != http.StatusOK {
		t.Errorf("GET /v2/ = %d, want 200", code)
	}
}

func TestTLSRegistry(t *testing.T) {
	r := Start(t, Opts{TLS: true, User: "u", Password: "p"})
	if !strings.HasPrefix(r.URL(), "https://") {
		t.Fatalf("URL = %s, want https", r.URL())
	}
	pem, err := os.ReadFile(r.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("certificate file holds no certificate")
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer client.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodGet, r.URL()+"/v2/", nil)
	req.SetBasicAuth("u", "p")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET over TLS trusting only CertFile: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /v2/ = %d", resp.StatusCode)
	}
	// Plain HTTP gets no registry answer (Go's TLS server replies 400).
	if resp, err := http.Get("http://" + r.Host + "/v2/"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
			t.Errorf("plain HTTP answered %d on a TLS registry", resp.StatusCode)
		}
	}
}
