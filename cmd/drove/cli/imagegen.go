package cli

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/drove-project/drove/layers/store"
)

// WriteRandomImage puts an image of about size bytes of random data (from
// rngSeed, so the same seed gives the same image), in n uncompressed tar
// layers of one file each, into s under name. Benchmarks and tests use it:
// random data does not compress, so a layer costs no CPU to pack.
func WriteRandomImage(ctx context.Context, s *store.Store, name string, size int64, n int, rngSeed int64) (v1.Hash, error) {
	rng := rand.NewChaCha8([32]byte{byte(rngSeed), byte(rngSeed >> 8), byte(rngSeed >> 16), 0xd5})
	var layers []v1.Layer
	for i := range n {
		part := size / int64(n)
		if i == n-1 {
			part = size - part*int64(n-1)
		}
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		if err := tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("data/layer%d.bin", i), Mode: 0o644, Size: part, Typeflag: tar.TypeReg}); err != nil {
			return v1.Hash{}, err
		}
		if _, err := io.CopyN(tw, rng, part); err != nil {
			return v1.Hash{}, err
		}
		if err := tw.Close(); err != nil {
			return v1.Hash{}, err
		}
		layers = append(layers, static.NewLayer(buf.Bytes(), types.OCIUncompressedLayer))
	}
	img, err := mutate.AppendLayers(mutate.MediaType(mutate.ConfigMediaType(empty.Image, types.OCIConfigJSON), types.OCIManifestSchema1), layers...)
	if err != nil {
		return v1.Hash{}, err
	}
	desc, err := s.WriteImage(ctx, img, store.WriteOptions{})
	if err != nil {
		return v1.Hash{}, fmt.Errorf("write random image %s: %w", name, err)
	}
	if err := s.Tag(name, desc); err != nil {
		return v1.Hash{}, err
	}
	return desc.Digest, nil
}
