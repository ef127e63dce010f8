package store

import (
	"bytes"
	"fmt"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Summary is what `drove images` and `drove inspect` show of one image.
type Summary struct {
	Digest    v1.Hash
	MediaType string
	Platforms []string  // os/arch[/variant] of each image
	Size      int64     // bytes of all blobs the image reaches, each once
	Created   time.Time // newest creation time among its configs
	Manifests []ManifestSummary
}

// ManifestSummary is one platform's image inside a Summary.
type ManifestSummary struct {
	Digest   v1.Hash
	Platform string
	Manifest *v1.Manifest
	Config   *v1.ConfigFile
}

// Summarize reads an image or index and everything it reaches.
func (s *Store) Summarize(desc v1.Descriptor) (Summary, error) {
	sum := Summary{Digest: desc.Digest, MediaType: string(desc.MediaType)}
	seen := map[v1.Hash]bool{}
	err := s.walk(desc, func(d v1.Descriptor) error {
		if !seen[d.Digest] {
			seen[d.Digest] = true
			sum.Size += d.Size
		}
		if !d.MediaType.IsImage() {
			return nil
		}
		raw, err := s.ReadBlob(d.Digest)
		if err != nil {
			return err
		}
		m, err := v1.ParseManifest(bytes.NewReader(raw))
		if err != nil {
			return fmt.Errorf("decode manifest %s: %w", d.Digest, err)
		}
		cfgRaw, err := s.ReadBlob(m.Config.Digest)
		if err != nil {
			return err
		}
		cfg, err := v1.ParseConfigFile(bytes.NewReader(cfgRaw))
		if err != nil {
			return fmt.Errorf("decode config %s: %w", m.Config.Digest, err)
		}
		p := cfg.Platform()
		ps := ""
		if p != nil {
			ps = p.String()
		}
		sum.Platforms = append(sum.Platforms, ps)
		if cfg.Created.After(sum.Created) {
			sum.Created = cfg.Created.Time
		}
		sum.Manifests = append(sum.Manifests, ManifestSummary{Digest: d.Digest, Platform: ps, Manifest: m, Config: cfg})
		return nil
	})
	return sum, err
}
