package importer

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/drove-project/drove/internal/testcontainerd"
)

// importCtx bounds one Import in the tests.
func importCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// ctr runs ctr -n k8s.io against d and fails t on error.
func ctr(t *testing.T, d *testcontainerd.Daemon, args ...string) string {
	t.Helper()
	out, err := d.Ctr(t, append([]string{"-n", DefaultNamespace}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// lineWith returns the first line of out containing every word, or "".
func lineWith(out string, words ...string) string {
	for _, line := range strings.Split(out, "\n") {
		if !slices.ContainsFunc(words, func(w string) bool { return !strings.Contains(line, w) }) {
			return line
		}
	}
	return ""
}

// names lists the names of imported images.
func names(im []Imported) []string {
	var out []string
	for _, i := range im {
		out = append(out, i.Name)
	}
	slices.Sort(out)
	return out
}

func checkImported(t *testing.T, f fixture, got []Imported, want ...string) {
	t.Helper()
	slices.Sort(want)
	if !slices.Equal(names(got), want) {
		t.Fatalf("imported %v, want %v", names(got), want)
	}
	for _, im := range got {
		if im.Digest != f.Images[im.Name].Digest {
			t.Errorf("%s: Digest %s, want upstream %s", im.Name, im.Digest, f.Images[im.Name].Digest)
		}
	}
}

func TestImportUnpacksAndSurvivesGC(t *testing.T) {
	d := testcontainerd.Start(t, t.TempDir())
	f := newFixture(t, t.TempDir())
	all := []string{nameOCI, nameDock, nameIndex}

	got, err := Import(importCtx(t), f.Dir, Options{Address: d.Address, Unpack: true})
	if err != nil {
		t.Fatalf("Import: %v", err)
	}
	checkImported(t, f, got, all...)

	ls := ctr(t, d, "images", "ls")
	for _, n := range all {
		if lineWith(ls, n, f.Images[n].Digest.String()) == "" {
			t.Errorf("ctr images ls has no %s at %s:\n%s", n, f.Images[n].Digest, ls)
		}
	}
	check := ctr(t, d, "images", "check")
	for _, n := range all {
		line := lineWith(check, n)
		if !strings.Contains(line, "complete") || !strings.HasSuffix(strings.TrimSpace(line), "true") {
			t.Errorf("ctr images check: %s not complete and unpacked for the host: %q\n%s", n, line, check)
		}
	}
	if snaps := ctr(t, d, "snapshots", "ls"); strings.Count(snaps, "Committed") < 5 {
		t.Errorf("want 5 committed snapshots (2+2+1 layers):\n%s", snaps)
	}

	// The index keeps only the child it has, under containerd's GC label.
	content := ctr(t, d, "content", "ls")
	idx := f.Images[nameIndex]
	if lineWith(content, idx.Digest.String(), "containerd.io/gc.ref.content.m.0="+idx.Manifest.String()) == "" {
		t.Errorf("index %s lacks the GC label for its child %s:\n%s", idx.Digest, idx.Manifest, content)
	}
	if strings.Contains(content, idx.Absent.String()) {
		t.Errorf("the absent %s child %s is in the content store", otherArch(), idx.Absent)
	}

	// Deleting one image with a synchronous GC removes its layers, and
	// only its layers.
	ctr(t, d, "images", "rm", "--sync", nameDock)
	content = ctr(t, d, "content", "ls")
	for _, l := range f.Images[nameDock].Layers {
		if strings.Contains(content, l.String()) {
			t.Errorf("layer %s of the deleted %s survived GC: did GC run?", l, nameDock)
		}
	}
	for _, n := range []string{nameOCI, nameIndex} {
		for _, l := range f.Images[n].Layers {
			if !strings.Contains(content, l.String()) {
				t.Errorf("GC removed layer %s of %s:\n%s", l, n, content)
			}
		}
	}
	check = ctr(t, d, "images", "check")
	for _, n := range []string{nameOCI, nameIndex} {
		if line := lineWith(check, n); !strings.Contains(line, "complete") {
			t.Errorf("after GC %s is %q", n, line)
		}
	}
	if leases := ctr(t, d, "leases", "ls"); strings.Count(strings.TrimSpace(leases), "\n") != 0 {
		t.Errorf("import left a lease behind:\n%s", leases)
	}
}

func TestReimportIsIdempotentAndReadsNoPresentContent(t *testing.T) {
	d := testcontainerd.Start(t, t.TempDir())
	f := newFixture(t, t.TempDir())
	opts := Options{Address: d.Address, Unpack: true}
	first, err := Import(importCtx(t), f.Dir, opts)
	if err != nil {
		t.Fatalf("first Import: %v", err)
	}
	lsBefore := ctr(t, d, "images", "ls")
	contentBefore := ctr(t, d, "content", "ls", "-q")

	// Present content is not read again: empty every layer file of the
	// layout, and a re-import still succeeds.
	for _, fi := range f.Images {
		for _, l := range fi.Layers {
			if err := os.Truncate(filepath.Join(f.Dir, "blobs", l.Algorithm, l.Hex), 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	second, err := Import(importCtx(t), f.Dir, opts)
	if err != nil {
		t.Fatalf("re-import: %v", err)
	}
	if !slices.Equal(first, second) {
		t.Errorf("re-import returned %v, first %v", second, first)
	}
	if got := ctr(t, d, "images", "ls"); got != lsBefore {
		t.Errorf("images changed on re-import:\nbefore:\n%s\nafter:\n%s", lsBefore, got)
	}
	if got := ctr(t, d, "content", "ls", "-q"); got != contentBefore {
		t.Errorf("content changed on re-import:\nbefore:\n%s\nafter:\n%s", contentBefore, got)
	}
}

func TestTamperedLayerRefusesOnlyItsImage(t *testing.T) {
	d := testcontainerd.Start(t, t.TempDir())
	f := newFixture(t, t.TempDir())
	bad := f.Images[nameDock].Layers[1]
	path := filepath.Join(f.Dir, "blobs", bad.Algorithm, bad.Hex)
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tampered := slices.Clone(orig)
	tampered[len(tampered)/2] ^= 0xff // same size, other bytes
	if err := os.WriteFile(path, tampered, 0o644); err != nil {
		t.Fatal(err)
	}

	got, err := Import(importCtx(t), f.Dir, Options{Address: d.Address, Unpack: true})
	if err == nil {
		t.Fatal("Import of a tampered layout succeeded")
	}
	t.Logf("tampered layout: %v", err)
	if !errors.Is(err, ErrDigestMismatch) {
		t.Errorf("error %v does not match ErrDigestMismatch", err)
	}
	for _, want := range []string{nameDock, bad.String()} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s: %v", want, err)
		}
	}
	checkImported(t, f, got, nameOCI, nameIndex)
	ls := ctr(t, d, "images", "ls", "-q")
	if strings.Contains(ls, nameDock) {
		t.Errorf("tampered image has a record:\n%s", ls)
	}
	if strings.Contains(ctr(t, d, "content", "ls", "-q"), bad.String()) {
		t.Errorf("tampered layer %s is in the content store", bad)
	}

	// Once the layout is fixed the image imports: the failed ingest left
	// nothing behind that the next write would resume from.
	if err := os.WriteFile(path, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err = Import(importCtx(t), f.Dir, Options{Address: d.Address, Unpack: true})
	if err != nil {
		t.Fatalf("Import after fixing the layout: %v", err)
	}
	checkImported(t, f, got, nameOCI, nameDock, nameIndex)
}

func TestTamperedConfigIsCaughtBeforeContainerd(t *testing.T) {
	d := testcontainerd.Start(t, t.TempDir())
	f := newFixture(t, t.TempDir())
	img := f.Images[nameOCI]
	cfg := configDigest(t, f.Dir, img.Manifest)
	path := filepath.Join(f.Dir, "blobs", cfg.Algorithm, cfg.Hex)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, append(b[:len(b)-1:len(b)-1], ' '), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := Import(importCtx(t), f.Dir, Options{Address: d.Address})
	if !errors.Is(err, ErrDigestMismatch) || !strings.Contains(err.Error(), nameOCI) || !strings.Contains(err.Error(), cfg.String()) {
		t.Fatalf("want ErrDigestMismatch naming %s and %s, got %v", nameOCI, cfg, err)
	}
	checkImported(t, f, got, nameDock, nameIndex)
}

func TestPlatformChoice(t *testing.T) {
	d := testcontainerd.Start(t, t.TempDir())
	f := newFixture(t, t.TempDir())

	// The other architecture's child is in the index but not the layout.
	got, err := Import(importCtx(t), f.Dir, Options{Address: d.Address, Platform: v1.Platform{OS: "linux", Architecture: otherArch()}})
	if !errors.Is(err, ErrInvalidLayout) || !strings.Contains(err.Error(), f.Images[nameIndex].Absent.String()) {
		t.Errorf("want ErrInvalidLayout naming the absent child %s, got %v", f.Images[nameIndex].Absent, err)
	}
	checkImported(t, f, got, nameOCI, nameDock)

	// No child at all for this platform.
	_, err = Import(importCtx(t), f.Dir, Options{Address: d.Address, Platform: v1.Platform{OS: "linux", Architecture: "s390x"}})
	if !errors.Is(err, ErrNoPlatform) || !strings.Contains(err.Error(), nameIndex) || !strings.Contains(err.Error(), "linux/"+hostArch()) {
		t.Errorf("want ErrNoPlatform naming %s and the platforms it has, got %v", nameIndex, err)
	}
	if strings.Contains(ctr(t, d, "images", "ls", "-q"), nameIndex) {
		t.Error("index image got a record without a manifest for the platform")
	}
}

func TestBadSocketSaysHowToFix(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "index.json"), []byte(`{"schemaVersion":2,"manifests":[]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	notSocket := filepath.Join(dir, "index.json")
	for _, addr := range []string{filepath.Join(dir, "no", "containerd.sock"), notSocket} {
		start := time.Now()
		_, err := Import(importCtx(t), dir, Options{Address: addr})
		if !errors.Is(err, ErrConnect) {
			t.Errorf("%s: want ErrConnect, got %v", addr, err)
			continue
		}
		t.Logf("bad socket: %v", err)
		for _, want := range []string{addr, "is containerd running?", "--containerd-address"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: error lacks %q: %v", addr, want, err)
			}
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("%s: took %s to fail", addr, took)
		}
	}
}
