package collect

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Annotation keys of an index.json entry.
const (
	// ImageNameAnnotation holds the full image reference; containerd names
	// the image it imports after it.
	ImageNameAnnotation = "io.containerd.image.name"
	// RefNameAnnotation holds the tag or digest of the reference, as
	// skopeo's and umoci's oci:DIR:NAME look it up.
	RefNameAnnotation = "org.opencontainers.image.ref.name"
)

// Names inside an OCI image layout.
const (
	layoutFile   = "oci-layout"
	indexFile    = "index.json"
	layoutVer    = "1.0.0"
	blobsSubdir  = "blobs"
	sha256Subdir = "sha256"
)

// ReadIndex returns the entries of dir/index.json, or none when the file
// (or dir) does not exist. A file that is not a valid OCI image index gives
// an error naming it and what is wrong.
func ReadIndex(dir string) ([]v1.Descriptor, error) {
	idx, err := readIndexFile(dir)
	if err != nil || idx == nil {
		return nil, err
	}
	return idx.Manifests, nil
}

// readIndexFile reads dir/index.json; nil without error when absent.
func readIndexFile(dir string) (*v1.IndexManifest, error) {
	path := filepath.Join(dir, indexFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read OCI image index: %w", err)
	}
	return parseIndex(path, b)
}

// parseIndex decodes and checks an OCI image layout's index.json; path
// only names the file in errors.
func parseIndex(path string, b []byte) (*v1.IndexManifest, error) {
	var idx v1.IndexManifest
	if err := json.Unmarshal(b, &idx); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			return nil, fmt.Errorf("OCI image index %s: invalid JSON at byte %d: %w", path, syn.Offset, err)
		}
		return nil, fmt.Errorf("OCI image index %s: %w", path, err)
	}
	if idx.SchemaVersion != 2 {
		return nil, fmt.Errorf("OCI image index %s: schemaVersion is %d, want 2", path, idx.SchemaVersion)
	}
	if idx.MediaType != "" && idx.MediaType != types.OCIImageIndex {
		return nil, fmt.Errorf("OCI image index %s: mediaType is %q, want %q", path, idx.MediaType, types.OCIImageIndex)
	}
	for i, d := range idx.Manifests {
		if err := checkEntry(d); err != nil {
			return nil, fmt.Errorf("OCI image index %s: manifests[%d]: %w", path, i, err)
		}
	}
	return &idx, nil
}

// checkEntry checks what Collect and containerd rely on in an index entry.
func checkEntry(d v1.Descriptor) error {
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

// prepareLayout creates dir as an OCI image layout when it is not one yet
// (oci-layout and blobs/sha256/), checks the version of an existing one, and
// returns its current index (empty when there is none).
func prepareLayout(dir string) (*v1.IndexManifest, error) {
	if err := os.MkdirAll(filepath.Join(dir, blobsSubdir, sha256Subdir), 0o755); err != nil {
		return nil, fmt.Errorf("create OCI image layout: %w", err)
	}
	path := filepath.Join(dir, layoutFile)
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		b, _ = json.Marshal(map[string]string{"imageLayoutVersion": layoutVer})
		if err := writeFileAtomic(path, b); err != nil {
			return nil, fmt.Errorf("create OCI image layout: %w", err)
		}
	case err != nil:
		return nil, fmt.Errorf("read OCI image layout: %w", err)
	default:
		var l struct {
			Version string `json:"imageLayoutVersion"`
		}
		if err := json.Unmarshal(b, &l); err != nil {
			return nil, fmt.Errorf("OCI image layout %s: %w", path, err)
		}
		if l.Version != layoutVer {
			return nil, fmt.Errorf("OCI image layout %s: imageLayoutVersion %q, want %q", path, l.Version, layoutVer)
		}
	}
	idx, err := readIndexFile(dir)
	if err != nil {
		return nil, err
	}
	if idx == nil {
		idx = &v1.IndexManifest{SchemaVersion: 2}
	}
	return idx, nil
}

// mergeEntries returns old with every entry whose image name is in add
// replaced in place by the new one, and the remaining new entries appended
// in order.
func mergeEntries(old, add []v1.Descriptor) []v1.Descriptor {
	byName := make(map[string]int, len(add))
	for i, d := range add {
		byName[d.Annotations[ImageNameAnnotation]] = i
	}
	used := make([]bool, len(add))
	out := make([]v1.Descriptor, 0, len(old)+len(add))
	for _, d := range old {
		name, ok := d.Annotations[ImageNameAnnotation]
		if i, found := byName[name]; ok && found {
			if !used[i] {
				out = append(out, add[i])
				used[i] = true
			}
			continue
		}
		out = append(out, d)
	}
	for i, d := range add {
		if !used[i] {
			out = append(out, d)
		}
	}
	return out
}

// writeIndex replaces dir/index.json with idx, atomically.
func writeIndex(dir string, idx *v1.IndexManifest) error {
	idx.SchemaVersion = 2
	idx.MediaType = types.OCIImageIndex
	if idx.Manifests == nil {
		idx.Manifests = []v1.Descriptor{}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(idx); err != nil {
		return fmt.Errorf("encode OCI image index: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(dir, indexFile), buf.Bytes()); err != nil {
		return fmt.Errorf("write OCI image index: %w", err)
	}
	return nil
}

// writeFileAtomic writes b to path through a temporary file in the same
// directory, renamed into place; the file is mode 0644.
func writeFileAtomic(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), tempPrefix+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, 0o644)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return nil
}
