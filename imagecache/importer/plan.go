package importer

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/platforms"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// maxNesting bounds how deep indexes may nest (index → index → manifest).
const maxNesting = 4

// blob is one piece of content to put into containerd.
type blob struct {
	// Desc is the blob's descriptor: media type, digest and size.
	Desc ocispec.Descriptor
	// Labels are the garbage-collection references to the blob's
	// children that containerd's pull and import set.
	Labels map[string]string
	// Data is the verified content of a manifest, index or config; nil
	// for layers, which are streamed from the layout.
	Data []byte
}

// plan is what one image needs in containerd, children before parents.
type plan struct {
	Blobs []blob
	// Platform is the chosen manifest's platform (from its config).
	Platform ocispec.Platform
}

// planner walks one image of a layout for one platform.
type planner struct {
	dir   string
	match platforms.MatchComparer
	seen  map[digest.Digest]bool
	out   []blob
}

// planImage lists the blobs the image top needs for match: the index
// chain down to the one best-matching manifest (chosen as containerd
// chooses it, so unpack and the CRI find the same one), its config and
// its layers. Manifests and indexes are verified against their digests
// here, since they are parsed before containerd sees them; children of an
// index for other platforms need not be in the layout.
func planImage(dir string, top ocispec.Descriptor, match platforms.MatchComparer) (plan, error) {
	p := &planner{dir: dir, match: match, seen: map[digest.Digest]bool{}}
	platform, err := p.walk(top, 0, true)
	if err != nil {
		return plan{}, err
	}
	return plan{Blobs: p.out, Platform: platform}, nil
}

// walk appends d's blobs (children first) and returns the platform of the
// manifest it ends at.
func (p *planner) walk(d ocispec.Descriptor, depth int, top bool) (ocispec.Platform, error) {
	if depth > maxNesting {
		return ocispec.Platform{}, fmt.Errorf("%w: indexes nested deeper than %d at %s", ErrInvalidLayout, maxNesting, d.Digest)
	}
	data, err := readJSONBlob(p.dir, d)
	if err != nil {
		return ocispec.Platform{}, fmt.Errorf("%s %s: %w", kind(d.MediaType), d.Digest, err)
	}
	switch {
	case images.IsManifestType(d.MediaType):
		return p.manifest(d, data, top)
	case images.IsIndexType(d.MediaType):
		return p.index(d, data, depth)
	default:
		return ocispec.Platform{}, fmt.Errorf("%w: %s has media type %q, not a manifest or index", ErrInvalidLayout, d.Digest, d.MediaType)
	}
}

// manifest appends the config, layers and the manifest itself.
func (p *planner) manifest(d ocispec.Descriptor, data []byte, top bool) (ocispec.Platform, error) {
	m, err := decodeManifest(data)
	if err != nil {
		return ocispec.Platform{}, fmt.Errorf("manifest %s: %w", d.Digest, err)
	}
	cfgData, err := readJSONBlob(p.dir, m.Config)
	if err != nil {
		return ocispec.Platform{}, fmt.Errorf("config %s of manifest %s: %w", m.Config.Digest, d.Digest, err)
	}
	platform, err := decodeConfigPlatform(cfgData)
	if err != nil {
		return ocispec.Platform{}, fmt.Errorf("config %s of manifest %s: %w", m.Config.Digest, d.Digest, err)
	}
	// containerd checks the config's platform of a manifest an index
	// lists without one; a top-level manifest is taken as it is.
	if !top && d.Platform == nil && !p.match.Match(platform) {
		return ocispec.Platform{}, fmt.Errorf("%w: manifest %s is for %s", ErrNoPlatform, d.Digest, platforms.Format(platform))
	}
	children := make([]ocispec.Descriptor, 0, 1+len(m.Layers))
	children = append(children, plain(m.Config))
	p.add(blob{Desc: plain(m.Config), Data: cfgData})
	for _, l := range m.Layers {
		children = append(children, plain(l))
		p.add(blob{Desc: plain(l)})
	}
	p.add(blob{Desc: plain(d), Labels: gcLabels(children), Data: data})
	return platform, nil
}

// index appends the best-matching child's blobs and the index itself.
func (p *planner) index(d ocispec.Descriptor, data []byte, depth int) (ocispec.Platform, error) {
	idx, err := decodeIndexBlob(data)
	if err != nil {
		return ocispec.Platform{}, fmt.Errorf("index %s: %w", d.Digest, err)
	}
	var candidates []ocispec.Descriptor
	for _, c := range idx.Manifests {
		if c.Platform == nil || p.match.Match(*c.Platform) {
			candidates = append(candidates, c)
		}
	}
	// The order containerd's images.Manifest and pull use: best platform
	// first, children without a platform last, file order for ties.
	sort.SliceStable(candidates, func(i, j int) bool {
		if candidates[i].Platform == nil {
			return false
		}
		if candidates[j].Platform == nil {
			return true
		}
		return p.match.Less(*candidates[i].Platform, *candidates[j].Platform)
	})
	if len(candidates) == 0 {
		return ocispec.Platform{}, fmt.Errorf("%w: index %s lists only %s", ErrNoPlatform, d.Digest, listPlatforms(idx.Manifests))
	}
	child := candidates[0]
	platform, err := p.walk(child, depth+1, false)
	if errors.Is(err, errBlobMissing) {
		return ocispec.Platform{}, fmt.Errorf("%w: the layout lacks %s %s, the best match in index %s: %w", ErrInvalidLayout, kind(child.MediaType), child.Digest, d.Digest, err)
	}
	if err != nil {
		return ocispec.Platform{}, err
	}
	p.add(blob{Desc: plain(d), Labels: gcLabels([]ocispec.Descriptor{plain(child)}), Data: data})
	return platform, nil
}

