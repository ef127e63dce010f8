package netinstall

import (
	"errors"
	"strings"
	"testing"
)

func TestParseBinaryName(t *testing.T) {
	good := map[string][2]string{
		"drove-linux-amd64":        {"linux", "amd64"},
		"drove-linux-arm64":        {"linux", "arm64"},
		"drove-freebsd-386":        {"freebsd", "386"},
		"drove-linux-loong64":      {"linux", "loong64"},
		"drove-darwin-arm64":       {"darwin", "arm64"},
		"drove-linux-ppc64le":      {"linux", "ppc64le"},
		"drove-a-b":                {"a", "b"},
		"drove-abcdefghijklmnop-x": {"abcdefghijklmnop", "x"},
	}
	for name, want := range good {
		goos, goarch, err := ParseBinaryName(name)
		if err != nil || goos != want[0] || goarch != want[1] {
			t.Errorf("ParseBinaryName(%q) = %q, %q, %v; want %q, %q", name, goos, goarch, err, want[0], want[1])
		}
		if BinaryName(goos, goarch) != name {
			t.Errorf("BinaryName(%q, %q) = %q, want %q", goos, goarch, BinaryName(goos, goarch), name)
		}
	}
	for _, name := range []string{
		"", "drove", "drove-", "drove-linux", "drove-linux-", "drove--amd64", "drove-linux-amd64-extra",
		"drove-Linux-amd64", "drove-linux-amd64.exe", "drove-../etc-passwd", "drove-linux-../x", "x-linux-amd64",
		"drove-linux-amd64\x00", "drove-abcdefghijklmnopq-x", "drove-linux-a/b", "drove-linux-amd 64",
	} {
		if goos, goarch, err := ParseBinaryName(name); !errors.Is(err, ErrBadBinaryName) {
			t.Errorf("ParseBinaryName(%q) = %q, %q, %v; want ErrBadBinaryName", name, goos, goarch, err)
		}
	}
}

func TestBearer(t *testing.T) {
	for header, want := range map[string]string{
		"Bearer abc":   "abc",
		"bearer abc":   "abc",
		"BEARER   abc": "abc",
	} {
		if got, ok := bearer(header); !ok || got != want {
			t.Errorf("bearer(%q) = %q, %v; want %q", header, got, ok, want)
		}
	}
	for _, header := range []string{"", "Bearer", "Bearer ", "Basic abc", "Bearerabc", "Bearer a b", "Bearer a\tb", "Token abc"} {
		if got, ok := bearer(header); ok {
			t.Errorf("bearer(%q) = %q, want none", header, got)
		}
	}
}

// FuzzParseBinaryName: whatever the name, a parsed one is exactly
// drove-<os>-<arch> of plain lower-case parts, so it never names a path
// outside the binary directory.
func FuzzParseBinaryName(f *testing.F) {
	f.Add("drove-linux-amd64")
	f.Fuzz(func(t *testing.T, name string) {
		goos, goarch, err := ParseBinaryName(name)
		if err != nil {
			if !errors.Is(err, ErrBadBinaryName) {
				t.Fatalf("ParseBinaryName(%q): error %v is not ErrBadBinaryName", name, err)
			}
			return
		}
		if BinaryName(goos, goarch) != name {
			t.Fatalf("ParseBinaryName(%q) = %q, %q: does not rebuild the name", name, goos, goarch)
		}
		if strings.ContainsAny(goos+goarch, "/\\.-\x00 ") || goos == "" || goarch == "" {
			t.Fatalf("ParseBinaryName(%q) = %q, %q: unsafe parts", name, goos, goarch)
		}
	})
}

// FuzzBearer: a credential found is non-empty, has no white space, and is
// what follows the scheme in the header.
func FuzzBearer(f *testing.F) {
	f.Add("Bearer abc")
	f.Fuzz(func(t *testing.T, header string) {
		cred, ok := bearer(header)
		if !ok {
			if cred != "" {
				t.Fatalf("bearer(%q) returned %q without ok", header, cred)
			}
			return
		}
		if cred == "" || strings.ContainsAny(cred, " \t\r\n") || !strings.HasSuffix(header, " "+cred) {
			t.Fatalf("bearer(%q) = %q", header, cred)
		}
		if !strings.EqualFold(header[:len("Bearer")], "Bearer") {
			t.Fatalf("bearer(%q) accepted another scheme", header)
		}
	})
}
