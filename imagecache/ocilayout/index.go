package ocilayout

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/drove-project/drove/layers/store"
)

// Annotation keys of an index.json entry.
const (
	// ImageNameAnnotation holds the entry's full image reference
	// ("docker.io/library/nginx:1.25"); containerd names the image it
	// imports after it.
	ImageNameAnnotation = store.ImageNameAnnotation
	// RefNameAnnotation holds the tag or digest of the reference, as
	// skopeo's and umoci's oci:DIR:NAME look it up.
	RefNameAnnotation = store.RefNameAnnotation
)

// IndexFile is the name of a layout's index inside its directory.
const IndexFile = "index.json"

// MaxIndexSize bounds the index.json ReadIndex reads into memory; real ones
// are a few KiB.
const MaxIndexSize = 16 << 20

// ErrInvalidIndex means index.json is not a valid OCI image index: not
// JSON, too large, the wrong schema or media type, or an entry without a
// sha256 digest, a size or a media type.
var ErrInvalidIndex = errors.New("invalid OCI image index")

// ReadIndex reads and checks dir/index.json (see ParseIndex). A missing file
// gives an error matching fs.ErrNotExist; an invalid one an error matching
// ErrInvalidIndex and naming the file and what is wrong.
func ReadIndex(dir string) (*v1.IndexManifest, error) {
	path := filepath.Join(dir, IndexFile)
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read OCI image index: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxIndexSize+1))
	if err != nil {
		return nil, fmt.Errorf("read OCI image index %s: %w", path, err)
	}
	if len(b) > MaxIndexSize {
		return nil, fmt.Errorf("%w %s: larger than %d bytes", ErrInvalidIndex, path, MaxIndexSize)
	}
	return ParseIndex(path, b)
}

// ParseIndex decodes the contents b of an index.json and checks what every
// reader relies on: schemaVersion 2, no mediaType or the OCI index one, and
// every entry with a sha256 digest (so that it names a file under
// blobs/sha256/), a size that is not negative and a mediaType. It does not
// look at annotations. path only names the file in errors, which match
// ErrInvalidIndex.
func ParseIndex(path string, b []byte) (*v1.IndexManifest, error) {
	var idx v1.IndexManifest
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrInvalidIndex, path, decodeProblem(b, err))
	}
	if idx.SchemaVersion != 2 {
		return nil, fmt.Errorf("%w %s: schemaVersion is %d, want 2", ErrInvalidIndex, path, idx.SchemaVersion)
	}
	if idx.MediaType != "" && idx.MediaType != types.OCIImageIndex {
		return nil, fmt.Errorf("%w %s: mediaType is %q, want %q", ErrInvalidIndex, path, idx.MediaType, types.OCIImageIndex)
	}
	for i, d := range idx.Manifests {
		if err := checkEntry(d); err != nil {
			return nil, fmt.Errorf("%w %s: manifests[%d]: %w", ErrInvalidIndex, path, i, err)
		}
	}
	return &idx, nil
}

// decodeProblem says where json.Unmarshal failed on b: the byte offset of a
// syntax error, or the entry whose digest does not parse (the digest
// decoder's own error names neither).
func decodeProblem(b []byte, err error) error {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return fmt.Errorf("invalid JSON at byte %d: %w", syn.Offset, err)
	}
	var digests struct {
		Manifests []struct {
			Digest *string `json:"digest"`
		} `json:"manifests"`
	}
	if json.Unmarshal(b, &digests) != nil {
		return err
	}
	for i, m := range digests.Manifests {
		if m.Digest == nil {
			continue
		}
		if _, herr := v1.NewHash(*m.Digest); herr != nil {
			return fmt.Errorf("manifests[%d]: digest %q: %w", i, *m.Digest, herr)
		}
	}
	return err
}

// checkEntry checks what every reader relies on in an index entry.
func checkEntry(d v1.Descriptor) error {
	if d.Digest == (v1.Hash{}) {
		return errors.New("no digest")
	}
	if d.Digest.Algorithm != "sha256" || len(d.Digest.Hex) != 64 {
		return fmt.Errorf("digest %q is not a sha256 digest", d.Digest.String())
	}
	if d.Size < 0 {
		return fmt.Errorf("%s: negative size %d", d.Digest, d.Size)
	}
	if d.MediaType == "" {
		return fmt.Errorf("%s: no mediaType", d.Digest)
	}
	return nil
}

// ImageNames returns the ImageNameAnnotation of every entry of
// dir/index.json that has one, in file order; none when the file does not
// exist.
func ImageNames(dir string) ([]string, error) {
	idx, err := ReadIndex(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, d := range idx.Manifests {
		if n := d.Annotations[ImageNameAnnotation]; n != "" {
			out = append(out, n)
		}
	}
	return out, nil
}
