package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/drove-project/drove/layers/store"
)

// failureFixture is an archive of app:v1 and tools:2 (which share a layer)
// and a destination store that already holds tools:2 and an unrelated
// image, so a failed load must both remove what it added and keep what was
// there.
type failureFixture struct {
	src     ociFixture
	archive []byte // oci-archive of app:v1 and ghcr.io/acme/tools:2
	docker  []byte // docker-archive of the same
	dst     *store.Store
	before  state
}

func newFailureFixture(t *testing.T) failureFixture {
	t.Helper()
	src := newOCIFixture(t)
	ff := failureFixture{
		src:     src,
		archive: save(t, src.s, SaveOptions{}, "app:v1", "ghcr.io/acme/tools:2"),
		docker:  save(t, src.s, SaveOptions{Format: DockerArchive}, "app:v1", "ghcr.io/acme/tools:2"),
		dst:     newStore(t),
	}
	img, err := src.s.Image(src.b.Digest)
	if err != nil {
		t.Fatal(err)
	}
	putImage(t, ff.dst, "ghcr.io/acme/tools:2", img)
	putImage(t, ff.dst, "keep:1", ociImage(t, "amd64", randomLayer(t, 300)))
	ff.before = snapshot(t, ff.dst)
	if !ff.dst.HasBlob(src.shared) {
		t.Fatal("fixture: destination lacks the shared layer")
	}
	return ff
}

// loadHow is a way of handing an archive to the package.
type loadHow struct {
	name string
	load func(t *testing.T, b []byte, s *store.Store) ([]store.Entry, error)
}

var loadWays = []loadHow{
	{"stream", func(t *testing.T, b []byte, s *store.Store) ([]store.Entry, error) {
		return Load(context.Background(), io.MultiReader(bytes.NewReader(b)), s, LoadOptions{})
	}},
	{"file", func(t *testing.T, b []byte, s *store.Store) ([]store.Entry, error) {
		return LoadFile(context.Background(), writeTemp(t, b), s, LoadOptions{})
	}},
}

// expectRefused loads b every way and checks that it fails with want, that
// the message holds each of msgs, and that the store is unchanged.
func (ff failureFixture) expectRefused(t *testing.T, b []byte, want error, msgs ...string) {
	t.Helper()
	for _, how := range loadWays {
		got, err := how.load(t, b, ff.dst)
		if err == nil {
			t.Fatalf("%s: load succeeded with %v, want %v", how.name, got, want)
		}
		if !errors.Is(err, want) {
			t.Errorf("%s: error %q is not %q", how.name, err, want)
		}
		for _, m := range append([]string{want.Error()}, msgs...) {
			if !strings.Contains(err.Error(), m) {
				t.Errorf("%s: error %q does not say %q", how.name, err, m)
			}
		}
		if got != nil {
			t.Errorf("%s: entries %v returned with an error", how.name, got)
		}
		assertUnchanged(t, ff.dst, ff.before)
	}
	// The images that were there are still whole.
	for _, e := range ff.before.names {
		if err := ff.dst.Verify(e.Descriptor); err != nil {
			t.Errorf("%s broken after a failed load: %v", e.Name, err)
		}
	}
}

func TestLoadTruncated(t *testing.T) {
	ff := newFailureFixture(t)
	b := ff.archive
	bManifest, _ := entryOffset(t, b, "blobs/sha256/"+ff.src.b.Digest.Hex)
	layerOff, layerSize := entryOffset(t, b, "blobs/sha256/"+ff.src.shared.Hex)
	indexOff, indexSize := entryOffset(t, b, "index.json")
	cuts := map[string]int64{
		"in oci-layout":             blockSize + 10,
		"in a layer":                layerOff + layerSize/2,
		"in the second manifest":    bManifest + 20, // app:v1's blobs are committed by then
		"before index.json":         indexOff - blockSize,
		"in index.json":             indexOff + indexSize/2,
		"without end marker":        int64(len(b)) - 2*blockSize,
		"in the end marker":         int64(len(b)) - blockSize,
		"one byte short of the end": int64(len(b)) - 1,
	}
	for name, cut := range cuts {
		t.Run(name, func(t *testing.T) {
			ff.expectRefused(t, b[:cut], ErrTruncated)
		})
	}
	for _, c := range compressors {
		t.Run(c.name, func(t *testing.T) {
			z := c.compress(t, b)
			for _, cut := range []int{len(z) / 3, len(z) - 4} {
				ff.expectRefused(t, z[:cut], ErrTruncated)
			}
		})
	}
	t.Run("docker-archive", func(t *testing.T) {
		d := ff.docker
		for _, cut := range []int{len(d) / 2, len(d) - 2*blockSize, len(d) - 1} {
			ff.expectRefused(t, d[:cut], ErrTruncated)
		}
	})
}

