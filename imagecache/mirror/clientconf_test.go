package mirror

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// golden compares got with the file testdata/name, or rewrites it with
// -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs from the golden file:\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// entries lists the names in dir, sorted.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

func TestWriteHostsDir(t *testing.T) {
	dir := t.TempDir()
	foreign := filepath.Join(dir, "quay.io", "hosts.toml")
	const foreignContent = "server = \"https://quay.io\"\n\n[host.\"https://mirror.example\"]\n  capabilities = [\"pull\"]\n"
	if err := os.MkdirAll(filepath.Dir(foreign), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(foreign, []byte(foreignContent), 0o644); err != nil {
		t.Fatal(err)
	}
	regs := []string{"docker.io", "registry.k8s.io", "127.0.0.1:41234", "https://Registry-1.Docker.io/", "quay.io"}
	opts := HostsOptions{Default: true, Aliases: []string{SealerHub}}

	for round := range 2 {
		skipped, err := WriteHostsDir(dir, regs, "http://127.0.0.1:5050", opts)
		if err != nil || !slices.Equal(skipped, []string{foreign}) {
			t.Fatalf("round %d: skipped %q, error %v; want %s skipped only", round, skipped, err, foreign)
		}
		if b, _ := os.ReadFile(foreign); string(b) != foreignContent {
			t.Fatalf("round %d: the foreign hosts.toml was changed:\n%s", round, b)
		}
		want := []string{"127.0.0.1:41234", "_default", "docker.io", "quay.io", "registry.k8s.io", "sea.hub:5000"}
		if got := entries(t, dir); !slices.Equal(got, want) {
			t.Fatalf("round %d: directories %q, want %q", round, got, want)
		}
		for _, reg := range want {
			if reg == "quay.io" {
				continue
			}
			if got := entries(t, filepath.Join(dir, reg)); !slices.Equal(got, []string{"hosts.toml"}) {
				t.Errorf("round %d: %s holds %q, want hosts.toml alone", round, reg, got)
			}
			b, err := os.ReadFile(filepath.Join(dir, reg, "hosts.toml"))
			if err != nil {
				t.Fatal(err)
			}
			golden(t, filepath.Join("hosts", strings.ReplaceAll(reg, ":", "_")+".toml"), b)
		}
		// A file drove wrote is replaced on the next run, edits and all.
		edited := filepath.Join(dir, "docker.io", "hosts.toml")
		if err := os.WriteFile(edited, []byte(DroveMarker+" (edited)\nserver = \"https://elsewhere\"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestWriteHostsDirRefusesBadInput(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		regs   []string
		mirror string
	}{
		{[]string{"docker.io/library"}, "http://127.0.0.1:5050"},
		{[]string{".."}, "http://127.0.0.1:5050"},
		{[]string{""}, "http://127.0.0.1:5050"},
		{[]string{"docker.io"}, "127.0.0.1:5050"},
	} {
		if _, err := WriteHostsDir(dir, c.regs, c.mirror, HostsOptions{}); err == nil {
			t.Errorf("registries %q, mirror %q: error %v, want a refusal", c.regs, c.mirror, err)
		}
	}
	if got := entries(t, dir); len(got) != 0 {
		t.Errorf("refused input left %q behind", got)
	}
}

func TestWriteRegistriesConf(t *testing.T) {
	path := filepath.Join(t.TempDir(), "containers", "registries.conf")
	if err := WriteRegistriesConf(path, []string{"docker.io", "index.docker.io", "127.0.0.1:41234", "quay.io", "localhost:5000"}, "http://127.0.0.1:5050/"); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "registries.conf", b)
	if err := WriteRegistriesConf(path, []string{"[::1]:5000"}, "127.0.0.1:5050"); err == nil {
		t.Error("an IPv6 registry, which no mirror path can name, was accepted")
	}
	if after, _ := os.ReadFile(path); string(after) != string(b) {
		t.Error("a refused write changed the file")
	}
}
