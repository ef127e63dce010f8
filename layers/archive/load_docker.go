package archive

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/drove-project/drove/internal/ctxio"
	"github.com/drove-project/drove/layers/store"
)

// maxLinks bounds chains of links in a docker archive.
const maxLinks = 16

// finishDocker imports each image manifest.json lists, through
// go-containerregistry's tarball reader over the archive file, and names it
// by its RepoTags.
func (l *loader) finishDocker(ra *randomAccess, sc *scan) ([]store.Entry, error) {
	var m tarball.Manifest
	if err := json.Unmarshal(sc.dockerManifest, &m); err != nil {
		return nil, fmt.Errorf("%w: decode manifest.json: %w", ErrCorrupt, err)
	}
	if len(m) == 0 {
		return nil, fmt.Errorf("%w: manifest.json lists no images", ErrIncomplete)
	}
	var entries []store.Entry
	for i, d := range m {
		label := fmt.Sprintf("image %d of manifest.json", i+1)
		if len(d.RepoTags) > 0 {
			label = d.RepoTags[0]
		}
		desc, err := l.importDocker(ra, sc, d)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", label, err)
		}
		if len(d.RepoTags) == 0 {
			entries = append(entries, entryFor("", desc))
		}
		for _, tag := range d.RepoTags {
			n, err := dockerName(tag)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", label, err)
			}
			entries = append(entries, entryFor(n, desc))
		}
	}
	return l.tagAll(entries)
}

func (l *loader) importDocker(ra *randomAccess, sc *scan, d tarball.Descriptor) (v1.Descriptor, error) {
	if len(d.LayerSources) > 0 {
		return v1.Descriptor{}, fmt.Errorf("%w: foreign layers (LayerSources)", ErrUnsupported)
	}
	cfg, err := sc.file(d.Config)
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("config: %w", err)
	}
	if cfg.size > maxManifestSize {
		return v1.Descriptor{}, fmt.Errorf("%w: config %s is %d bytes, more than the %d drove reads", ErrUnsupported, d.Config, cfg.size, maxManifestSize)
	}
	// go-containerregistry is given the files' own names, links resolved,
	// so it reads exactly the files checked here (it resolves hard links
	// differently from tar).
	resolved := tarball.Descriptor{Config: cfg.name, RepoTags: d.RepoTags, Layers: make([]string, len(d.Layers))}
	layerFiles := make([]fileEntry, len(d.Layers))
	for i, p := range d.Layers {
		if layerFiles[i], err = sc.file(p); err != nil {
			return v1.Descriptor{}, fmt.Errorf("layer %d: %w", i+1, err)
		}
		resolved.Layers[i] = layerFiles[i].name
	}
	only, err := json.Marshal(tarball.Manifest{resolved})
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("encode manifest: %w", err)
	}
	opener, err := singleImageOpener(ra, only)
	if err != nil {
		return v1.Descriptor{}, err
	}
	img, err := tarball.Image(opener, nil)
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("%w: read image: %w", ErrCorrupt, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("%w: decode config %s: %w", ErrCorrupt, d.Config, err)
	}
	if len(cf.RootFS.DiffIDs) != len(d.Layers) {
		return v1.Descriptor{}, fmt.Errorf("%w: config %s lists %d layers, manifest.json %d", ErrCorrupt, d.Config, len(cf.RootFS.DiffIDs), len(d.Layers))
	}
	if err := l.verifyLayers(ra, d.Layers, layerFiles, cf.RootFS.DiffIDs); err != nil {
		return v1.Descriptor{}, err
	}
	fixed, blobs, err := fixImage(img)
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("%w: read image: %w", ErrCorrupt, err)
	}
	var missing []v1.Hash
	for _, h := range blobs {
		if !l.s.HasBlob(h) {
			missing = append(missing, h)
		}
	}
	desc, err := l.s.WriteImage(l.ctx, fixed, store.WriteOptions{})
	for _, h := range missing {
		if l.s.HasBlob(h) {
			l.added[h] = true
		}
	}
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("write image: %w", err)
	}
	return desc, nil
}

// file finds a file manifest.json names, following links.
func (sc *scan) file(p string) (fileEntry, error) {
	name, err := entryName(p)
	if err != nil {
		return fileEntry{}, err
	}
	for range maxLinks {
		f, ok := sc.files[name]
		if !ok {
			return fileEntry{}, fmt.Errorf("%w: %s is not in the archive", ErrIncomplete, p)
		}
		if f.target == "" {
			return f, nil
		}
		name = f.target
	}
	return fileEntry{}, fmt.Errorf("%w: %s: more than %d links in a row", ErrCorrupt, p, maxLinks)
}

