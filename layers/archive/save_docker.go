package archive

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/drove-project/drove/layers/store"
)

func saveDocker(ctx context.Context, w io.Writer, s *store.Store, entries []saveEntry, opts SaveOptions) error {
	want := opts.Platform
	if want == nil {
		want = &v1.Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH}
	}
	refToImage := map[name.Reference]v1.Image{}
	byDigest := map[v1.Hash]v1.Image{} // one v1.Image per manifest, so the tar holds it once
	for _, e := range entries {
		h, err := pickManifest(s, e.desc, *want)
		if err != nil {
			return fmt.Errorf("save %s as %s: %w", e.ref, DockerArchive, err)
		}
		img, ok := byDigest[h]
		if !ok {
			if img, err = s.Image(h); err != nil {
				return fmt.Errorf("save %s: %w", e.ref, err)
			}
			if err := dockerCompatible(img); err != nil {
				return fmt.Errorf("save %s as %s: %w", e.ref, DockerArchive, err)
			}
			byDigest[h] = img
		}
		var ref name.Reference
		if e.name != "" {
			ref, err = name.NewTag(store.FamiliarName(e.name))
		} else {
			ref, err = name.NewDigest(e.resolved)
		}
		if err != nil {
			return fmt.Errorf("save %s: %w", e.ref, err)
		}
		refToImage[ref] = img
	}
	total, err := tarball.CalculateSize(refToImage)
	if err != nil {
		return fmt.Errorf("save as %s: %w", DockerArchive, err)
	}
	cw := &countingWriter{ctx: ctx, w: w, total: total, progress: opts.Progress}
	if err := tarball.MultiRefWrite(refToImage, cw); err != nil {
		return fmt.Errorf("write %s: %w", DockerArchive, err)
	}
	return nil
}

// pickManifest returns the digest of the image manifest desc stands for on
// platform want: desc itself for an image, the matching entry for an index.
func pickManifest(s *store.Store, desc v1.Descriptor, want v1.Platform) (v1.Hash, error) {
	if !desc.MediaType.IsIndex() {
		return desc.Digest, nil
	}
	var have []string
	h, ok, err := findPlatform(s, desc, want, &have, 0)
	if err != nil {
		return v1.Hash{}, err
	}
	if !ok {
		return v1.Hash{}, fmt.Errorf("no %s image in this multi-platform image (it has %s); pick one of those platforms or save as %s: %w",
			want, strings.Join(have, ", "), OCIArchive, store.ErrNotFound)
	}
	return h, nil
}

func findPlatform(s *store.Store, desc v1.Descriptor, want v1.Platform, have *[]string, depth int) (v1.Hash, bool, error) {
	if depth >= maxDepth {
		return v1.Hash{}, false, fmt.Errorf("%w: index %s nests deeper than %d levels", ErrUnsupported, desc.Digest, maxDepth)
	}
	idx, err := s.Index(desc.Digest)
	if err != nil {
		return v1.Hash{}, false, err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return v1.Hash{}, false, fmt.Errorf("read index %s: %w", desc.Digest, err)
	}
	for _, m := range im.Manifests {
		switch {
		case m.MediaType.IsIndex():
			h, ok, err := findPlatform(s, m, want, have, depth+1)
			if err != nil || ok {
				return h, ok, err
			}
		case m.MediaType.IsImage():
			p := m.Platform
			if p == nil {
				img, err := s.Image(m.Digest)
				if err != nil {
					return v1.Hash{}, false, err
				}
				cf, err := img.ConfigFile()
				if err != nil {
					return v1.Hash{}, false, fmt.Errorf("read config of %s: %w", m.Digest, err)
				}
				p = cf.Platform()
			}
			if p == nil {
				continue
			}
			if p.Satisfies(want) {
				return m.Digest, true, nil
			}
			*have = append(*have, p.String())
		}
	}
	return v1.Hash{}, false, nil
}

// dockerCompatible refuses what `docker load` may not read.
func dockerCompatible(img v1.Image) error {
	layers, err := img.Layers()
	if err != nil {
		return fmt.Errorf("read layers: %w", err)
	}
	for _, l := range layers {
		mt, err := l.MediaType()
		if err != nil {
			return fmt.Errorf("read layer media type: %w", err)
		}
		if mt == types.OCILayerZStd {
			d, _ := l.Digest()
			return fmt.Errorf("%w: layer %s is zstd-compressed, which docker archives cannot carry reliably; save as %s instead",
				ErrUnsupported, d, OCIArchive)
		}
	}
	return nil
}

// countingWriter reports progress and stops writing when ctx ends.
type countingWriter struct {
	ctx      context.Context
	w        io.Writer
	n, total int64
	progress func(done, total int64)
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	if c.progress != nil && n > 0 {
		c.progress(c.n, c.total)
	}
	return n, err
}
