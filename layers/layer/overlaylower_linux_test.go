package layer

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// overlayBase is the lower layer the overlay-lower tests hide parts of;
// every directory is listed, so no mtime depends on when it was applied.
func overlayBase(t *testing.T) []byte {
	return makeTar(t,
		tEnt{name: "etc/", typ: tar.TypeDir, mtime: 100},
		tEnt{name: "etc/keep", body: "keep", mtime: 100},
		tEnt{name: "etc/gone", body: "gone", mtime: 100},
		tEnt{name: "var/", typ: tar.TypeDir, mtime: 100},
		tEnt{name: "var/lib/", typ: tar.TypeDir, mtime: 100},
		tEnt{name: "var/lib/a", body: "a", mtime: 100},
		tEnt{name: "var/lib/sub/", typ: tar.TypeDir, mtime: 100},
		tEnt{name: "var/lib/sub/b", body: "b", mtime: 100},
		tEnt{name: "var/log", body: "log", mtime: 100},
		tEnt{name: "opt/", typ: tar.TypeDir, mtime: 100},
		tEnt{name: "opt/x/", typ: tar.TypeDir, mode: 0o750, mtime: 100},
		tEnt{name: "opt/x/y", body: "y", mtime: 100},
		tEnt{name: "opt/x/deep/", typ: tar.TypeDir, mtime: 100},
		tEnt{name: "opt/x/deep/z", body: "z", mtime: 100},
		tEnt{name: "usr/", typ: tar.TypeDir, mtime: 100},
		tEnt{name: "usr/lib/", typ: tar.TypeDir, mtime: 100},
		tEnt{name: "usr/lib/l", body: "l", mtime: 100},
		tEnt{name: "lib", typ: tar.TypeSymlink, link: "usr/lib", mtime: 100},
	)
}

// TestApplyOverlayLowerMerged mounts each layer, unpacked by
// ApplyOverlayLower, over overlayBase unpacked the same way, and checks
// that the merged view is what Apply of both layers in order makes.
func TestApplyOverlayLowerMerged(t *testing.T) {
	needRoot(t)
	tests := []struct {
		name  string
		layer []tEnt
	}{
		{"file whiteout, directory whiteout, opaque directory", []tEnt{
			{name: "etc/", typ: tar.TypeDir, mode: 0o750, mtime: 200},
			{name: "etc/.wh.gone"},
			{name: "var/", typ: tar.TypeDir, mtime: 200},
			{name: "var/.wh.lib"},
			{name: "opt/", typ: tar.TypeDir, mtime: 200},
			{name: "opt/x/", typ: tar.TypeDir, mtime: 200},
			{name: "opt/x/.wh..wh..opq"},
			{name: "opt/x/new", body: "new", mtime: 200}}},
		{"opaque after the layer's own entries", []tEnt{
			{name: "opt/", typ: tar.TypeDir, mtime: 200},
			{name: "opt/x/", typ: tar.TypeDir, mtime: 200},
			{name: "opt/x/new", body: "new", mtime: 200},
			{name: "opt/x/deep/", typ: tar.TypeDir, mtime: 200},
			{name: "opt/x/deep/c", body: "c", mtime: 200},
			{name: "opt/x/.wh..wh..opq"}}},
		{"whiteout then a new directory", []tEnt{
			{name: ".wh.usr"},
			{name: "usr/", typ: tar.TypeDir, mtime: 200},
			{name: "usr/n", body: "n", mtime: 200}}},
		{"directory then its whiteout", []tEnt{
			{name: "usr/", typ: tar.TypeDir, mtime: 200},
			{name: "usr/n", body: "n", mtime: 200},
			{name: ".wh.usr"}}},
		{"whiteout then a file", []tEnt{
			{name: "var/", typ: tar.TypeDir, mtime: 200},
			{name: "var/.wh.lib"},
			{name: "var/lib", body: "file now", mtime: 200},
			{name: "var/.wh.log"},
			{name: "var/log/", typ: tar.TypeDir, mtime: 200}}},
		{"whiteout of a link", []tEnt{{name: ".wh.lib"}}},
	}
	ctx := context.Background()
	base := filepath.Join(t.TempDir(), "base")
	must(t, os.Mkdir(base, 0o755))
	_, err := ApplyOverlayLower(ctx, base, bytes.NewReader(overlayBase(t)))
	must(t, err)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			top := t.TempDir()
			_, err := ApplyOverlayLower(ctx, top, bytes.NewReader(makeTar(t, tt.layer...)))
			must(t, err)
			merged, _ := mountFor(t, []string{top, base})

			want := t.TempDir()
			applyBytes(t, want, overlayBase(t))
			applyBytes(t, want, makeTar(t, tt.layer...))
			sameTree(t, readTree(t, want), readTree(t, merged))
		})
	}
}

