package registry

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/drove-project/drove/internal/testregistry"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

func TestEndpointCredentials(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.json")
	f, _ := ParseAuthFile(nil)
	f.Set("docker.io", Credential{Username: "filed", Password: "pw"})
	f.Set("quay.io", Credential{Username: "filed", Password: "pw"})
	if err := WriteAuthFile(path, f); err != nil {
		t.Fatal(err)
	}
	given := &authn.Basic{Username: "given", Password: "pw"}
	for _, tc := range []struct {
		name   string
		host   string
		given  map[string]authn.Authenticator
		source CredentialSource
		user   string // "" for anonymous
	}{
		{"auth file", "quay.io", nil, FromAuthFile, "filed"},
		{"hub alias in the auth file", "index.docker.io", nil, FromAuthFile, "filed"},
		{"given wins", "quay.io", map[string]authn.Authenticator{"quay.io": given}, FromCaller, "given"},
		{"given under another spelling", "index.docker.io", map[string]authn.Authenticator{"https://Docker.io/": given}, FromCaller, "given"},
		{"given for another registry", "quay.io", map[string]authn.Authenticator{"ghcr.io": given}, FromAuthFile, "filed"},
		{"nil entry ignored", "quay.io", map[string]authn.Authenticator{"quay.io": nil}, FromAuthFile, "filed"},
		{"none", "ghcr.io", nil, NoCredentials, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := Options{AuthFile: path}.Endpoint(tc.host, tc.given)
			if err != nil {
				t.Fatal(err)
			}
			if e.Source != tc.source {
				t.Errorf("Source = %d, want %d", e.Source, tc.source)
			}
			if tc.user == "" {
				if e.Auth != authn.Anonymous {
					t.Errorf("Auth = %v, want anonymous", e.Auth)
				}
				return
			}
			cfg, err := e.Auth.Authorization()
			if err != nil || cfg.Username != tc.user {
				t.Errorf("Auth user = %q (%v), want %q", cfg.Username, err, tc.user)
			}
		})
	}
}

func TestEndpointScheme(t *testing.T) {
	for _, tc := range []struct {
		host     string
		insecure bool
		want     string
	}{
		{"127.0.0.3:5000", false, "http"},
		{"localhost:5000", false, "http"},
		{"ghcr.io", false, "https"},
		{"ghcr.io", true, "http"},
	} {
		e, err := Options{Insecure: tc.insecure, AuthFile: filepath.Join(t.TempDir(), "none.json")}.Endpoint(tc.host, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := e.Registry.Scheme(); got != tc.want {
			t.Errorf("scheme of %s (insecure=%v) = %s, want %s", tc.host, tc.insecure, got, tc.want)
		}
	}
	if _, err := (Options{}).Endpoint("bad host!", nil); err == nil || !strings.Contains(err.Error(), `"bad host!"`) {
		t.Errorf("Endpoint of an invalid host: %v, want an error naming it", err)
	}
}

// TestEndpointTransportTLSAndUserAgent reaches a self-signed loopback
// registry through Endpoint.Transport the way a pull-through proxy does,
// with credentials given by the caller.
func TestEndpointTransportTLSAndUserAgent(t *testing.T) {
	reg := testregistry.Start(t, testregistry.Opts{TLS: true, User: "u", Password: "p"})
	ctx := context.Background()
	for _, tc := range []struct {
		name     string
		password string
		wantErr  string
	}{
		{"right", "p", ""},
		{"wrong", "nope", "registry " + reg.Host + " rejected the credentials given for it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := Options{AuthFile: filepath.Join(t.TempDir(), "none.json")}
			e, err := opts.Endpoint(reg.Host, map[string]authn.Authenticator{reg.Host: &authn.Basic{Username: "u", Password: tc.password}})
			if err != nil {
				t.Fatal(err)
			}
			scope := e.Registry.Repo("any/repo").Scope(transport.PullScope)
			rt, err := transport.NewWithContext(ctx, e.Registry, e.Auth, e.Transport(), []string{scope})
			if err == nil {
				var req *http.Request
				req, err = http.NewRequestWithContext(ctx, http.MethodGet, "https://"+reg.Host+"/v2/", nil)
				if err != nil {
					t.Fatal(err)
				}
				var resp *http.Response
				if resp, err = (&http.Client{Transport: rt}).Do(req); err == nil {
					err = transport.CheckError(resp, http.StatusOK)
					resp.Body.Close()
				}
			}
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("GET /v2/ through the endpoint of a self-signed loopback registry: %v", err)
				}
				return
			}
			cerr := e.Classify(err, "")
			if !errors.Is(cerr, ErrUnauthorized) || !strings.Contains(cerr.Error(), tc.wantErr) {
				t.Fatalf("Classify(%v) = %v, want ErrUnauthorized saying %q", err, cerr, tc.wantErr)
			}
		})
	}
}

// TestEndpointUserAgent checks that both ways of using an Endpoint send
// Options.UserAgent.
func TestEndpointUserAgent(t *testing.T) {
	var mu sync.Mutex
	var agents []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		agents = append(agents, r.Header.Get("User-Agent"))
		mu.Unlock()
		w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
		if r.URL.Path == "/v2/" {
			w.WriteHeader(http.StatusOK)
			return
		}
		w.WriteHeader(http.StatusNotFound)
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	opts := Options{AuthFile: filepath.Join(t.TempDir(), "none.json"), UserAgent: "drove-test/1"}
	e, err := opts.Endpoint(host, nil)
	if err != nil {
		t.Fatal(err)
	}
	ref := e.Registry.Repo("a").Tag("1")
	_, err = remote.Get(ref, append(e.RemoteOptions(), remote.WithContext(context.Background()))...)
	if cerr := e.Classify(err, ref.String()); !errors.Is(cerr, ErrNotFound) || !strings.Contains(cerr.Error(), ref.String()) {
		t.Errorf("Get of a missing tag: %v, want ErrNotFound naming %s", cerr, ref)
	}
	resp, err := (&http.Client{Transport: e.Transport()}).Get(srv.URL + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	mu.Lock()
	defer mu.Unlock()
	if len(agents) < 2 {
		t.Fatalf("the server saw %d requests, want at least 2", len(agents))
	}
	for _, a := range agents {
		if !strings.HasPrefix(a, "drove-test/1") {
			t.Errorf("User-Agent %q does not start with drove-test/1", a)
		}
	}
}

func TestClassifyCallerCredentialsAndNoRef(t *testing.T) {
	reg, err := name.NewRegistry("index.docker.io")
	if err != nil {
		t.Fatal(err)
	}
	e := Endpoint{Registry: reg, Source: FromCaller}
	err = e.Classify(&transport.Error{StatusCode: http.StatusUnauthorized}, "")
	if !errors.Is(err, ErrUnauthorized) || err.Error() != "unauthorized: registry docker.io rejected the credentials given for it" {
		t.Errorf("Classify = %q", err)
	}
	err = e.Classify(&transport.Error{StatusCode: http.StatusNotFound,
		Errors: []transport.Diagnostic{{Code: transport.ManifestUnknownErrorCode, Message: "gone"}}}, "")
	if !errors.Is(err, ErrNotFound) || err.Error() != "not found: MANIFEST_UNKNOWN: gone" {
		t.Errorf("Classify without a ref = %q", err)
	}
}
