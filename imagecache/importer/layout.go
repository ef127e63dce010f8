package importer

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/drove-project/drove/layers/reference"
)

// NameAnnotation is the index.json annotation that names an image with its
// full reference, as containerd's own export writes it.
const NameAnnotation = images.AnnotationImageName

// maxIndexJSON and maxManifestJSON bound the JSON documents read into
// memory; real ones are a few KiB.
const (
	maxIndexJSON    = 16 << 20
	maxManifestJSON = 4 << 20
)

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
	path := filepath.Join(dir, ocispec.ImageIndexFile)
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: open %s: %w", ErrInvalidLayout, path, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxIndexJSON+1))
	if err != nil {
		return nil, 0, fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > maxIndexJSON {
		return nil, 0, fmt.Errorf("%w: %s is larger than %d bytes", ErrInvalidLayout, path, maxIndexJSON)
	}
	entries, unnamed, err := decodeIndex(b)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", path, err)
	}
	return entries, unnamed, nil
}

// decodeIndex parses a layout's index.json. Entries must be image
// manifests or indexes (OCI or Docker media types) with a valid digest;
// those without NameAnnotation are counted and skipped. Names are
// normalised; one name given two different digests is an error.
func decodeIndex(b []byte) ([]entry, int, error) {
	var idx ocispec.Index
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, 0, fmt.Errorf("%w: decode index: %w", ErrInvalidLayout, err)
	}
	if idx.SchemaVersion != 2 {
		return nil, 0, fmt.Errorf("%w: index schemaVersion %d, want 2", ErrInvalidLayout, idx.SchemaVersion)
	}
	var (
		entries []entry
		unnamed int
		seen    = map[string]digest.Digest{}
	)
	for i, d := range idx.Manifests {
		raw, ok := d.Annotations[NameAnnotation]
		if !ok || raw == "" {
			unnamed++
			continue
		}
		if err := checkDescriptor(d); err != nil {
			return nil, 0, fmt.Errorf("index entry %d (%s): %w", i, raw, err)
		}
		if !images.IsManifestType(d.MediaType) && !images.IsIndexType(d.MediaType) {
			return nil, 0, fmt.Errorf("%w: index entry %d (%s): media type %q is not an image manifest or index", ErrInvalidLayout, i, raw, d.MediaType)
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
			Desc: ocispec.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size},
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
