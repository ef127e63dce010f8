package collect

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/drove-project/drove/imagecache/ocilayout"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Names inside an OCI image layout.
const (
	layoutFile   = "oci-layout"
	layoutVer    = "1.0.0"
	blobsSubdir  = "blobs"
	sha256Subdir = "sha256"
)

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
	idx, err := ocilayout.ReadIndex(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return &v1.IndexManifest{SchemaVersion: 2}, nil
	}
	return idx, err
}

// mergeEntries returns old with every entry whose image name is in add
// replaced in place by the new one, and the remaining new entries appended
// in order.
func mergeEntries(old, add []v1.Descriptor) []v1.Descriptor {
	byName := make(map[string]int, len(add))
	for i, d := range add {
		byName[d.Annotations[ocilayout.ImageNameAnnotation]] = i
	}
	used := make([]bool, len(add))
	out := make([]v1.Descriptor, 0, len(old)+len(add))
	for _, d := range old {
		name, ok := d.Annotations[ocilayout.ImageNameAnnotation]
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
	if err := writeFileAtomic(filepath.Join(dir, ocilayout.IndexFile), buf.Bytes()); err != nil {
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
