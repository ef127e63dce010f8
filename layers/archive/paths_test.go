package archive

import (
	"errors"
	"testing"
)

func TestEntryName(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		unsafe   bool
	}{
		{"index.json", "index.json", false},
		{"./index.json", "index.json", false},
		{"blobs//sha256/./abc", "blobs/sha256/abc", false},
		{"blobs/", "blobs", false},
		{"./", "", false},
		{"a..b/c", "a..b/c", false},
		{"", "", true},
		{"../x", "", true},
		{"a/../../x", "", true},
		{"a/../x", "", true}, // ".." anywhere is refused, even when it stays inside
		{"/etc/passwd", "", true},
		{"a\\..\\x", "", true},
		{"a\x00b", "", true},
	} {
		got, err := entryName(tc.in)
		if tc.unsafe != errors.Is(err, ErrUnsafePath) || (!tc.unsafe && err != nil) || got != tc.want {
			t.Errorf("entryName(%q) = %q, %v; want %q, unsafe %v", tc.in, got, err, tc.want, tc.unsafe)
		}
	}
}

func TestLinkTarget(t *testing.T) {
	for _, tc := range []struct {
		name, target string
		symlink      bool
		want         string
		unsafe       bool
	}{
		{"b/layer.tar", "../a/layer.tar", true, "a/layer.tar", false},
		{"b/layer.tar", "layer0.tar", true, "b/layer0.tar", false},
		{"b/layer.tar", "a/layer.tar", false, "a/layer.tar", false}, // hard links: from the root
		{"layer.tar", "../x", true, "", true},
		{"b/layer.tar", "../../x", true, "", true},
		{"x", "../x", false, "", true},
		{"x", "/etc/passwd", true, "", true},
		{"x", "", true, "", true},
		{"b/x", "..", true, "", true},
		{"b/x", ".", false, "", true},
	} {
		got, err := linkTarget(tc.name, tc.target, tc.symlink)
		if tc.unsafe != errors.Is(err, ErrUnsafePath) || (!tc.unsafe && err != nil) || got != tc.want {
			t.Errorf("linkTarget(%q, %q, %v) = %q, %v; want %q, unsafe %v", tc.name, tc.target, tc.symlink, got, err, tc.want, tc.unsafe)
		}
	}
}