// verifyLayers checks that every layer file unpacks to the diff_id the config
// gives it, and that the layers are compressed alike: go-containerregistry
// judges the whole image by its first layer.
func (l *loader) verifyLayers(ra *randomAccess, names []string, files []fileEntry, diffIDs []v1.Hash) error {
	var first compression
	for i, f := range files {
		sec := io.NewSectionReader(ra.r, ra.base+f.offset, f.size)
		head := make([]byte, 8)
		n, _ := io.ReadFull(sec, head)
		c := sniff(head[:n])
		if i == 0 {
			first = c
		}
		switch {
		case c == compressZstd || c == compressBzip2 || c == compressXz:
			return fmt.Errorf("%w: layer %s is not gzip-compressed or plain; docker archives drove loads hold gzip or plain layers", ErrUnsupported, names[i])
		case c != first:
			return fmt.Errorf("%w: layer %s is compressed differently from the first layer; drove cannot load mixed layers from a docker archive", ErrUnsupported, names[i])
		}
		var r io.Reader = ctxio.Reader(l.ctx, io.NewSectionReader(ra.r, ra.base+f.offset, f.size))
		if c == compressGzip {
			zr, err := gzip.NewReader(r)
			if err != nil {
				return fmt.Errorf("%w: layer %s: %w", ErrCorrupt, names[i], err)
			}
			r = zr
		}
		h := sha256.New()
		if _, err := io.Copy(h, r); err != nil {
			if l.ctx.Err() != nil {
				return l.ctx.Err()
			}
			return fmt.Errorf("%w: layer %s: %w", ErrCorrupt, names[i], err)
		}
		if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != diffIDs[i].String() {
			return fmt.Errorf("%w: layer %s unpacks to %s, but the config says %s", ErrCorrupt, names[i], got, diffIDs[i])
		}
	}
	return nil
}

// fixImage returns img with its layers' digests and sizes taken from its
// manifest, which go-containerregistry computes once; left alone it hashes
// (and for plain layers, gzips) each layer again per call. It also returns
// every blob digest the image has.
func fixImage(img v1.Image) (v1.Image, []v1.Hash, error) {
	m, err := img.Manifest()
	if err != nil {
		return nil, nil, err
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, nil, err
	}
	if len(layers) != len(m.Layers) {
		return nil, nil, errors.New("manifest and layers disagree")
	}
	d, err := img.Digest()
	if err != nil {
		return nil, nil, err
	}
	blobs := []v1.Hash{d, m.Config.Digest}
	fixed := make([]v1.Layer, len(layers))
	for i, layer := range layers {
		fixed[i] = fixedLayer{Layer: layer, desc: m.Layers[i]}
		blobs = append(blobs, m.Layers[i].Digest)
	}
	return fixedImage{Image: img, layers: fixed}, blobs, nil
}

type fixedImage struct {
	v1.Image
	layers []v1.Layer
}

func (f fixedImage) Layers() ([]v1.Layer, error) { return f.layers, nil }

type fixedLayer struct {
	v1.Layer
	desc v1.Descriptor
}

func (f fixedLayer) Digest() (v1.Hash, error) { return f.desc.Digest, nil }
func (f fixedLayer) Size() (int64, error)     { return f.desc.Size, nil }

// singleImageOpener opens the archive with a manifest.json naming one image
// put in front, so go-containerregistry, which finds the first
// manifest.json, reads that image whether or not it has a tag.
func singleImageOpener(ra *randomAccess, manifest []byte) (tarball.Opener, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := writeFile(tw, "manifest.json", manifest); err != nil {
		return nil, err
	}
	if err := tw.Flush(); err != nil {
		return nil, fmt.Errorf("write manifest.json: %w", err)
	}
	prefix := buf.Bytes() // no end-of-archive marker: the archive follows
	return func() (io.ReadCloser, error) {
		return &concatReader{prefix: prefix, rest: io.NewSectionReader(ra.r, ra.base, ra.size)}, nil
	}, nil
}

// concatReader reads prefix then rest, and can seek, so archive/tar skips
// layers it does not want instead of reading them.
type concatReader struct {
	prefix []byte
	rest   *io.SectionReader
	off    int64
}

func (c *concatReader) size() int64 { return int64(len(c.prefix)) + c.rest.Size() }

func (c *concatReader) Read(p []byte) (int, error) {
	if c.off < int64(len(c.prefix)) {
		n := copy(p, c.prefix[c.off:])
		c.off += int64(n)
		return n, nil
	}
	n, err := c.rest.ReadAt(p, c.off-int64(len(c.prefix)))
	c.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

func (c *concatReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += c.off
	case io.SeekEnd:
		offset += c.size()
	default:
		return 0, errors.New("seek: invalid whence")
	}
	if offset < 0 {
		return 0, errors.New("seek: negative position")
	}
	c.off = offset
	return offset, nil
}

func (c *concatReader) Close() error { return nil }
