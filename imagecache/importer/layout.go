package importer

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/containerd/containerd/v2/core/images"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/drove-project/drove/imagecache/ocilayout"
	"github.com/drove-project/drove/layers/reference"
)

// maxManifestJSON bounds a manifest or index read into memory; real ones
// are a few KiB.
const maxManifestJSON = 4 << 20

// entry is one named image of a layout's index.json.
type entry struct {
	// Name is the normalised reference ("docker.io/library/nginx:1.25").
	Name string
	// Raw is the annotation as written in index.json.
	Raw string
	// Desc is the image's top descriptor (manifest or index), without
	// annotations.
	Desc ocispec.Descriptor
}

// readIndex reads dir/index.json and returns the named images in file
// order, and how many entries carried no name.
func readIndex(dir string) ([]entry, int, error) {
	idx, err := ocilayout.ReadIndex(dir)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, ocilayout.ErrInvalidIndex) {
		return nil, 0, fmt.Errorf("%w: %w", ErrInvalidLayout, err)
	}
	if err != nil {
		return nil, 0, err
	}
	entries, unnamed, err := namedEntries(idx.Manifests)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", filepath.Join(dir, ocilayout.IndexFile), err)
	}
	return entries, unnamed, nil
}

// namedEntries picks the entries of a layout's index.json (as
// ocilayout.ReadIndex checked them) that carry an image name. Named
// entries must be image manifests or indexes (OCI or Docker media types);
// those without a name are counted and skipped. Names are normalised; one
// name given two different digests is an error.
func namedEntries(manifests []v1.Descriptor) ([]entry, int, error) {
	var (
		entries []entry
		unnamed int
		seen    = map[string]v1.Hash{}
	)
	for i, d := range manifests {
		raw, ok := d.Annotations[ocilayout.ImageNameAnnotation]
		if !ok || raw == "" {
			unnamed++
			continue
		}
		mt := string(d.MediaType)
		if !images.IsManifestType(mt) && !images.IsIndexType(mt) {
			return nil, 0, fmt.Errorf("%w: index entry %d (%s): media type %q is not an image manifest or index", ErrInvalidLayout, i, raw, mt)
		}
		name, err := reference.Normalize(raw)
		if err != nil {
			return nil, 0, fmt.Errorf("%w: index entry %d: image name: %w", ErrInvalidLayout, i, err)
		}
		if prev, dup := seen[name]; dup {
			if prev != d.Digest {
				return nil, 0, fmt.Errorf("%w: index entry %d: %s names both %s and %s", ErrInvalidLayout, i, name, prev, d.Digest)
			}
			continue
		}
		seen[name] = d.Digest
		entries = append(entries, entry{
			Name: name,
			Raw:  raw,
			Desc: ocispec.Descriptor{MediaType: mt, Digest: digest.Digest(d.Digest.String()), Size: d.Size},
		})
	}
	return entries, unnamed, nil
}

// checkDescriptor rejects a descriptor whose digest is not a valid
// sha256/sha512 digest (it becomes a file path) or whose size is negative.
func checkDescriptor(d ocispec.Descriptor) error {
	if err := d.Digest.Validate(); err != nil {
		return fmt.Errorf("%w: digest %q: %w", ErrInvalidLayout, d.Digest, err)
	}
	if d.Size < 0 {
		return fmt.Errorf("%w: blob %s has negative size %d", ErrInvalidLayout, d.Digest, d.Size)
	}
	return nil
}

// blobPath is where a layout keeps the blob d; d must have passed
// checkDescriptor.
func blobPath(dir string, d digest.Digest) string {
	return filepath.Join(dir, ocispec.ImageBlobsDir, d.Algorithm().String(), d.Encoded())
}

// errBlobMissing marks a blob that is not in the layout; it matches
// ErrInvalidLayout too.
var errBlobMissing = fmt.Errorf("%w: blob not in the layout", ErrInvalidLayout)

// readJSONBlob reads the manifest or index d from the layout and checks
// its size and digest before anything trusts it.
func readJSONBlob(dir string, d ocispec.Descriptor) ([]byte, error) {
	if d.Size > maxManifestJSON {
		return nil, fmt.Errorf("%w: %s %s is %d bytes, over the %d limit", ErrInvalidLayout, d.MediaType, d.Digest, d.Size, maxManifestJSON)
	}
	path := blobPath(dir, d.Digest)
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", errBlobMissing, path)
	}
	if err != nil {
		return nil, fmt.Errorf("open blob: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, d.Size+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(b)) != d.Size {
		return nil, fmt.Errorf("%w: %s: size %d, descriptor says %d", ErrDigestMismatch, path, fileSize(f, len(b)), d.Size)
	}
	if got := d.Digest.Algorithm().FromBytes(b); got != d.Digest {
		return nil, fmt.Errorf("%w: %s has digest %s", ErrDigestMismatch, path, got)
	}
	return b, nil
}

// fileSize reports f's size, or read when it cannot be had.
func fileSize(f *os.File, read int) int64 {
	if st, err := f.Stat(); err == nil {
		return st.Size()
	}
	return int64(read)
}
