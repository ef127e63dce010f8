package media

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestManifestRoundTrip(t *testing.T) {
	m := Manifest{
		{Path: "user-data", Sum: sha256.Sum256([]byte("u"))},
		{Path: "drove/bin/drove-linux-amd64", Sum: sha256.Sum256([]byte("b"))},
	}.sorted()
	var b bytes.Buffer
	if _, err := m.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	got, err := ParseManifest(&b)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != m[0] || got[1] != m[1] || got[0].Path != "drove/bin/drove-linux-amd64" {
		t.Fatalf("round trip: %+v", got)
	}
}

// TestManifestIsSha256sumFormat: sha256sum -c accepts what WriteTo
// writes, and rejects it once a file changes.
func TestManifestIsSha256sumFormat(t *testing.T) {
	if _, err := exec.LookPath("sha256sum"); err != nil {
		t.Skip("sha256sum not installed (coreutils)")
	}
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "drove"), 0o755)
	os.WriteFile(filepath.Join(dir, "drove", "a b"), []byte("a"), 0o644)
	os.WriteFile(filepath.Join(dir, "user-data"), []byte("u"), 0o644)
	m := Manifest{{Path: "drove/a b", Sum: sha256.Sum256([]byte("a"))}, {Path: "user-data", Sum: sha256.Sum256([]byte("u"))}}
	var b bytes.Buffer
	m.WriteTo(&b)
	os.WriteFile(filepath.Join(dir, "drove", "MANIFEST.sha256"), b.Bytes(), 0o644)
	check := func() error {
		cmd := exec.Command("sha256sum", "-c", "--strict", "drove/MANIFEST.sha256")
		cmd.Dir = dir
		return cmd.Run()
	}
	if err := check(); err != nil {
		t.Fatalf("sha256sum -c: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "user-data"), []byte("v"), 0o644)
	if err := check(); err == nil {
		t.Fatal("sha256sum -c accepted a changed file")
	}
}

func TestParseManifestRejects(t *testing.T) {
	sum := strings.Repeat("ab", 32)
	for name, in := range map[string]string{
		"no newline":     sum + "  a",
		"short sum":      "abcd  a\n",
		"upper case":     strings.ToUpper(sum) + "  a\n",
		"one space":      sum + " a\n",
		"absolute":       sum + "  /etc/passwd\n",
		"dot dot":        sum + "  drove/../../x\n",
		"dot":            sum + "  .\n",
		"empty line":     sum + "  a\n\n",
		"twice":          sum + "  a\n" + sum + "  a\n",
		"itself":         sum + "  " + ManifestPath + "\n",
		"backslash":      sum + "  a\\b\n",
		"crlf":           sum + "  a\r\n",
		"not hex":        strings.Repeat("zz", 32) + "  a\n",
		"trailing slash": sum + "  a/\n",
	} {
		t.Run(name, func(t *testing.T) {
			if m, err := ParseManifest(strings.NewReader(in)); !errors.Is(err, ErrManifest) {
				t.Fatalf("ParseManifest(%q) = %v, %v; want ErrManifest", in, m, err)
			}
		})
	}
	if m, err := ParseManifest(strings.NewReader(sum + " *bin\n")); err != nil || m[0].Path != "bin" {
		t.Fatalf("binary mark: %v %v", m, err)
	}
	if m, err := ParseManifest(strings.NewReader("")); err != nil || len(m) != 0 {
		t.Fatalf("empty manifest: %v %v", m, err)
	}
}

// FuzzParseManifest: the parser never panics, and what it accepts writes
// back to input it parses to the same entries.
func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(strings.Repeat("ab", 32) + "  drove/token\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := ParseManifest(bytes.NewReader(in))
		if err != nil {
			if !errors.Is(err, ErrManifest) {
				t.Fatalf("error not matching ErrManifest: %v", err)
			}
			return
		}
		seen := map[string]bool{}
		for _, e := range m {
			if e.Path == "" || strings.HasPrefix(e.Path, "/") || strings.Contains("/"+e.Path+"/", "/../") || seen[e.Path] {
				t.Fatalf("accepted a bad path %q", e.Path)
			}
			seen[e.Path] = true
		}
		var b bytes.Buffer
		m.WriteTo(&b)
		again, err := ParseManifest(&b)
		if err != nil || len(again) != len(m) {
			t.Fatalf("rewrite of an accepted manifest: %v", err)
		}
		for i := range m {
			if again[i] != m[i] {
				t.Fatalf("entry %d: %+v then %+v", i, m[i], again[i])
			}
		}
	})
}
