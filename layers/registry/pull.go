package registry

import (
	"context"
	"errors"
	"fmt"
	"github.com/drove-project/drove/layers/reference"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Pulled is what Pull found at a reference: exactly one of Image and Index
// is set. Their blobs are fetched lazily, when read, with the context and
// credentials Pull was given.
type Pulled struct {
	// Ref is the canonical repo@digest of the returned image or index.
	Ref name.Digest
	// Descriptor describes the returned manifest (for an image chosen from
	// an index by platform, the index's entry, platform included).
	Descriptor v1.Descriptor
	// Image is set when ref names an image, or an index and a platform was
	// requested.
	Image v1.Image
	// Index is set when ref names an index and no platform was requested.
	Index v1.ImageIndex
}

// Pull fetches the manifest at ref. With Options.Platform set and an index
// at ref, it returns the index's image for that platform, or an error
// wrapping ErrNotFound when there is none.
func Pull(ctx context.Context, ref string, opts Options) (Pulled, error) {
	r, err := opts.ParseReference(ref)
	if err != nil {
		return Pulled{}, fmt.Errorf("pull: %w", err)
	}
	shown := reference.String(r)
	ep, ropts, err := opts.remote(ctx, r)
	if err != nil {
		return Pulled{}, fmt.Errorf("pull %s: %w", shown, err)
	}
	desc, err := remote.Get(r, ropts...)
	if err != nil {
		return Pulled{}, fmt.Errorf("pull %s: %w", shown, ep.Classify(err, shown))
	}
	out := Pulled{Ref: r.Context().Digest(desc.Digest.String()), Descriptor: desc.Descriptor}
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			return Pulled{}, fmt.Errorf("pull %s: %w", shown, err)
		}
		if opts.Platform == nil {
			out.Index = idx
			return out, nil
		}
		return pullPlatform(r, shown, idx, *opts.Platform, ep)
	}
	if !desc.MediaType.IsImage() {
		return Pulled{}, fmt.Errorf("pull %s: unsupported manifest media type %q", shown, desc.MediaType)
	}
	img, err := desc.Image()
	if err != nil {
		return Pulled{}, fmt.Errorf("pull %s: %w", shown, err)
	}
	out.Image = img
	return out, nil
}

// pullPlatform picks the first image in idx, from ep, whose platform
// satisfies want.
func pullPlatform(r name.Reference, shown string, idx v1.ImageIndex, want v1.Platform, ep Endpoint) (Pulled, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return Pulled{}, fmt.Errorf("pull %s: %w", shown, ep.Classify(err, shown))
	}
	for _, m := range im.Manifests {
		if m.Platform == nil || !m.MediaType.IsImage() || !m.Platform.Satisfies(want) {
			continue
		}
		img, err := idx.Image(m.Digest)
		if err != nil {
			return Pulled{}, fmt.Errorf("pull %s for %s: %w", shown, want.String(), ep.Classify(err, shown))
		}
		return Pulled{Ref: r.Context().Digest(m.Digest.String()), Descriptor: m, Image: img}, nil
	}
	return Pulled{}, fmt.Errorf("pull %s: %w: no image for platform %s in the index", shown, ErrNotFound, want.String())
}

// Resolve returns the descriptor of the manifest at ref (an index stays an
// index; Options.Platform is not applied), without fetching blobs.
func Resolve(ctx context.Context, ref string, opts Options) (v1.Descriptor, error) {
	r, err := opts.ParseReference(ref)
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("resolve: %w", err)
	}
	shown := reference.String(r)
	ep, ropts, err := opts.remote(ctx, r)
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("resolve %s: %w", shown, err)
	}
	desc, err := remote.Head(r, ropts...)
	if err == nil {
		return *desc, nil
	}
	var definite *classifiedError // unauthorized, not found, unreachable
	if cerr := ep.Classify(err, shown); errors.As(cerr, &definite) {
		return v1.Descriptor{}, fmt.Errorf("resolve %s: %w", shown, cerr)
	}
	// Some registries answer HEAD badly; GET the manifest instead.
	full, err := remote.Get(r, ropts...)
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("resolve %s: %w", shown, ep.Classify(err, shown))
	}
	return full.Descriptor, nil
}
