package store

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"
)

// Progress is told about blobs as they are copied into the store; complete
// and total are bytes. It may be called from several goroutines.
type Progress func(complete, total int64)

// WriteOptions tune WriteImage and WriteIndex.
type WriteOptions struct {
	Progress Progress
	Jobs     int // blobs copied at once; default 4
}

// WriteImage copies every blob of img (layers, config, manifest) into the
// store and returns the manifest's descriptor. It does not name the image:
// call Tag once the whole image is in.
func (s *Store) WriteImage(ctx context.Context, img v1.Image, opts WriteOptions) (v1.Descriptor, error) {
	c := newCopier(s, opts)
	if err := c.addImage(img); err != nil {
		return v1.Descriptor{}, err
	}
	if err := c.run(ctx); err != nil {
		return v1.Descriptor{}, err
	}
	d, err := partial.Descriptor(img)
	if err != nil {
		return v1.Descriptor{}, err
	}
	return *d, s.putRaw(ctx, img, d.Digest)
}

// WriteIndex copies an image index and everything under it into the store.
func (s *Store) WriteIndex(ctx context.Context, idx v1.ImageIndex, opts WriteOptions) (v1.Descriptor, error) {
	c := newCopier(s, opts)
	if err := c.addIndex(idx); err != nil {
		return v1.Descriptor{}, err
	}
	if err := c.run(ctx); err != nil {
		return v1.Descriptor{}, err
	}
	if err := c.writeManifests(ctx); err != nil {
		return v1.Descriptor{}, err
	}
	d, err := partial.Descriptor(idx)
	if err != nil {
		return v1.Descriptor{}, err
	}
	return *d, s.putRaw(ctx, idx, d.Digest)
}

type rawManifester interface{ RawManifest() ([]byte, error) }

func (s *Store) putRaw(ctx context.Context, m rawManifester, want v1.Hash) error {
	b, err := m.RawManifest()
	if err != nil {
		return fmt.Errorf("read manifest %s: %w", want, err)
	}
	_, _, err = s.WriteBlob(ctx, bytes.NewReader(b), want)
	return err
}

// copier gathers the blobs of images and indexes and copies the missing ones
// with bounded parallelism. Manifests are written after the blobs they name.
type copier struct {
	s         *Store
	opts      WriteOptions
	blobs     map[v1.Hash]blobSource
	manifests []rawWithDigest // children first
	total     int64
}

type blobSource struct {
	size int64
	open func() (io.ReadCloser, error)
}

type rawWithDigest struct {
	m rawManifester
	d v1.Hash
}

func newCopier(s *Store, opts WriteOptions) *copier {
	if opts.Jobs <= 0 {
		opts.Jobs = 4
	}
	return &copier{s: s, opts: opts, blobs: map[v1.Hash]blobSource{}}
}

func (c *copier) addIndex(idx v1.ImageIndex) error {
	im, err := idx.IndexManifest()
	if err != nil {
		return fmt.Errorf("read index: %w", err)
	}
	for _, d := range im.Manifests {
		switch {
		case d.MediaType.IsIndex():
			child, err := idx.ImageIndex(d.Digest)
			if err != nil {
				return fmt.Errorf("read index %s: %w", d.Digest, err)
			}
			if err := c.addIndex(child); err != nil {
				return err
			}
			c.manifests = append(c.manifests, rawWithDigest{child, d.Digest})
		case d.MediaType.IsImage():
			img, err := idx.Image(d.Digest)
			if err != nil {
				return fmt.Errorf("read image %s: %w", d.Digest, err)
			}
			if err := c.addImage(img); err != nil {
				return err
			}
			c.manifests = append(c.manifests, rawWithDigest{img, d.Digest})
		default:
			return fmt.Errorf("index entry %s has media type %q, which drove does not store", d.Digest, d.MediaType)
		}
	}
	return nil
}

func (c *copier) addImage(img v1.Image) error {
	cfgName, err := img.ConfigName()
	if err != nil {
		return fmt.Errorf("read config name: %w", err)
	}
	raw, err := img.RawConfigFile()
	if err != nil {
		return fmt.Errorf("read config %s: %w", cfgName, err)
	}
	c.add(cfgName, int64(len(raw)), func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil })
	layers, err := img.Layers()
	if err != nil {
		return fmt.Errorf("read layers: %w", err)
	}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return err
		}
		mt, err := l.MediaType()
		if err == nil && !mt.IsDistributable() {
			continue // foreign layers stay where they are
		}
		size, err := l.Size()
		if err != nil {
			return err
		}
		c.add(d, size, l.Compressed)
	}
	return nil
}

func (c *copier) add(d v1.Hash, size int64, open func() (io.ReadCloser, error)) {
	if _, ok := c.blobs[d]; ok || c.s.HasBlob(d) {
		return
	}
	c.blobs[d] = blobSource{size: size, open: open}
	c.total += size
}