// add appends b unless a blob with its digest is already planned.
func (p *planner) add(b blob) {
	if p.seen[b.Desc.Digest] {
		return
	}
	p.seen[b.Desc.Digest] = true
	p.out = append(p.out, b)
}

// plain is d with only media type, digest and size: what containerd needs
// to store it and what the GC labels depend on.
func plain(d ocispec.Descriptor) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size}
}

// gcLabels returns the labels by which a parent keeps its children from
// containerd's garbage collector, numbered as images.SetChildrenLabels
// numbers them ("containerd.io/gc.ref.content.config",
// "containerd.io/gc.ref.content.l.0", "containerd.io/gc.ref.content.m.0").
func gcLabels(children []ocispec.Descriptor) map[string]string {
	labels := map[string]string{}
	counts := map[string]int{}
	for _, c := range children {
		for _, key := range images.ChildGCLabels(c) {
			n := counts[key]
			counts[key] = n + 1
			if n > 0 || strings.HasSuffix(key, ".") {
				key = fmt.Sprintf("%s%d", key, n)
			}
			labels[key] = c.Digest.String()
		}
	}
	return labels
}

// listPlatforms names the platforms of an index's children, for errors.
func listPlatforms(ds []ocispec.Descriptor) string {
	var names []string
	for _, d := range ds {
		if d.Platform != nil {
			names = append(names, platforms.Format(*d.Platform))
		}
	}
	if len(names) == 0 {
		return "no platforms"
	}
	return strings.Join(names, ", ")
}

// kind names a media type's role for messages.
func kind(mt string) string {
	switch {
	case images.IsIndexType(mt):
		return "index"
	case images.IsManifestType(mt):
		return "manifest"
	case images.IsConfigType(mt):
		return "config"
	case images.IsLayerType(mt):
		return "layer"
	default:
		return "blob"
	}
}

// decodeManifest parses an image manifest and checks its descriptors.
func decodeManifest(b []byte) (ocispec.Manifest, error) {
	var m struct {
		ocispec.Manifest
		Manifests json.RawMessage `json:"manifests,omitempty"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return ocispec.Manifest{}, fmt.Errorf("%w: decode manifest: %w", ErrInvalidLayout, err)
	}
	if len(m.Manifests) > 0 {
		return ocispec.Manifest{}, fmt.Errorf("%w: manifest has a manifests list, it is an index", ErrInvalidLayout)
	}
	if err := checkDescriptor(m.Config); err != nil {
		return ocispec.Manifest{}, fmt.Errorf("config: %w", err)
	}
	if !images.IsConfigType(m.Config.MediaType) {
		return ocispec.Manifest{}, fmt.Errorf("%w: config media type %q is not an image config", ErrInvalidLayout, m.Config.MediaType)
	}
	for i, l := range m.Layers {
		if err := checkDescriptor(l); err != nil {
			return ocispec.Manifest{}, fmt.Errorf("layer %d: %w", i, err)
		}
	}
	return m.Manifest, nil
}

// decodeIndexBlob parses an image index (or Docker manifest list) and
// checks its children's descriptors.
func decodeIndexBlob(b []byte) (ocispec.Index, error) {
	var idx struct {
		ocispec.Index
		Config json.RawMessage `json:"config,omitempty"`
		Layers json.RawMessage `json:"layers,omitempty"`
	}
	if err := json.Unmarshal(b, &idx); err != nil {
		return ocispec.Index{}, fmt.Errorf("%w: decode index: %w", ErrInvalidLayout, err)
	}
	if len(idx.Config) > 0 || len(idx.Layers) > 0 {
		return ocispec.Index{}, fmt.Errorf("%w: index has a config or layers, it is a manifest", ErrInvalidLayout)
	}
	for i, c := range idx.Manifests {
		if err := checkDescriptor(c); err != nil {
			return ocispec.Index{}, fmt.Errorf("child %d: %w", i, err)
		}
	}
	return idx.Index, nil
}

// decodeConfigPlatform reads the platform fields of an image config.
func decodeConfigPlatform(b []byte) (ocispec.Platform, error) {
	var cfg ocispec.Image
	if err := json.Unmarshal(b, &cfg); err != nil {
		return ocispec.Platform{}, fmt.Errorf("%w: decode image config: %w", ErrInvalidLayout, err)
	}
	return platforms.Normalize(cfg.Platform), nil
}
