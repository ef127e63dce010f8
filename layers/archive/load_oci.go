package archive

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/drove-project/drove/layers/store"
)

// finishOCI checks, once every blob is in, that each image index.json lists
// is complete, and names the images.
func (l *loader) finishOCI(sc *scan) ([]store.Entry, error) {
	if sc.layout != nil {
		var layout struct {
			Version string `json:"imageLayoutVersion"`
		}
		if err := json.Unmarshal(sc.layout, &layout); err != nil {
			return nil, fmt.Errorf("%w: decode oci-layout: %w", ErrCorrupt, err)
		}
		if !strings.HasPrefix(layout.Version, "1.") {
			return nil, fmt.Errorf("%w: OCI image layout version %q", ErrUnsupported, layout.Version)
		}
	}
	im, err := v1.ParseIndexManifest(bytes.NewReader(sc.index))
	if err != nil {
		return nil, fmt.Errorf("%w: decode index.json: %w", ErrCorrupt, err)
	}
	if len(im.Manifests) == 0 {
		return nil, fmt.Errorf("%w: index.json lists no images", ErrIncomplete)
	}
	var entries []store.Entry
	for _, d := range im.Manifests {
		label := d.Digest.String()
		if n := d.Annotations[store.RefNameAnnotation]; n != "" {
			label = fmt.Sprintf("%s (%s)", n, d.Digest)
		}
		if d.MediaType == "" {
			if d.MediaType, err = l.sniffMediaType(d); err != nil {
				return nil, fmt.Errorf("index.json entry %s: %w", label, err)
			}
		}
		if !d.MediaType.IsImage() && !d.MediaType.IsIndex() {
			return nil, fmt.Errorf("%w: index.json entry %s has media type %q, not an image or index", ErrUnsupported, label, d.MediaType)
		}
		if err := l.checkComplete(d); err != nil {
			return nil, fmt.Errorf("index.json entry %s: %w", label, err)
		}
		name, err := ociName(d.Annotations, l.opts.BaseName)
		if err != nil {
			return nil, fmt.Errorf("index.json entry %s: %w", label, err)
		}
		entries = append(entries, entryFor(name, d))
	}
	return l.tagAll(entries)
}

// entryFor is what the store lists for d under name (or, unnamed, d as the
// archive has it).
func entryFor(name string, d v1.Descriptor) store.Entry {
	if name == "" {
		return store.Entry{Descriptor: d}
	}
	return store.Entry{Name: name, Descriptor: v1.Descriptor{MediaType: d.MediaType, Size: d.Size, Digest: d.Digest,
		Platform: d.Platform, Annotations: map[string]string{store.RefNameAnnotation: name}}}
}

// checkComplete walks d through the store: every blob it reaches must be
// there (written by this load, which verified it, or present before) and of
// the size its descriptor gives.
func (l *loader) checkComplete(d v1.Descriptor) error {
	err := walk(l.s, d, func(d v1.Descriptor) error {
		if d.Digest.Algorithm != "sha256" {
			return fmt.Errorf("%w: blob %s: drove stores sha256 blobs only", ErrUnsupported, d.Digest)
		}
		if !l.s.HasBlob(d.Digest) {
			return fmt.Errorf("%w: needs blob %s (%s), which is not in the archive", ErrIncomplete, d.Digest, kind(d.MediaType))
		}
		st, err := os.Stat(l.s.BlobPath(d.Digest))
		if err != nil {
			return fmt.Errorf("check blob %s: %w", d.Digest, err)
		}
		if st.Size() != d.Size {
			return fmt.Errorf("%w: blob %s is %d bytes but its descriptor says %d", ErrCorrupt, d.Digest, st.Size(), d.Size)
		}
		return nil
	})
	if err != nil && !isClassified(err) {
		err = fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return err
}

// sniffMediaType reads the media type of a manifest whose descriptor lacks
// one, from the manifest itself.
func (l *loader) sniffMediaType(d v1.Descriptor) (types.MediaType, error) {
	if !l.s.HasBlob(d.Digest) {
		return "", fmt.Errorf("%w: needs blob %s, which is not in the archive", ErrIncomplete, d.Digest)
	}
	b, err := readManifest(l.s, d)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	var probe struct {
		MediaType types.MediaType `json:"mediaType"`
		Manifests json.RawMessage `json:"manifests"`
		Config    json.RawMessage `json:"config"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return "", fmt.Errorf("%w: decode manifest %s: %w", ErrCorrupt, d.Digest, err)
	}
	switch {
	case probe.MediaType != "":
		return probe.MediaType, nil
	case probe.Manifests != nil:
		return types.OCIImageIndex, nil
	case probe.Config != nil:
		return types.OCIManifestSchema1, nil
	}
	return "", fmt.Errorf("%w: blob %s is neither an image manifest nor an index", ErrUnsupported, d.Digest)
}

func kind(mt types.MediaType) string {
	switch {
	case mt.IsIndex():
		return "index"
	case mt.IsImage():
		return "manifest"
	case mt.IsConfig():
		return "config"
	case mt.IsLayer():
		return "layer"
	case mt == "":
		return "no media type"
	}
	return string(mt)
}