// TestApplyOverlayLowerForm checks the whiteouts on disk as overlayfs reads
// them, and that the rest is what Apply makes.
func TestApplyOverlayLowerForm(t *testing.T) {
	needRoot(t)
	layer := makeTar(t,
		tEnt{name: "d/", typ: tar.TypeDir, mode: 0o750, mtime: 300},
		tEnt{name: "d/.wh.f"},
		tEnt{name: "d/g", body: "g", mtime: 300},
		tEnt{name: "o/", typ: tar.TypeDir, mtime: 300},
		tEnt{name: "o/.wh..wh..opq"},
		tEnt{name: "implicit/.wh..wh..opq"},
		tEnt{name: "w/.wh.x"}, // parent made to hold the whiteout
		tEnt{name: "l", typ: tar.TypeSymlink, link: "/t", mtime: 300},
		tEnt{name: "l/.wh.x"}, // through the layer's link, inside dir
		tEnt{name: "s", body: "s", mtime: 300},
		tEnt{name: "s/.wh.x"}, // below a file: hidden already
		tEnt{name: "d/.wh.g"}, // the layer's own file stays
		tEnt{name: "d/.wh..wh.plnk"},
	)
	dir := t.TempDir()
	n, err := ApplyOverlayLower(context.Background(), dir, bytes.NewReader(layer))
	must(t, err)
	if n != 2 {
		t.Errorf("wrote %d bytes, want 2", n)
	}
	got := readTree(t, dir)
	for _, p := range []string{"d/f", "w/x", "t/x"} {
		if n := got[p]; n.Type != "char" || n.Rdev != 0 {
			t.Errorf("%s = %v, want a 0/0 character device", p, n)
		}
	}
	if n := got["d"]; n.Mode != 0o750 || n.Mtime != 300 {
		t.Errorf("d = %v: the whiteout changed its mode or mtime", n)
	}
	for p, want := range map[string]bool{"o": true, "implicit": true, "d": false, "w": false} {
		if op, err := isOpaque(filepath.Join(dir, p)); err != nil || op != want {
			t.Errorf("%s opaque = %v, %v; want %v", p, op, err, want)
		}
	}
	for _, p := range []string{"s/x", "d/.wh..wh.plnk", "d/.wh.f"} {
		if _, ok := got[p]; ok {
			t.Errorf("%s made", p)
		}
	}
	if len(got) != 11 {
		t.Errorf("%d paths, want 11: %v", len(got), got)
	}
}

func TestApplyOverlayLowerRefuses(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	_, err := ApplyOverlayLower(ctx, dir, bytes.NewReader(makeTar(t, tEnt{name: ".wh..wh..opq"}, tEnt{name: "f", body: "f"})))
	if !errors.Is(err, ErrOpaqueRoot) {
		t.Errorf("opaque root: err = %v, want ErrOpaqueRoot", err)
	}
	full := t.TempDir()
	must(t, os.WriteFile(filepath.Join(full, "x"), nil, 0o644))
	if _, err := ApplyOverlayLower(ctx, full, bytes.NewReader(makeTar(t, tEnt{name: "f", body: "f"}))); err == nil {
		t.Error("applied into a directory that is not empty")
	}
}
