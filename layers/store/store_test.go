package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

func ociImage(t *testing.T, layers int) v1.Image {
	t.Helper()
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	for i := 0; i < layers; i++ {
		l, err := random.Layer(4096, types.OCILayer)
		if err != nil {
			t.Fatal(err)
		}
		img, err = mutate.AppendLayers(img, l)
		if err != nil {
			t.Fatal(err)
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func archImage(t *testing.T, arch string) v1.Image {
	img := ociImage(t, 1)
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.Architecture = arch
	img, err := mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestWriteTagResolveVerify(t *testing.T) {
	ctx := context.Background()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	img := ociImage(t, 3)
	desc, err := s.WriteImage(ctx, img, WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()
	if desc.Digest != want {
		t.Fatalf("descriptor digest %s, want %s", desc.Digest, want)
	}
	if err := s.Tag("mycluster:v1", desc); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"mycluster:v1", "docker.io/library/mycluster:v1", want.Hex[:12], "mycluster@" + want.String()} {
		e, err := s.Resolve(ref)
		if err != nil {
			t.Fatalf("resolve %q: %v", ref, err)
		}
		if e.Descriptor.Digest != want {
			t.Fatalf("resolve %q gave %s", ref, e.Descriptor.Digest)
		}
	}
	if _, err := s.Resolve("other:v1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("resolve missing: %v", err)
	}
	got, err := s.Image(want)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(got); err != nil {
		t.Fatalf("validate: %v", err)
	}
	if err := s.Verify(desc); err != nil {
		t.Fatal(err)
	}
	// Corrupt one layer: Verify must name it.
	m, _ := img.Manifest()
	p := s.BlobPath(m.Layers[1].Digest)
	os.Chmod(p, 0o644)
	if err := os.WriteFile(p, []byte("evil"), 0o644); err != nil {
		t.Fatal(err)
	}
	err = s.Verify(desc)
	if !errors.Is(err, ErrDigestMismatch) || !strings.Contains(err.Error(), m.Layers[1].Digest.Hex) {
		t.Fatalf("verify after corruption: %v", err)
	}
}

func TestTagRefusesIncompleteImage(t *testing.T) {
	ctx := context.Background()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	img := ociImage(t, 2)
	desc, err := s.WriteImage(ctx, img, WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := img.Manifest()
	if err := os.Remove(s.BlobPath(m.Layers[0].Digest)); err != nil {
		t.Fatal(err)
	}
	if err := s.Tag("x:1", desc); !errors.Is(err, ErrNotFound) {
		t.Fatalf("tag of incomplete image: %v", err)
	}
	if l, _ := s.List(); len(l) != 0 {
		t.Fatalf("names after refused tag: %v", l)
	}
}

func TestBlobWriterMismatchLeavesNothing(t *testing.T) {
	ctx := context.Background()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	bogus := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}
	if _, _, err := s.WriteBlob(ctx, strings.NewReader("hello"), bogus); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("want mismatch, got %v", err)
	}
	if s.HasBlob(bogus) {
		t.Fatal("mismatched blob was stored")
	}
	if ents, _ := os.ReadDir(s.tmpDir()); len(ents) != 0 {
		t.Fatalf("temporary files left: %v", ents)
	}
}

func TestUntagAndPrune(t *testing.T) {
	ctx := context.Background()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	a, b := ociImage(t, 2), ociImage(t, 1)
	da, _ := s.WriteImage(ctx, a, WriteOptions{})
	db, _ := s.WriteImage(ctx, b, WriteOptions{})
	if err := s.Tag("a:1", da); err != nil {
		t.Fatal(err)
	}
	if err := s.Tag("b:1", db); err != nil {
		t.Fatal(err)
	}
	if err := s.Untag("a:1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Untag("a:1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second untag: %v", err)
	}
	res, err := s.Prune(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Blobs) != 4 { // manifest, config, 2 layers of a
		t.Fatalf("pruned %d blobs, want 4: %v", len(res.Blobs), res.Blobs)
	}
	if s.HasBlob(da.Digest) || !s.HasBlob(db.Digest) {
		t.Fatal("prune removed the wrong image")
	}
	if err := s.Verify(db); err != nil {
		t.Fatalf("remaining image broken: %v", err)
	}
}

func TestIndexRoundTrip(t *testing.T) {
	ctx := context.Background()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, arch := range []string{"amd64", "arm64"} {
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: archImage(t, arch),
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
	}
	desc, err := s.WriteIndex(ctx, idx, WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Tag("multi:1", desc); err != nil {
		t.Fatal(err)
	}
	got, err := s.Index(desc.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Index(got); err != nil {
		t.Fatal(err)
	}
	// The store is an OCI layout any tool can read.
	if _, err := exec.LookPath("skopeo"); err != nil {
		t.Skip("skopeo not installed (apt-get install skopeo): skipping the cross-check")
	}
	out, err := exec.Command("skopeo", "inspect", "--raw", "oci:"+s.Root()+":docker.io/library/multi:1").CombinedOutput()
	if err != nil {
		t.Fatalf("skopeo inspect: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "arm64") {
		t.Fatalf("skopeo read the wrong manifest: %s", out)
	}
	if _, err := os.Stat(filepath.Join(s.Root(), "oci-layout")); err != nil {
		t.Fatal(err)
	}
}

func TestAdoptBlob(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "blob.part")
	data := []byte("adopt me")
	os.WriteFile(path, data, 0o600)
	sum := sha256.Sum256(data)
	want := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
	wrong := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("0", 64)}
	if err := s.AdoptBlob(t.Context(), path, wrong); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("adopt under the wrong digest: %v", err)
	}
	if _, err := os.Stat(path); err != nil || s.HasBlob(wrong) {
		t.Fatalf("a refused adoption moved the file: %v", err)
	}
	if err := s.AdoptBlob(t.Context(), path, want); err != nil {
		t.Fatal(err)
	}
	if b, err := s.ReadBlob(want); err != nil || string(b) != string(data) {
		t.Fatalf("adopted blob: %q %v", b, err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the adopted file is still at its old path: %v", err)
	}
}
