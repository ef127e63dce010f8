package reference

import (
	"strconv"
	"strings"
	"testing"
)

const zeroDigest = "sha256:0000000000000000000000000000000000000000000000000000000000000000"

func TestNormalize(t *testing.T) {
	for _, tc := range []struct {
		in, want, familiar string
	}{
		{"foo", "docker.io/library/foo:latest", "foo:latest"},
		{"foo:1.2", "docker.io/library/foo:1.2", "foo:1.2"},
		{"bar/foo", "docker.io/bar/foo:latest", "bar/foo:latest"},
		{"docker.io/foo", "docker.io/library/foo:latest", "foo:latest"},
		{"docker.io/library/foo:latest", "docker.io/library/foo:latest", "foo:latest"},
		{"index.docker.io/library/foo", "docker.io/library/foo:latest", "foo:latest"},
		{"index.docker.io/bar/foo:2", "docker.io/bar/foo:2", "bar/foo:2"},
		{"registry-1.docker.io/foo", "docker.io/library/foo:latest", "foo:latest"},
		{"registry-1.docker.io/bar/foo:3", "docker.io/bar/foo:3", "bar/foo:3"},
		{"docker.io/library/a/b:c", "docker.io/library/a/b:c", "library/a/b:c"},
		{"a/b/c/d:e", "docker.io/a/b/c/d:e", "a/b/c/d:e"},
		{"ghcr.io/x/y", "ghcr.io/x/y:latest", "ghcr.io/x/y:latest"},
		{"localhost/foo", "localhost/foo:latest", "localhost/foo:latest"},
		{"localhost:5000/foo:v1", "localhost:5000/foo:v1", "localhost:5000/foo:v1"},
		{"127.0.0.2:5000/a/b:c", "127.0.0.2:5000/a/b:c", "127.0.0.2:5000/a/b:c"},
		{"[::1]:5000/foo", "[::1]:5000/foo:latest", "[::1]:5000/foo:latest"},
		{"foo@" + zeroDigest, "docker.io/library/foo@" + zeroDigest, "foo@" + zeroDigest},
		{"foo:t@" + zeroDigest, "docker.io/library/foo@" + zeroDigest, "foo@" + zeroDigest},
		{"quay.io/a/b@" + zeroDigest, "quay.io/a/b@" + zeroDigest, "quay.io/a/b@" + zeroDigest},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := Normalize(tc.in)
			if err != nil {
				t.Fatalf("Normalize(%q): %v", tc.in, err)
			}
			if got != tc.want {
				t.Errorf("Normalize(%q) = %q, want %q", tc.in, got, tc.want)
			}
			ref, err := Parse(tc.in)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.in, err)
			}
			if f := Familiar(ref); f != tc.familiar {
				t.Errorf("Familiar(%q) = %q, want %q", tc.in, f, tc.familiar)
			}
		})
	}
}

func TestParseReferenceInvalid(t *testing.T) {
	for _, in := range []string{
		"", " foo", "foo ", "Foo", "foo:", "foo@sha256:abc", ":tag", "foo/../bar",
		"foo:" + strings.Repeat("a", 200), "http://foo/bar", "foo bar",
	} {
		t.Run(in, func(t *testing.T) {
			_, err := Parse(in)
			if err == nil {
				t.Fatalf("Parse(%q) succeeded", in)
			}
			if !strings.Contains(err.Error(), strconv.Quote(in)) {
				t.Errorf("error %q does not quote the input %s", err, strconv.Quote(in))
			}
			if _, err := Normalize(in); err == nil {
				t.Errorf("Normalize(%q) succeeded", in)
			}
		})
	}
}

func FuzzParseReference(f *testing.F) {
	for _, s := range []string{
		"foo", "foo:1", "bar/foo", "docker.io/foo", "index.docker.io/library/foo:latest",
		"registry-1.docker.io/foo", "localhost:5000/a/b:c", "[::1]:5000/x", "Docker.IO/foo",
		"foo@" + zeroDigest, "foo:t@" + zeroDigest, "", "Foo", "a:b:c",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ref, err := Parse(s)
		if err != nil {
			if !strings.Contains(err.Error(), strconv.Quote(s)) {
				t.Fatalf("error %q does not quote the input", err)
			}
			return
		}
		n1 := String(ref)
		n2, err := Normalize(n1)
		if err != nil {
			t.Fatalf("normalised %q of %q does not parse: %v", n1, s, err)
		}
		if n1 != n2 {
			t.Fatalf("Normalize not idempotent: %q -> %q -> %q", s, n1, n2)
		}
		fam := Familiar(ref)
		n3, err := Normalize(fam)
		if err != nil {
			t.Fatalf("familiar name %q of %q does not parse: %v", fam, s, err)
		}
		if n3 != n1 {
			t.Fatalf("familiar name %q of %q normalises to %q, want %q", fam, s, n3, n1)
		}
	})
}

func TestFamiliarKeepsHubWhenPathLooksLikeAHost(t *testing.T) {
	for in, want := range map[string]string{
		"docker.io/0.0/x":        "docker.io/0.0/x:latest",
		"docker.io/localhost/x":  "docker.io/localhost/x:latest",
		"docker.io/bar/foo:1":    "bar/foo:1",
		"docker.io/library/x:v1": "x:v1",
	} {
		if got := FamiliarString(in); got != want {
			t.Errorf("FamiliarString(%q) = %q, want %q", in, got, want)
		}
	}
}
