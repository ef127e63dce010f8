package registry

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/drove-project/drove/internal/testregistry"
)

// readJSON decodes the file at path into a generic map.
func readJSON(t *testing.T, path string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return decodeJSON(t, data)
}

func TestLoginLogoutRealRegistry(t *testing.T) {
	reg := testregistry.Start(t, testregistry.Opts{User: "alice", Password: "s3cret"})
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "docker", "config.json")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	orig := `{"auths":{"ghcr.io":{"auth":"` + b64("g:h") + `"}},"credsStore":"pass","psFormat":"{{.ID}}"}`
	if err := os.WriteFile(path, []byte(orig), 0o600); err != nil {
		t.Fatal(err)
	}
	opts := Options{AuthFile: path}

	// Wrong password: the registry is named, the file is untouched.
	err := Login(ctx, reg.Host, "alice", "wrong", opts)
	if !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("Login with wrong password: %v, want ErrUnauthorized", err)
	}
	if want := "login to " + reg.Host + ": unauthorized: wrong username or password"; err.Error() != want {
		t.Errorf("error text %q, want %q", err, want)
	}
	if data, _ := os.ReadFile(path); string(data) != orig {
		t.Errorf("failed login changed the file:\n%s", data)
	}

	// Right password: the entry is written, the rest kept.
	if err := Login(ctx, reg.Host, "alice", "s3cret", opts); err != nil {
		t.Fatalf("Login: %v", err)
	}
	got := readJSON(t, path)
	want := decodeJSON(t, []byte(orig))
	want["auths"].(map[string]any)[reg.Host] = map[string]any{"auth": b64("alice:s3cret")}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("config after login:\n got %v\nwant %v", got, want)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("config mode after login: %v %v", fi, err)
	}

	// Logout removes only that entry; a second one says not logged in.
	if err := Logout(reg.Host, opts); err != nil {
		t.Fatalf("Logout: %v", err)
	}
	if got := readJSON(t, path); !reflect.DeepEqual(got, decodeJSON(t, []byte(orig))) {
		t.Errorf("config after logout: %v", got)
	}
	err = Logout(reg.Host, opts)
	if !errors.Is(err, ErrNotLoggedIn) || err.Error() != "not logged in to "+reg.Host {
		t.Errorf("second Logout: %v", err)
	}
}

func TestLoginFailureCreatesNoFile(t *testing.T) {
	reg := testregistry.Start(t, testregistry.Opts{User: "bob", Password: "pw"})
	path := filepath.Join(t.TempDir(), "config.json")
	err := Login(context.Background(), reg.Host, "bob", "nope", Options{AuthFile: path})
	if !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("Login: %v, want ErrUnauthorized", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("failed login created %s: %v", path, err)
	}
}

func TestLoginOtherLoopbackAddressUsesHTTP(t *testing.T) {
	reg := testregistry.Start(t, testregistry.Opts{User: "u", Password: "p", IP: "127.0.0.2"})
	path := filepath.Join(t.TempDir(), "config.json")
	if err := Login(context.Background(), reg.Host, "u", "p", Options{AuthFile: path}); err != nil {
		t.Fatalf("Login to %s: %v", reg.Host, err)
	}
	f, err := ReadAuthFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if c, ok, err := f.Get(reg.Host); err != nil || !ok || c.Username != "u" || c.Password != "p" {
		t.Errorf("stored credential = %+v %v %v", c, ok, err)
	}
}

func TestLoginAnonymousRegistrySucceeds(t *testing.T) {
	reg := testregistry.Start(t, testregistry.Opts{})
	path := filepath.Join(t.TempDir(), "config.json")
	if err := Login(context.Background(), reg.Host, "any", "thing", Options{AuthFile: path}); err != nil {
		t.Fatalf("Login to a registry without auth: %v", err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("credentials not saved: %v", err)
	}
}

func TestLoginUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := l.Addr().String()
	l.Close() // nothing listens there now
	err = Login(context.Background(), host, "u", "p", Options{AuthFile: filepath.Join(t.TempDir(), "c.json")})
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("Login to closed port: %v, want ErrUnreachable", err)
	}
	if !strings.Contains(err.Error(), host) || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("error %q does not name %s and the refusal", err, host)
	}
}

func TestLoginRejectsEmptyCredentials(t *testing.T) {
	err := Login(context.Background(), "127.0.0.1:1", "", "p", Options{AuthFile: filepath.Join(t.TempDir(), "c.json")})
	if err == nil || !strings.Contains(err.Error(), "must not be empty") {
		t.Errorf("Login with empty username: %v", err)
	}
}

// tokenRegistry serves the token-auth handshake of a registry: /v2/ wants a
// bearer token, /token issues one for user:password only. It stands in for
// a token server, which the Debian registry package cannot provide.
func tokenRegistry(t *testing.T, user, password string) (host string, tokenRequests *atomic.Int32) {
	t.Helper()
	tokenRequests = &atomic.Int32{}
	mux := http.NewServeMux()
	mux.HandleFunc("/v2/", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "Bearer good-token" {
			w.WriteHeader(http.StatusOK)
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="http://`+r.Host+`/token",service="test"`)
		w.WriteHeader(http.StatusUnauthorized)
	})
	mux.HandleFunc("/token", func(w http.ResponseWriter, r *http.Request) {
		tokenRequests.Add(1)
		u, p, ok := r.BasicAuth()
		if !ok || u != user || p != password {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}`))
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]string{"token": "good-token"})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String(), tokenRequests
}

func TestLoginTokenRegistry(t *testing.T) {
	host, tokens := tokenRegistry(t, "carol", "pw")
	path := filepath.Join(t.TempDir(), "config.json")
	ctx := context.Background()

	err := Login(ctx, host, "carol", "bad", Options{AuthFile: path})
	if !errors.Is(err, ErrUnauthorized) || err.Error() != "login to "+host+": unauthorized: wrong username or password" {
		t.Fatalf("Login with wrong password: %v", err)
	}
	if tokens.Load() == 0 {
		t.Fatal("token endpoint never asked: the bearer flow was not exercised")
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("failed login wrote the file: %v", err)
	}
	if err := Login(ctx, host, "carol", "pw", Options{AuthFile: path}); err != nil {
		t.Fatalf("Login with right password: %v", err)
	}
	f, err := ReadAuthFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if c, ok, _ := f.Get(host); !ok || c.Username != "carol" {
		t.Errorf("stored credential = %+v %v", c, ok)
	}
}

func TestLogoutHubAliases(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.json")
	data := `{"auths":{"https://index.docker.io/v1/":{"auth":"` + b64("a:b") + `"},"quay.io":{"auth":"` + b64("c:d") + `"}}}`
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Logout("registry-1.docker.io", Options{AuthFile: path}); err != nil {
		t.Fatalf("Logout: %v", err)
	}
	err := Logout("docker.io", Options{AuthFile: path})
	if !errors.Is(err, ErrNotLoggedIn) || err.Error() != "not logged in to docker.io" {
		t.Errorf("second Logout: %v", err)
	}
	f, err := ReadAuthFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Registries(); !reflect.DeepEqual(got, []string{"quay.io"}) {
		t.Errorf("entries after logout = %v", got)
	}
}
