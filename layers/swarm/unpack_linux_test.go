package swarm

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/drove-project/drove/layers/layer"
	"github.com/drove-project/drove/layers/store"
)

// buildLayer writes a layer holding files (image path → content) with
// layer.WriteLayer, from real host files.
func buildLayer(t *testing.T, files map[string]string, c layer.Compression) v1.Layer {
	t.Helper()
	src := t.TempDir()
	var entries []layer.Entry
	for dest, content := range files {
		host := filepath.Join(src, filepath.FromSlash(dest))
		must(t, os.MkdirAll(filepath.Dir(host), 0o755))
		must(t, os.WriteFile(host, []byte(content), 0o644))
		entries = append(entries, layer.Entry{Src: host, Dest: dest})
	}
	var buf bytes.Buffer
	_, err := layer.WriteLayer(context.Background(), &buf, entries, layer.Options{Compression: c})
	must(t, err)
	b := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	must(t, err)
	return l
}

// twoLayerImage stores an image whose second layer overwrites a.txt, adds
// d.txt and deletes dir/b.txt with a whiteout.
func twoLayerImage(t *testing.T, s *store.Store) (v1.Hash, *v1.Manifest) {
	t.Helper()
	l1 := buildLayer(t, map[string]string{"a.txt": "one", "dir/b.txt": "bee", "dir/c.txt": "sea"}, layer.Gzip)
	l2 := buildLayer(t, map[string]string{"a.txt": "two", "d.txt": "dee", "dir/.wh.b.txt": ""}, layer.Zstd)
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.AppendLayers(img, l1, l2)
	must(t, err)
	desc, err := s.WriteImage(context.Background(), img, store.WriteOptions{})
	must(t, err)
	m, err := img.Manifest()
	must(t, err)
	return desc.Digest, m
}

// checkTree fails unless dir holds exactly what twoLayerImage describes.
func checkTree(t *testing.T, dir string) {
	t.Helper()
	for name, want := range map[string]string{"a.txt": "two", "d.txt": "dee", "dir/c.txt": "sea"} {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || string(got) != want {
			t.Errorf("%s: %q, %v; want %q", name, got, err, want)
		}
	}
	if _, err := os.Lstat(filepath.Join(dir, "dir", "b.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dir/b.txt survived its whiteout: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "dir", ".wh.b.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the whiteout file itself was extracted: %v", err)
	}
}

// leftovers lists what Unpack left in parent besides want.
func leftovers(t *testing.T, parent string, want ...string) []string {
	t.Helper()
	ents, err := os.ReadDir(parent)
	must(t, err)
	var out []string
	for _, e := range ents {
		keep := false
		for _, w := range want {
			keep = keep || e.Name() == w
		}
		if !keep {
			out = append(out, e.Name())
		}
	}
	return out
}

func TestUnpackTwoLayersWithWhiteout(t *testing.T) {
	ctx := context.Background()
	s, err := store.Open(t.TempDir())
	must(t, err)
	img, _ := twoLayerImage(t, s)
	parent := t.TempDir()
	dest := filepath.Join(parent, "rootfs")
	must(t, Unpack(ctx, s, img, dest))
	checkTree(t, dest)
	if l := leftovers(t, parent, "rootfs"); len(l) != 0 {
		t.Fatalf("left beside dest: %v", l)
	}
	// Idempotent: a second Unpack leaves dest as it is.
	must(t, os.WriteFile(filepath.Join(dest, "marker"), []byte("x"), 0o644))
	must(t, Unpack(ctx, s, img, dest))
	if _, err := os.Stat(filepath.Join(dest, "marker")); err != nil {
		t.Fatalf("second Unpack rebuilt dest: %v", err)
	}
}

func TestUnpackFailureLeavesNoDest(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		corrupt func(t *testing.T, s *store.Store, m *v1.Manifest)
		want    error
	}{
		{"garbage layer", func(t *testing.T, s *store.Store, m *v1.Manifest) {
			overwrite(t, s.BlobPath(m.Layers[1].Digest), []byte(strings.Repeat("not a layer ", 100)))
		}, nil},
		{"another valid layer under this digest", func(t *testing.T, s *store.Store, m *v1.Manifest) {
			first, err := s.ReadBlob(m.Layers[0].Digest)
			must(t, err)
			overwrite(t, s.BlobPath(m.Layers[1].Digest), first)
		}, ErrDigestMismatch},
		{"missing layer", func(t *testing.T, s *store.Store, m *v1.Manifest) {
			must(t, os.Remove(s.BlobPath(m.Layers[1].Digest)))
		}, store.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := store.Open(t.TempDir())
			must(t, err)
			img, m := twoLayerImage(t, s)
			tc.corrupt(t, s, m)
			parent := t.TempDir()
			dest := filepath.Join(parent, "rootfs")
			err = Unpack(ctx, s, img, dest)
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			if l := leftovers(t, parent); len(l) != 0 {
				t.Fatalf("failed Unpack left %v", l)
			}
		})
	}
}

