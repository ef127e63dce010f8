package swarm

import (
	"context"
	"errors"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/drove-project/drove/internal/testimage"
	"github.com/drove-project/drove/layers/store"
)

// randomImage is an OCI image of random layers (each of the given size).
func randomImage(t *testing.T, sizes ...int64) v1.Image {
	t.Helper()
	layers := make([]v1.Layer, 0, len(sizes))
	for _, n := range sizes {
		layers = append(layers, testimage.Layer(t, n, types.OCILayer))
	}
	return testimage.Image(t, testimage.Spec{}, layers...)
}

func TestImageBlobs(t *testing.T) {
	ctx := context.Background()
	s, err := store.Open(t.TempDir())
	must(t, err)
	img := randomImage(t, 3*mib, 1000)
	desc, err := s.WriteImage(ctx, img, store.WriteOptions{})
	must(t, err)
	m, err := img.Manifest()
	must(t, err)

	blobs, err := ImageBlobs(ctx, s, desc.Digest, mib)
	must(t, err)
	want := []v1.Descriptor{{Digest: desc.Digest, MediaType: types.OCIManifestSchema1, Size: desc.Size}, m.Config, m.Layers[0], m.Layers[1]}
	if len(blobs) != len(want) {
		t.Fatalf("%d blobs, want %d", len(blobs), len(want))
	}
	for i, w := range want {
		b := blobs[i]
		if b.Digest != w.Digest.String() || b.MediaType != string(w.MediaType) || b.Size != w.Size {
			t.Fatalf("blob %d: %s %s %d, want %s %s %d", i, b.Digest, b.MediaType, b.Size, w.Digest, w.MediaType, w.Size)
		}
		must(t, Validate(b))
	}
	if len(blobs[2].Pieces) < 3 {
		t.Fatalf("a 3 MiB+ layer has %d pieces of 1 MiB", len(blobs[2].Pieces))
	}
}

func TestImageBlobsRefusesIndex(t *testing.T) {
	ctx := context.Background()
	s, err := store.Open(t.TempDir())
	must(t, err)
	desc, err := s.WriteIndex(ctx, testimage.IndexOf(t, randomImage(t, 10)), store.WriteOptions{})
	must(t, err)
	_, err = ImageBlobs(ctx, s, desc.Digest, mib)
	if !errors.Is(err, ErrBadManifest) || !strings.Contains(err.Error(), "multi-platform index: pick one") {
		t.Fatalf("index: %v", err)
	}
	missing := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("1", 64)}
	if _, err := ImageBlobs(ctx, s, missing, mib); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing image: %v", err)
	}
}
