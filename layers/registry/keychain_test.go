package registry

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

func TestKeychainResolve(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.json")
	data := `{"auths":{"https://index.docker.io/v1/":{"auth":"` + b64("hub:pw") + `"},` +
		`"127.0.0.2:5000":{"auth":"` + b64("u:p") + `"},"ghcr.io":{"registrytoken":"tok"}}}`
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	kc := Keychain{Path: path}
	for _, tc := range []struct {
		registry string
		want     authn.AuthConfig
	}{
		{"index.docker.io", authn.AuthConfig{Username: "hub", Password: "pw"}},
		{"docker.io", authn.AuthConfig{Username: "hub", Password: "pw"}},
		{"127.0.0.2:5000", authn.AuthConfig{Username: "u", Password: "p"}},
		{"ghcr.io", authn.AuthConfig{RegistryToken: "tok"}},
	} {
		reg, err := name.NewRegistry(tc.registry)
		if err != nil {
			t.Fatal(err)
		}
		a, err := kc.Resolve(reg)
		if err != nil {
			t.Fatalf("Resolve(%s): %v", tc.registry, err)
		}
		got, err := a.Authorization()
		if err != nil {
			t.Fatal(err)
		}
		if *got != tc.want {
			t.Errorf("Resolve(%s) = %+v, want %+v", tc.registry, *got, tc.want)
		}
	}
	reg, _ := name.NewRegistry("quay.io")
	if a, err := kc.Resolve(reg); err != nil || a != authn.Anonymous {
		t.Errorf("Resolve(quay.io) = %v, %v; want anonymous", a, err)
	}
}

func TestKeychainMissingAndBrokenFile(t *testing.T) {
	dir := t.TempDir()
	reg, _ := name.NewRegistry("ghcr.io")
	if a, err := (Keychain{Path: filepath.Join(dir, "none.json")}).Resolve(reg); err != nil || a != authn.Anonymous {
		t.Errorf("missing file: %v, %v; want anonymous", a, err)
	}
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"auths":{"ghcr.io":{"auth":"###"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := (Keychain{Path: bad}).Resolve(reg); err == nil {
		t.Error("broken entry resolved without error")
	}
}

func TestNewKeychainUsesDockerConfig(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("DOCKER_CONFIG", dir)
	kc, err := NewKeychain("")
	if err != nil {
		t.Fatal(err)
	}
	if kc.Path != filepath.Join(dir, "config.json") {
		t.Errorf("Path = %q", kc.Path)
	}
	kc, _ = NewKeychain("/explicit.json")
	if kc.Path != "/explicit.json" {
		t.Errorf("explicit Path = %q", kc.Path)
	}
}
