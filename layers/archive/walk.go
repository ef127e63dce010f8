package archive

import (
	"bytes"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/drove-project/drove/layers/store"
)

const (
	// maxManifestSize bounds manifests, indexes, index.json and
	// manifest.json, which are read into memory.
	maxManifestSize = 16 << 20
	// maxDepth bounds nested indexes.
	maxDepth = 8
)

// walk calls fn for desc and then for every descriptor it reaches through the
// store's blobs: an index's manifests, a manifest's config and layers. fn runs
// before a blob is opened, so it can check that the blob is there. Each
// digest is visited once.
func walk(s *store.Store, desc v1.Descriptor, fn func(v1.Descriptor) error) error {
	return walkSeen(s, desc, fn, map[v1.Hash]bool{}, 0)
}

func walkSeen(s *store.Store, desc v1.Descriptor, fn func(v1.Descriptor) error, seen map[v1.Hash]bool, depth int) error {
	if seen[desc.Digest] {
		return nil
	}
	seen[desc.Digest] = true
	if err := fn(desc); err != nil {
		return err
	}
	switch {
	case desc.MediaType.IsIndex():
		if depth >= maxDepth {
			return fmt.Errorf("%w: index %s nests deeper than %d levels", ErrUnsupported, desc.Digest, maxDepth)
		}
		b, err := readManifest(s, desc)
		if err != nil {
			return err
		}
		im, err := v1.ParseIndexManifest(bytes.NewReader(b))
		if err != nil {
			return fmt.Errorf("decode index %s: %w", desc.Digest, err)
		}
		for _, m := range im.Manifests {
			if err := walkSeen(s, m, fn, seen, depth+1); err != nil {
				return err
			}
		}
	case desc.MediaType.IsImage():
		b, err := readManifest(s, desc)
		if err != nil {
			return err
		}
		m, err := v1.ParseManifest(bytes.NewReader(b))
		if err != nil {
			return fmt.Errorf("decode manifest %s: %w", desc.Digest, err)
		}
		for _, d := range append([]v1.Descriptor{m.Config}, m.Layers...) {
			if err := walkSeen(s, d, fn, seen, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

// readManifest reads a manifest or index blob, refusing sizes that do not
// match the descriptor or that are too large to hold in memory.
func readManifest(s *store.Store, desc v1.Descriptor) ([]byte, error) {
	if desc.Size > maxManifestSize {
		return nil, fmt.Errorf("%w: manifest %s is %d bytes, more than the %d drove reads", ErrUnsupported, desc.Digest, desc.Size, maxManifestSize)
	}
	f, err := s.OpenBlob(desc.Digest)
	if err != nil {
		return nil, fmt.Errorf("read manifest %s: %w", desc.Digest, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxManifestSize+1))
	if err != nil {
		return nil, fmt.Errorf("read manifest %s: %w", desc.Digest, err)
	}
	if int64(len(b)) != desc.Size {
		return nil, fmt.Errorf("manifest %s is %d bytes, its descriptor says %d", desc.Digest, len(b), desc.Size)
	}
	return b, nil
}