func (c *copier) run(ctx context.Context) error {
	var mu sync.Mutex
	var done int64
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(c.opts.Jobs)
	for d, src := range c.blobs {
		g.Go(func() error {
			rc, err := src.open()
			if err != nil {
				return fmt.Errorf("open blob %s: %w", d, err)
			}
			defer rc.Close()
			var r io.Reader = rc
			if c.opts.Progress != nil {
				r = &progressReader{r: rc, fn: func(n int64) {
					mu.Lock()
					done += n
					cur := done
					mu.Unlock()
					c.opts.Progress(cur, c.total)
				}}
			}
			if _, _, err := c.s.WriteBlob(ctx, r, d); err != nil {
				return err
			}
			return nil
		})
	}
	return g.Wait()
}

func (c *copier) writeManifests(ctx context.Context) error {
	for _, m := range c.manifests {
		if err := c.s.putRaw(ctx, m.m, m.d); err != nil {
			return err
		}
	}
	return nil
}

type progressReader struct {
	r  io.Reader
	fn func(int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.fn(int64(n))
	}
	return n, err
}

// Image reads the image whose manifest has digest h.
func (s *Store) Image(h v1.Hash) (v1.Image, error) {
	raw, err := s.ReadBlob(h)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", h, err)
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("decode manifest %s: %w", h, err)
	}
	img, err := partial.CompressedToImage(&storeImage{s: s, raw: raw, m: m})
	if err != nil {
		return nil, fmt.Errorf("read image %s: %w", h, err)
	}
	return img, nil
}

// storeImage is the compressed core of an image read from the store's blobs;
// partial.CompressedToImage derives the rest of v1.Image from it.
type storeImage struct {
	s   *Store
	raw []byte
	m   *v1.Manifest
}

func (i *storeImage) MediaType() (types.MediaType, error) {
	if i.m.MediaType != "" {
		return i.m.MediaType, nil
	}
	return types.OCIManifestSchema1, nil
}
func (i *storeImage) RawManifest() ([]byte, error)   { return i.raw, nil }
func (i *storeImage) RawConfigFile() ([]byte, error) { return i.s.ReadBlob(i.m.Config.Digest) }
func (i *storeImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if h == i.m.Config.Digest {
		return &storeBlob{s: i.s, d: i.m.Config}, nil
	}
	for _, l := range i.m.Layers {
		if l.Digest == h {
			return &storeBlob{s: i.s, d: l}, nil
		}
	}
	return nil, fmt.Errorf("layer %s is not in manifest: %w", h, ErrNotFound)
}

// storeBlob is one layer or config blob of a store image.
type storeBlob struct {
	s *Store
	d v1.Descriptor
}

func (b *storeBlob) Digest() (v1.Hash, error)            { return b.d.Digest, nil }
func (b *storeBlob) Size() (int64, error)                { return b.d.Size, nil }
func (b *storeBlob) MediaType() (types.MediaType, error) { return b.d.MediaType, nil }
func (b *storeBlob) Descriptor() (*v1.Descriptor, error) { d := b.d; return &d, nil }
func (b *storeBlob) Compressed() (io.ReadCloser, error)  { return b.s.OpenBlob(b.d.Digest) }

// Index reads the image index with digest h.
func (s *Store) Index(h v1.Hash) (v1.ImageIndex, error) {
	raw, err := s.ReadBlob(h)
	if err != nil {
		return nil, err
	}
	im, err := v1.ParseIndexManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("decode index %s: %w", h, err)
	}
	return &storeIndex{s: s, raw: raw, im: im, digest: h}, nil
}

// storeIndex is a v1.ImageIndex read from the store's blobs.
type storeIndex struct {
	s      *Store
	raw    []byte
	im     *v1.IndexManifest
	digest v1.Hash
}

func (i *storeIndex) MediaType() (types.MediaType, error) {
	if i.im.MediaType != "" {
		return i.im.MediaType, nil
	}
	return types.OCIImageIndex, nil
}
func (i *storeIndex) Digest() (v1.Hash, error)                  { return i.digest, nil }
func (i *storeIndex) Size() (int64, error)                      { return int64(len(i.raw)), nil }
func (i *storeIndex) IndexManifest() (*v1.IndexManifest, error) { return i.im.DeepCopy(), nil }
func (i *storeIndex) RawManifest() ([]byte, error)              { return i.raw, nil }
func (i *storeIndex) Image(h v1.Hash) (v1.Image, error)         { return i.s.Image(h) }
func (i *storeIndex) ImageIndex(h v1.Hash) (v1.ImageIndex, error) {
	return i.s.Index(h)
}

// Verify re-hashes every blob the descriptor reaches.
func (s *Store) Verify(desc v1.Descriptor) error {
	return s.walk(desc, func(d v1.Descriptor) error { return s.VerifyBlob(d.Digest) })
}