func TestLoadCorruptBlob(t *testing.T) {
	ff := newFailureFixture(t)
	m, err := ff.src.s.Image(ff.src.a.Digest)
	if err != nil {
		t.Fatal(err)
	}
	mf, _ := m.Manifest()
	own := mf.Layers[1].Digest // app:v1's own layer, not in the destination
	name := "blobs/sha256/" + own.Hex
	off, size := entryOffset(t, ff.archive, name)
	b := bytes.Clone(ff.archive)
	b[off+size/2] ^= 0x01
	ff.expectRefused(t, b, ErrCorrupt, name, "does not match its name")

	// The same flip in a docker archive's layer file.
	file := own.Hex + ".tar.gz"
	off, size = entryOffset(t, ff.docker, file)
	d := bytes.Clone(ff.docker)
	d[off+size/2] ^= 0x01
	ff.expectRefused(t, d, ErrCorrupt, file)
}

func TestLoadMissingBlob(t *testing.T) {
	ff := newFailureFixture(t)
	m, _ := ff.src.s.Image(ff.src.a.Digest)
	mf, _ := m.Manifest()
	missing := mf.Layers[1].Digest
	var kept []tarEntry
	for _, e := range readTar(t, ff.archive) {
		if e.hdr.Name != "blobs/sha256/"+missing.Hex {
			kept = append(kept, e)
		}
	}
	// tools:2 in the same archive is whole, but a load is all or nothing.
	ff.expectRefused(t, writeTar(t, kept), ErrIncomplete, missing.String(), "not in the archive", "docker.io/library/app:v1")

	// index.json pointing at a manifest the archive lacks.
	entries := readTar(t, ff.archive)
	last := &entries[len(entries)-1]
	var im v1.IndexManifest
	if err := json.Unmarshal(last.body, &im); err != nil {
		t.Fatal(err)
	}
	ghost := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("0f", 32)}
	im.Manifests = append(im.Manifests, v1.Descriptor{MediaType: im.Manifests[0].MediaType, Digest: ghost, Size: 500,
		Annotations: map[string]string{store.RefNameAnnotation: "ghost:1"}})
	last.body, _ = json.Marshal(im)
	ff.expectRefused(t, writeTar(t, entries), ErrIncomplete, ghost.String())

	// A docker archive whose manifest.json names a layer file it lacks.
	var dk []tarEntry
	gone := ""
	for _, e := range readTar(t, ff.docker) {
		if gone == "" && strings.HasSuffix(e.hdr.Name, ".tar.gz") {
			gone = e.hdr.Name
			continue
		}
		dk = append(dk, e)
	}
	ff.expectRefused(t, writeTar(t, dk), ErrIncomplete, gone, "not in the archive")
}

func TestLoadGarbage(t *testing.T) {
	ff := newFailureFixture(t)
	random := make([]byte, 4096)
	rand.Read(random)
	var plainTar []tarEntry
	plainTar = append(plainTar, tarEntry{&tar.Header{Name: "etc/hosts", Typeflag: tar.TypeReg, Mode: 0o644}, []byte("127.0.0.1 localhost\n")})
	for name, b := range map[string][]byte{
		"random bytes":      random,
		"text":              []byte("this is not an archive\n"),
		"empty":             nil,
		"an empty tar":      make([]byte, 2*blockSize),
		"a tar of no image": writeTar(t, plainTar),
		"gzip of text":      compressors[0].compress(t, []byte(strings.Repeat("not a tar ", 100))),
	} {
		t.Run(name, func(t *testing.T) {
			ff.expectRefused(t, b, ErrNotArchive)
		})
	}
}

