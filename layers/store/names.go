package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sys/unix"

	"github.com/drove-project/drove/internal/atomicfile"
	"github.com/drove-project/drove/layers/reference"
)

// RefNameAnnotation is the OCI annotation that names an entry of index.json.
// drove stores the full normalised reference there (docker.io/library/x:v1).
const RefNameAnnotation = "org.opencontainers.image.ref.name"

// ImageNameAnnotation is the annotation containerd, BuildKit and Docker
// use for an image's full name in index.json; podman prefers it over
// RefNameAnnotation, which OCI tools often set to a bare tag.
const ImageNameAnnotation = "io.containerd.image.name"

// Entry is one named image in the store.
type Entry struct {
	Name       string        // normalised reference, e.g. docker.io/library/k8s:v1.28
	Descriptor v1.Descriptor // manifest or index the name points at
}

// NormalizeName turns a user's image reference into the store's form
// (reference.Normalize): "kubernetes:v1" becomes
// "docker.io/library/kubernetes:v1".
func NormalizeName(s string) (string, error) { return reference.Normalize(s) }

// FamiliarName shortens a normalised name the way docker prints it
// (reference.FamiliarString): "docker.io/library/x:v1" becomes "x:v1".
func FamiliarName(n string) string { return reference.FamiliarString(n) }

func emptyIndex() *v1.IndexManifest {
	return &v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{}}
}

func (s *Store) readIndex() (*v1.IndexManifest, error) {
	b, err := os.ReadFile(s.indexPath())
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", s.indexPath(), err)
	}
	var im v1.IndexManifest
	if err := json.Unmarshal(b, &im); err != nil {
		return nil, fmt.Errorf("decode %s: %w", s.indexPath(), err)
	}
	return &im, nil
}

func (s *Store) writeIndex(im *v1.IndexManifest) error {
	b, err := json.MarshalIndent(im, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(s.indexPath(), b, 0o644)
}

// List returns every named image, sorted by name.
func (s *Store) List() ([]Entry, error) {
	var out []Entry
	err := s.withLock(unix.LOCK_SH, func() error {
		im, err := s.readIndex()
		if err != nil {
			return err
		}
		for _, d := range im.Manifests {
			if n := d.Annotations[RefNameAnnotation]; n != "" {
				out = append(out, Entry{Name: n, Descriptor: d})
			}
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, err
}

// Tag points name at desc, replacing what the name pointed at before. Every
// blob desc reaches must already be in the store: a name never refers to a
// partial image.
func (s *Store) Tag(ref string, desc v1.Descriptor) error {
	n, err := NormalizeName(ref)
	if err != nil {
		return err
	}
	if strings.Contains(n, "@") {
		return fmt.Errorf("tag %s: a name cannot be a digest reference", ref)
	}
	if err := s.checkComplete(desc); err != nil {
		return fmt.Errorf("tag %s: %w", ref, err)
	}
	d := v1.Descriptor{MediaType: desc.MediaType, Size: desc.Size, Digest: desc.Digest, Platform: desc.Platform,
		Annotations: map[string]string{RefNameAnnotation: n}}
	return s.withLock(unix.LOCK_EX, func() error {
		im, err := s.readIndex()
		if err != nil {
			return err
		}
		kept := im.Manifests[:0]
		for _, m := range im.Manifests {
			if m.Annotations[RefNameAnnotation] != n {
				kept = append(kept, m)
			}
		}
		im.Manifests = append(kept, d)
		return s.writeIndex(im)
	})
}

// Untag removes a name. The blobs stay until Prune.
func (s *Store) Untag(ref string) error {
	n, err := NormalizeName(ref)
	if err != nil {
		return err
	}
	return s.withLock(unix.LOCK_EX, func() error {
		im, err := s.readIndex()
		if err != nil {
			return err
		}
		kept := im.Manifests[:0]
		for _, m := range im.Manifests {
			if m.Annotations[RefNameAnnotation] != n {
				kept = append(kept, m)
			}
		}
		if len(kept) == len(im.Manifests) {
			return fmt.Errorf("image %s: %w", ref, ErrNotFound)
		}
		im.Manifests = kept
		return s.writeIndex(im)
	})
}

// Resolve finds the descriptor for a user's reference: a name (short or
// full), a name@digest, or a digest or unique prefix of one (as printed by
// `drove images`).
func (s *Store) Resolve(ref string) (Entry, error) {
	entries, err := s.List()
	if err != nil {
		return Entry{}, err
	}
	if hex := strings.TrimPrefix(ref, "sha256:"); len(hex) >= 4 && isHexPrefix(hex) {
		var found []Entry
		for _, e := range entries {
			if strings.HasPrefix(e.Descriptor.Digest.Hex, hex) {
				found = append(found, e)
			}
		}
		if len(found) > 0 {
			for _, f := range found[1:] {
				if f.Descriptor.Digest != found[0].Descriptor.Digest {
					return Entry{}, fmt.Errorf("image %s: prefix matches several images", ref)
				}
			}
			return found[0], nil
		}
	}
	n, err := NormalizeName(ref)
	if err != nil {
		return Entry{}, err
	}
	if i := strings.Index(n, "@"); i >= 0 {
		h, err := v1.NewHash(n[i+1:])
		if err != nil {
			return Entry{}, fmt.Errorf("image %s: %w", ref, err)
		}
		for _, e := range entries {
			if e.Descriptor.Digest == h {
				return Entry{Name: n, Descriptor: e.Descriptor}, nil
			}
		}
		return Entry{}, fmt.Errorf("image %s: %w", ref, ErrNotFound)
	}
	for _, e := range entries {
		if e.Name == n {
			return e, nil
		}
	}
	return Entry{}, fmt.Errorf("image %s: %w", ref, ErrNotFound)
}

func isHexPrefix(s string) bool {
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// checkComplete walks desc and fails unless every blob it reaches exists.
func (s *Store) checkComplete(desc v1.Descriptor) error {
	return s.walk(desc, func(d v1.Descriptor) error {
		if !s.HasBlob(d.Digest) {
			return fmt.Errorf("blob %s (%s): %w", d.Digest, d.MediaType, ErrNotFound)
		}
		return nil
	})
}

// walk calls fn for desc and every descriptor it references, depth first.
func (s *Store) walk(desc v1.Descriptor, fn func(v1.Descriptor) error) error {
	if err := fn(desc); err != nil {
		return err
	}
	switch {
	case desc.MediaType.IsIndex():
		b, err := s.ReadBlob(desc.Digest)
		if err != nil {
			return err
		}
		im, err := v1.ParseIndexManifest(bytes.NewReader(b))
		if err != nil {
			return fmt.Errorf("decode index %s: %w", desc.Digest, err)
		}
		for _, m := range im.Manifests {
			if err := s.walk(m, fn); err != nil {
				return err
			}
		}
	case desc.MediaType.IsImage():
		b, err := s.ReadBlob(desc.Digest)
		if err != nil {
			return err
		}
		m, err := v1.ParseManifest(bytes.NewReader(b))
		if err != nil {
			return fmt.Errorf("decode manifest %s: %w", desc.Digest, err)
		}
		if err := fn(m.Config); err != nil {
			return err
		}
		for _, l := range m.Layers {
			if err := fn(l); err != nil {
				return err
			}
		}
	}
	return nil
}

// IsNotFound reports whether err means a missing name or blob.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }
