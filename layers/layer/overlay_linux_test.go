package layer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("overlay mounts need root; run the tests as root to cover them")
	}
}

// mountFor mounts an overlay of lowers (top first) with fresh upper and work
// directories and unmounts it when the test ends.
func mountFor(t *testing.T, lowers []string) (merged, upper string) {
	t.Helper()
	base := t.TempDir()
	upper, work, merged := filepath.Join(base, "upper"), filepath.Join(base, "work"), filepath.Join(base, "merged")
	for _, d := range []string{upper, work, merged} {
		must(t, os.Mkdir(d, 0o755))
	}
	unmount, err := MountOverlay(context.Background(), lowers, upper, work, merged)
	if err != nil {
		t.Fatalf("mount: %v", err)
	}
	t.Cleanup(func() {
		if err := unmount(); err != nil {
			t.Errorf("unmount: %v", err)
		}
	})
	return merged, upper
}

func TestOverlayDiff(t *testing.T) {
	needRoot(t)
	for _, legacy := range []bool{false, true} {
		t.Run(fmt.Sprintf("legacy=%v", legacy), func(t *testing.T) {
			forceLegacyMount = legacy
			defer func() { forceLegacyMount = false }()
			ctx := context.Background()
			// Two lower layers: base, and one on top that adds and deletes.
			bottom := baseTree(t)
			top := filepath.Join(t.TempDir(), "top")
			must(t, os.MkdirAll(filepath.Join(top, "etc"), 0o755))
			writeFile(t, filepath.Join(top, "etc/hosts"), "from top\n", 0o644, time.Unix(1650000000, 0))
			writeFile(t, filepath.Join(top, "var/cache/c"), "c", 0o644, time.Unix(1650000000, 0))
			merged, upper := mountFor(t, []string{top, bottom})
			if b, _ := os.ReadFile(filepath.Join(merged, "etc/hosts")); string(b) != "from top\n" {
				t.Fatalf("top lower does not win: etc/hosts = %q", b)
			}

			buildStep(t, merged)
			// Delete a lower directory and make it again: overlayfs marks it opaque.
			must(t, os.RemoveAll(filepath.Join(merged, "var/cache")))
			writeFile(t, filepath.Join(merged, "var/cache/fresh"), "f", 0o644, time.Unix(1700000000, 0))

			var layer bytes.Buffer
			_, err := DiffOverlayUpper(ctx, &layer, upper, Options{Compression: Gzip})
			must(t, err)
			var names []string
			for _, h := range tarHeaders(t, layer.Bytes()) {
				names = append(names, h.Name)
			}
			got := " " + strings.Join(names, " ") + " "
			for _, want := range []string{"var/cache/", "var/cache/.wh..wh..opq", "etc/.wh.rm-me", "etc/same-size"} {
				if !strings.Contains(got, " "+want+" ") {
					t.Errorf("layer lacks %s:%s", want, got)
				}
			}

			// Lowers flattened, then the layer, equals the merged view.
			replay := t.TempDir()
			must(t, CopyTree(ctx, bottom, replay))
			var topLayer bytes.Buffer
			entries, err := ResolveCopy(top, []string{"."}, "/")
			must(t, err)
			_, err = WriteLayer(ctx, &topLayer, entries, Options{})
			must(t, err)
			applyBytes(t, replay, topLayer.Bytes())
			applyBytes(t, replay, layer.Bytes())
			want := readTree(t, merged)
			gotTree := readTree(t, replay)
			// Directories created implicitly by the top layer's copy belong to
			// root in both; compare everything.
			sameTree(t, want, gotTree)
		})
	}
}

func TestOverlayManyLowers(t *testing.T) {
	needRoot(t)
	// 150 lowers with long paths need far more than a page of options.
	base := filepath.Join(t.TempDir(), strings.Repeat("long-directory-name-", 3))
	var lowers []string
	for i := range 150 {
		d := filepath.Join(base, fmt.Sprintf("layer-%03d", i))
		writeFile(t, filepath.Join(d, fmt.Sprintf("f%03d", i)), "x", 0o644, time.Unix(1, 0))
		writeFile(t, filepath.Join(d, "which"), fmt.Sprint(i), 0o644, time.Unix(1, 0))
		lowers = append(lowers, d)
	}
	for _, legacy := range []bool{false, true} {
		t.Run(fmt.Sprintf("legacy=%v", legacy), func(t *testing.T) {
			forceLegacyMount = legacy
			defer func() { forceLegacyMount = false }()
			merged, _ := mountFor(t, lowers)
			entries, err := os.ReadDir(merged)
			must(t, err)
			if len(entries) != 151 {
				t.Errorf("merged view has %d entries, want 151", len(entries))
			}
			if b, _ := os.ReadFile(filepath.Join(merged, "which")); string(b) != "0" {
				t.Errorf("which = %q, want the first (top) lower's", b)
			}
		})
	}
}

func TestOverlayTooManyLowersLegacy(t *testing.T) {
	needRoot(t)
	forceLegacyMount = true
	defer func() { forceLegacyMount = false }()
	base := t.TempDir()
	var lowers []string
	for i := range 300 {
		d := filepath.Join(base, fmt.Sprint(i))
		must(t, os.Mkdir(d, 0o755))
		lowers = append(lowers, d)
	}
	upper, work, merged := filepath.Join(base, "u"), filepath.Join(base, "w"), filepath.Join(base, "m")
	for _, d := range []string{upper, work, merged} {
		must(t, os.Mkdir(d, 0o755))
	}
	unmount, err := MountOverlay(context.Background(), lowers, upper, work, merged)
	if err == nil {
		_ = unmount()
		t.Fatal("300 lowers fit in one page of options?")
	}
	if !errors.Is(err, ErrMountOptions) {
		t.Errorf("err = %v, want ErrMountOptions", err)
	}
}

func TestMountOverlayErrors(t *testing.T) {
	base := t.TempDir()
	if _, err := MountOverlay(context.Background(), nil, base, base, base); err == nil {
		t.Error("no lowers: no error")
	}
	if _, err := MountOverlay(context.Background(), []string{filepath.Join(base, "missing")}, base, base, base); err == nil {
		t.Error("missing lower: no error")
	}
}