func TestLoadUnsafePaths(t *testing.T) {
	ff := newFailureFixture(t)
	good := readTar(t, ff.archive)
	reg := func(name string) tarEntry {
		return tarEntry{&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644}, []byte("evil")}
	}
	link := func(name, target string, typ byte) tarEntry {
		return tarEntry{&tar.Header{Name: name, Linkname: target, Typeflag: typ, Mode: 0o777}, nil}
	}
	cases := map[string][]tarEntry{
		"parent first":       {reg("../evil")},
		"parent after blobs": append(append([]tarEntry{}, good[:len(good)-1]...), reg("../../evil"), good[len(good)-1]),
		"through blobs":      append([]tarEntry{reg("blobs/sha256/../../../evil")}, good...),
		"absolute":           append([]tarEntry{reg("/tmp/evil")}, good...),
		"symlink out":        append([]tarEntry{link("manifest.json", "../../etc/passwd", tar.TypeSymlink)}, good...),
		"hard link out":      append([]tarEntry{link("x", "../x", tar.TypeLink)}, good...),
	}
	for name, entries := range cases {
		t.Run(name, func(t *testing.T) {
			ff.expectRefused(t, writeTar(t, entries), ErrUnsafePath)
			for _, dir := range []string{filepath.Dir(ff.dst.Root()), ff.dst.Root(), "/tmp"} {
				if _, err := os.Lstat(filepath.Join(dir, "evil")); err == nil {
					t.Errorf("%s/evil was created", dir)
				}
			}
		})
	}
	// A docker archive whose manifest.json points outside the archive.
	var dk []tarEntry
	for _, e := range readTar(t, ff.docker) {
		if e.hdr.Name == "manifest.json" {
			var m []map[string]any
			if err := json.Unmarshal(e.body, &m); err != nil {
				t.Fatal(err)
			}
			m[0]["Layers"] = []string{"../../etc/passwd"}
			e.body, _ = json.Marshal(m)
		}
		dk = append(dk, e)
	}
	ff.expectRefused(t, writeTar(t, dk), ErrUnsafePath, "../../etc/passwd")
}

func TestLoadRefusesOversizedIndex(t *testing.T) {
	ff := newFailureFixture(t)
	entries := readTar(t, ff.archive)
	entries[len(entries)-1].body = bytes.Repeat([]byte(" "), maxManifestSize+1)
	ff.expectRefused(t, writeTar(t, entries), ErrUnsupported, "index.json", fmt.Sprint(maxManifestSize))
}

func TestLoadDuplicateFileName(t *testing.T) {
	ff := newFailureFixture(t)
	entries := readTar(t, ff.docker)
	var cfg tarEntry
	for _, e := range entries {
		if strings.HasPrefix(e.hdr.Name, "sha256:") {
			cfg = e
			break
		}
	}
	evil := tarEntry{cfg.hdr, []byte(`{"rootfs":{"type":"layers","diff_ids":[]}}`)}
	ff.expectRefused(t, writeTar(t, append([]tarEntry{evil}, entries...)), ErrCorrupt, "two entries named "+cfg.hdr.Name)
}

func TestLoadTwoImagesOneName(t *testing.T) {
	ff := newFailureFixture(t)
	entries := readTar(t, ff.archive)
	last := &entries[len(entries)-1]
	var im v1.IndexManifest
	if err := json.Unmarshal(last.body, &im); err != nil {
		t.Fatal(err)
	}
	for i := range im.Manifests {
		im.Manifests[i].Annotations = map[string]string{store.RefNameAnnotation: "docker.io/library/same:1"}
	}
	last.body, _ = json.Marshal(im)
	ff.expectRefused(t, writeTar(t, entries), ErrCorrupt, "docker.io/library/same:1")
}

// cancelAfter cancels its context once n bytes have been read. It returns
// at most one tar block per read, so the cancellation lands mid-archive.
type cancelAfter struct {
	r      io.Reader
	n      int
	cancel context.CancelFunc
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p[:min(len(p), blockSize)])
	c.n -= n
	if c.n <= 0 {
		c.cancel()
	}
	return n, err
}

func TestLoadCancelledLeavesNothing(t *testing.T) {
	ff := newFailureFixture(t)
	for _, b := range [][]byte{ff.archive, ff.docker} {
		ctx, cancel := context.WithCancel(context.Background())
		// Cancel once most of the archive is read: several blobs are in.
		r := &cancelAfter{r: bytes.NewReader(b), n: len(b) * 3 / 4, cancel: cancel}
		_, err := Load(ctx, r, ff.dst, LoadOptions{})
		cancel()
		if !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled load: %v", err)
		}
		assertUnchanged(t, ff.dst, ff.before)
	}
}