func TestUnpackRefusesIndex(t *testing.T) {
	ctx := context.Background()
	s, err := store.Open(t.TempDir())
	must(t, err)
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: randomImage(t, 10)})
	desc, err := s.WriteIndex(ctx, idx, store.WriteOptions{})
	must(t, err)
	dest := filepath.Join(t.TempDir(), "rootfs")
	if err := Unpack(ctx, s, desc.Digest, dest); !errors.Is(err, ErrBadManifest) {
		t.Fatalf("unpack of an index: %v", err)
	}
	if _, err := os.Lstat(dest); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("dest created for an index")
	}
}

// overwrite replaces a read-only store blob's content in place.
func overwrite(t *testing.T, path string, b []byte) {
	t.Helper()
	must(t, os.Chmod(path, 0o644))
	must(t, os.WriteFile(path, b, 0o644))
}

// An uncompressed layer (diff ID = digest) is hashed once, and a bad one
// is still refused; a verified blob is not hashed again, but a compressed
// one's tar is still checked against its diff ID.
func TestUnpackHashesOnceAndStillRefuses(t *testing.T) {
	ctx := context.Background()
	s, err := store.Open(t.TempDir())
	must(t, err)
	uncompressed := func(files map[string]string) v1.Layer {
		rc, err := buildLayer(t, files, layer.None).Uncompressed()
		must(t, err)
		defer rc.Close()
		b, err := io.ReadAll(rc)
		must(t, err)
		return static.NewLayer(b, types.OCIUncompressedLayer)
	}
	l1, l2 := uncompressed(map[string]string{"a.txt": "one"}), uncompressed(map[string]string{"b.txt": "two"})
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err = mutate.AppendLayers(img, l1)
	must(t, err)
	desc, err := s.WriteImage(ctx, img, store.WriteOptions{})
	must(t, err)
	m, err := img.Manifest()
	must(t, err)
	cf, err := img.ConfigFile()
	must(t, err)
	if cf.RootFS.DiffIDs[0] != m.Layers[0].Digest {
		t.Fatalf("an uncompressed layer's diff ID %s is not its digest %s", cf.RootFS.DiffIDs[0], m.Layers[0].Digest)
	}
	other, err := l2.Compressed()
	must(t, err)
	b, err := io.ReadAll(other)
	must(t, err)
	overwrite(t, s.BlobPath(m.Layers[0].Digest), b)
	dest := filepath.Join(t.TempDir(), "rootfs")
	if err := Unpack(ctx, s, desc.Digest, dest); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("uncompressed layer with other content: %v, want %v", err, ErrDigestMismatch)
	}

	s2, err := store.Open(t.TempDir())
	must(t, err)
	img2, m2 := twoLayerImage(t, s2)
	first, err := s2.ReadBlob(m2.Layers[0].Digest)
	must(t, err)
	overwrite(t, s2.BlobPath(m2.Layers[1].Digest), first)
	verified := map[v1.Hash]bool{m2.Layers[1].Digest: true}
	if err := UnpackVerified(ctx, s2, img2, filepath.Join(t.TempDir(), "rootfs"), verified); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("verified compressed layer whose tar is not its diff ID: %v, want %v", err, ErrDigestMismatch)
	}
}
