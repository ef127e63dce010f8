package build

import (
	"context"
	"errors"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/drove-project/drove/layers/registry"
	"github.com/drove-project/drove/layers/store"
)

// baseImage finds ref for platform p in the store, or pulls it (that
// platform only) and keeps it in the store under its name.
func (b *builder) baseImage(ctx context.Context, ref string, p v1.Platform) (v1.Image, v1.Hash, error) {
	e, err := b.s.Resolve(ref)
	if err == nil {
		return b.platformImage(e.Descriptor, ref, p)
	}
	if !errors.Is(err, store.ErrNotFound) {
		return nil, v1.Hash{}, err
	}
	fmt.Fprintf(b.o.Out, "pulling base image %s for %s\n", ref, p.String())
	ropts := b.o.Registry
	ropts.Platform = &p
	pulled, err := registry.Pull(ctx, ref, ropts)
	if err != nil {
		return nil, v1.Hash{}, err
	}
	if pulled.Image == nil {
		return nil, v1.Hash{}, fmt.Errorf("base image %s: registry returned no image for %s", ref, p.String())
	}
	desc, err := b.s.WriteImage(ctx, pulled.Image, store.WriteOptions{})
	if err != nil {
		return nil, v1.Hash{}, fmt.Errorf("store base image %s: %w", ref, err)
	}
	if err := b.s.Tag(ref, desc); err != nil {
		return nil, v1.Hash{}, err
	}
	img, err := b.s.Image(desc.Digest)
	return img, desc.Digest, err
}

// platformImage picks p's image out of a stored image or index.
func (b *builder) platformImage(desc v1.Descriptor, ref string, p v1.Platform) (v1.Image, v1.Hash, error) {
	if desc.MediaType.IsImage() {
		img, err := b.s.Image(desc.Digest)
		if err != nil {
			return nil, v1.Hash{}, err
		}
		cf, err := img.ConfigFile()
		if err != nil {
			return nil, v1.Hash{}, err
		}
		if cf.Architecture != "" && cf.Architecture != p.Architecture {
			return nil, v1.Hash{}, fmt.Errorf("base image %s is %s/%s, not %s", ref, cf.OS, cf.Architecture, p.String())
		}
		return img, desc.Digest, nil
	}
	idx, err := b.s.Index(desc.Digest)
	if err != nil {
		return nil, v1.Hash{}, err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, v1.Hash{}, err
	}
	var have []string
	for _, m := range im.Manifests {
		if m.Platform != nil && m.Platform.Satisfies(p) && m.MediaType.IsImage() {
			img, err := b.s.Image(m.Digest)
			return img, m.Digest, err
		}
		if m.Platform != nil {
			have = append(have, m.Platform.String())
		}
	}
	return nil, v1.Hash{}, fmt.Errorf("base image %s has no %s image (it has %v)", ref, p.String(), have)
}
