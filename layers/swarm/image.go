package swarm

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/drove-project/drove/layers/store"
	"github.com/drove-project/drove/protocol"
)

// ImageBlobs returns the piece manifests of every blob of the image whose
// manifest (in the store) has digest imageDigest: the manifest blob first,
// then the config, then the layers in manifest order, each once, with the
// media types their descriptors give. An image index is refused: pick one
// platform's image first. pieceSize 0 sizes each blob's pieces with
// PieceSizeFor.
func ImageBlobs(ctx context.Context, s *store.Store, imageDigest v1.Hash, pieceSize int64) ([]protocol.BlobPieces, error) {
	m, mt, err := readManifest(s, imageDigest)
	if err != nil {
		return nil, err
	}
	descs := make([]v1.Descriptor, 0, 2+len(m.Layers))
	descs = append(descs, v1.Descriptor{Digest: imageDigest, MediaType: mt})
	descs = append(descs, m.Config)
	descs = append(descs, m.Layers...)
	seen := make(map[v1.Hash]bool, len(descs))
	out := make([]protocol.BlobPieces, 0, len(descs))
	for _, d := range descs {
		if seen[d.Digest] {
			continue
		}
		seen[d.Digest] = true
		bp, err := PiecesFromStore(ctx, s, d.Digest, string(d.MediaType), pieceSize)
		if err != nil {
			return nil, fmt.Errorf("pieces of image %s: %w", imageDigest, err)
		}
		out = append(out, bp)
	}
	return out, nil
}

// readManifest reads and decodes an image manifest from the store, with
// the media type it declares (OCI when it declares none). An index, or
// anything else that is not an image manifest, fails with ErrBadManifest.
func readManifest(s *store.Store, h v1.Hash) (*v1.Manifest, types.MediaType, error) {
	raw, err := s.ReadBlob(h)
	if err != nil {
		return nil, "", fmt.Errorf("read manifest %s: %w", h, err)
	}
	var probe struct {
		MediaType types.MediaType `json:"mediaType"`
		Manifests json.RawMessage `json:"manifests"`
	}
	if err := json.Unmarshal(raw, &probe); err != nil {
		return nil, "", fmt.Errorf("decode manifest %s: %v: %w", h, err, ErrBadManifest)
	}
	if probe.MediaType.IsIndex() || (probe.MediaType == "" && probe.Manifests != nil) {
		return nil, "", fmt.Errorf("image %s is a multi-platform index: pick one: %w", h, ErrBadManifest)
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, "", fmt.Errorf("decode manifest %s: %v: %w", h, err, ErrBadManifest)
	}
	mt := m.MediaType
	if mt == "" {
		mt = types.OCIManifestSchema1
	}
	if !mt.IsImage() {
		return nil, "", fmt.Errorf("manifest %s has media type %q, not an image manifest: %w", h, mt, ErrBadManifest)
	}
	if m.Config.Digest.Algorithm != "sha256" {
		return nil, "", fmt.Errorf("manifest %s: config digest %q is not sha256: %w", h, m.Config.Digest, ErrBadManifest)
	}
	return m, mt, nil
}
