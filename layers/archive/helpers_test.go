package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/drove-project/drove/internal/testimage"
	"github.com/drove-project/drove/layers/store"
)

func newStore(t testing.TB) *store.Store {
	t.Helper()
	s, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func randomLayer(t testing.TB, size int64) v1.Layer {
	t.Helper()
	return testimage.Layer(t, size, types.OCILayer)
}

// ociImage builds an OCI image for linux/arch from layers.
func ociImage(t testing.TB, arch string, layers ...v1.Layer) v1.Image {
	t.Helper()
	return testimage.Image(t, testimage.Spec{Arch: arch}, layers...)
}

func multiPlatform(t testing.TB, archs ...string) v1.ImageIndex {
	t.Helper()
	return testimage.Index(t, testimage.Spec{Layers: 1, LayerSize: 512}, archs...)
}

func putImage(t testing.TB, s *store.Store, name string, img v1.Image) v1.Descriptor {
	t.Helper()
	d, err := s.WriteImage(context.Background(), img, store.WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Tag(name, d); err != nil {
		t.Fatal(err)
	}
	return d
}

func putIndex(t testing.TB, s *store.Store, name string, idx v1.ImageIndex) v1.Descriptor {
	t.Helper()
	d, err := s.WriteIndex(context.Background(), idx, store.WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Tag(name, d); err != nil {
		t.Fatal(err)
	}
	return d
}

func save(t testing.TB, s *store.Store, opts SaveOptions, refs ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Save(context.Background(), &buf, s, refs, opts); err != nil {
		t.Fatalf("save %v: %v", refs, err)
	}
	return buf.Bytes()
}

func writeTemp(t testing.TB, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "archive.tar")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// state is what a failed load must leave unchanged.
type state struct {
	names []store.Entry
	blobs []string
	tmp   []string
}

func snapshot(t testing.TB, s *store.Store) state {
	t.Helper()
	names, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	return state{names: names, blobs: dirNames(t, filepath.Join(s.Root(), "blobs", "sha256")), tmp: dirNames(t, filepath.Join(s.Root(), "tmp"))}
}

func dirNames(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	out := []string{}
	for _, e := range ents {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out
}

func assertUnchanged(t testing.TB, s *store.Store, before state) {
	t.Helper()
	after := snapshot(t, s)
	if !reflect.DeepEqual(before.names, after.names) {
		t.Errorf("names changed: before %v, after %v", before.names, after.names)
	}
	if !reflect.DeepEqual(before.blobs, after.blobs) {
		t.Errorf("blobs changed: before %v, after %v", before.blobs, after.blobs)
	}
	if !reflect.DeepEqual(before.tmp, after.tmp) {
		t.Errorf("temporary files left: before %v, after %v", before.tmp, after.tmp)
	}
}

// tarEntry is one entry of an archive read back in a test.
type tarEntry struct {
	hdr  *tar.Header
	body []byte
}

func readTar(t testing.TB, b []byte) []tarEntry {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(b))
	var out []tarEntry
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, tarEntry{hdr, body})
	}
}

func writeTar(t testing.TB, entries []tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := *e.hdr
		h.Size = int64(len(e.body))
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// entryOffset is where the content of the named entry starts in b.
func entryOffset(t testing.TB, b []byte, name string) (int64, int64) {
	t.Helper()
	r := &offsetReader{r: bytes.NewReader(b)}
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err != nil {
			t.Fatalf("entry %s not found: %v", name, err)
		}
		if hdr.Name == name {
			return r.n, hdr.Size
		}
	}
}

type offsetReader struct {
	r io.Reader
	n int64
}

func (o *offsetReader) Read(p []byte) (int, error) {
	n, err := o.r.Read(p)
	o.n += int64(n)
	return n, err
}
