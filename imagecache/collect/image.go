package collect

import (
	"bytes"
	"context"
	"fmt"
	"io"

	"github.com/drove-project/drove/imagecache/ocilayout"
	"github.com/drove-project/drove/layers/reference"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// maxConfigSize bounds an image config read into memory to check its
// platform.
const maxConfigSize = 64 << 20

// imageJob collects one image reference.
type imageJob struct {
	c     *collector
	hp    *hostPuller
	ref   name.Reference
	shown string // normalised reference
	prog  *imageProgress
}

// step is one blob to put in the layout; data is set when its bytes are
// already in memory (manifests, a checked config).
type step struct {
	desc v1.Descriptor
	data []byte
}

// collectImage pulls ref for the target platforms into the layout and
// returns its index.json entry and the platforms written.
func (c *collector) collectImage(ctx context.Context, ref name.Reference) (v1.Descriptor, []v1.Platform, error) {
	shown := reference.String(ref)
	j := &imageJob{c: c, ref: ref, shown: shown, prog: &imageProgress{r: c.rep, ref: shown}}
	c.rep.emit(Event{Ref: shown, Phase: Started})
	desc, plats, err := j.run(ctx)
	if err != nil {
		c.log.Debug("container image not collected", "image", shown, "err", err)
		c.rep.emit(Event{Ref: shown, Phase: Failed, Done: j.prog.done, Total: j.prog.total, Err: err})
		return v1.Descriptor{}, nil, err
	}
	c.log.Info("container image collected", "image", shown, "digest", desc.Digest.String(),
		"platforms", platformList(plats))
	c.rep.emit(Event{Ref: shown, Phase: Done, Done: j.prog.total, Total: j.prog.total})
	return desc, plats, nil
}

func (j *imageJob) run(ctx context.Context) (v1.Descriptor, []v1.Platform, error) {
	hp, err := j.c.regs.puller(j.ref.Context().Registry)
	if err != nil {
		return v1.Descriptor{}, nil, err
	}
	j.hp = hp
	top, err := hp.puller.Get(ctx, j.ref)
	if err != nil {
		what := "manifest " + j.ref.Identifier()
		if _, ok := j.ref.(name.Tag); ok {
			what = "manifest of tag " + j.ref.Identifier()
		}
		return v1.Descriptor{}, nil, fmt.Errorf("fetch %s: %w", what, hp.classify(err))
	}
	desc := v1.Descriptor{MediaType: top.MediaType, Digest: top.Digest, Size: int64(len(top.Manifest))}
	if !digestMatches(top.Manifest, desc.Digest) {
		return v1.Descriptor{}, nil, fmt.Errorf("manifest %s: %w", desc.Digest, ErrDigestMismatch)
	}
	var steps []step
	var plats []v1.Platform
	switch {
	case desc.MediaType.IsIndex():
		steps, plats, err = j.planIndex(ctx, desc, top.Manifest)
	case desc.MediaType.IsImage():
		steps, plats, err = j.planImage(ctx, desc, top.Manifest)
	default:
		err = fmt.Errorf("%w: the registry serves media type %q (docker schema1 and other kinds cannot be cached; rebuild or re-push the image)", ErrUnsupported, desc.MediaType)
	}
	if err != nil {
		return v1.Descriptor{}, nil, err
	}
	if err := j.write(ctx, steps); err != nil {
		return v1.Descriptor{}, nil, err
	}
	desc.Annotations = map[string]string{
		ocilayout.ImageNameAnnotation: j.shown,
		ocilayout.RefNameAnnotation:   j.ref.Identifier(),
	}
	return desc, plats, nil
}

// planIndex picks the target platforms' manifests of an index and lists
// their blobs, then the manifests, then the index itself.
func (j *imageJob) planIndex(ctx context.Context, desc v1.Descriptor, raw []byte) ([]step, []v1.Platform, error) {
	im, err := v1.ParseIndexManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, nil, fmt.Errorf("parse index %s: %w", desc.Digest, err)
	}
	chosen, missing := j.c.targets.pickChildren(im.Manifests)
	if len(missing) > 0 {
		return nil, nil, fmt.Errorf("%w: the index has no %s image (it offers %s)", ErrPlatformNotFound, platformList(missing), offered(im.Manifests))
	}
	var steps []step
	var plats []v1.Platform
	for _, child := range chosen {
		b, err := j.manifestBytes(ctx, child)
		if err != nil {
			return nil, nil, err
		}
		m, err := v1.ParseManifest(bytes.NewReader(b))
		if err != nil {
			return nil, nil, fmt.Errorf("parse manifest %s (%s): %w", child.Digest, platformList([]v1.Platform{*child.Platform}), err)
		}
		steps = append(steps, step{desc: m.Config})
		steps = append(steps, j.layerSteps(m)...)
		steps = append(steps, step{desc: plain(child), data: b})
		plats = append(plats, *child.Platform)
	}
	steps = append(steps, step{desc: desc, data: raw})
	return steps, plats, nil
}

// planImage checks that a single-platform image's config is for a target
// platform and lists its config, layers and manifest.
func (j *imageJob) planImage(ctx context.Context, desc v1.Descriptor, raw []byte) ([]step, []v1.Platform, error) {
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, nil, fmt.Errorf("parse manifest %s: %w", desc.Digest, err)
	}
	cfgRaw, err := j.configBytes(ctx, m.Config)
	if err != nil {
		return nil, nil, err
	}
	cf, err := v1.ParseConfigFile(bytes.NewReader(cfgRaw))
	if err != nil {
		return nil, nil, fmt.Errorf("parse image config %s: %w", m.Config.Digest, err)
	}
	p := configPlatform(cf)
	if !j.c.targets.matches(p) {
		return nil, nil, fmt.Errorf("%w: the image is for %s only, not for %s", ErrPlatformNotFound, platformList([]v1.Platform{p}), j.c.targets)
	}
	steps := []step{{desc: m.Config, data: cfgRaw}}
	steps = append(steps, j.layerSteps(m)...)
	steps = append(steps, step{desc: desc, data: raw})
	return steps, []v1.Platform{p}, nil
}

// layerSteps lists a manifest's distributable layers; non-distributable
// (foreign) layers are fetched by the runtime from their URLs, not stored.
func (j *imageJob) layerSteps(m *v1.Manifest) []step {
	var steps []step
	for _, l := range m.Layers {
		if !l.MediaType.IsDistributable() {
			j.c.log.Debug("skipping non-distributable layer", "image", j.shown, "digest", l.Digest.String())
			continue
		}
		steps = append(steps, step{desc: plain(l)})
	}
	return steps
}

// write puts every step's blob in the layout, each digest once.
func (j *imageJob) write(ctx context.Context, steps []step) error {
	seen := make(map[v1.Hash]bool, len(steps))
	uniq := steps[:0:0]
	for _, s := range steps {
		if !seen[s.desc.Digest] {
			seen[s.desc.Digest] = true
			uniq = append(uniq, s)
			j.prog.total += s.desc.Size
		}
	}
	j.prog.add(0, true)
	for _, s := range uniq {
		open := j.remoteBlob(s.desc.Digest)
		if s.data != nil {
			data := s.data
			open = func(context.Context) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }
		}
		wrote, err := j.c.blobs.ensure(ctx, s.desc, open, func(n int64) { j.prog.add(n, false) })
		if err != nil {
			return err
		}
		if wrote {
			j.prog.add(0, true)
		} else {
			j.c.log.Debug("blob already in place", "image", j.shown, "digest", s.desc.Digest.String())
			j.prog.add(s.desc.Size, true)
		}
	}
	return nil
}

// remoteBlob opens blob d of the image's repository.
func (j *imageJob) remoteBlob(d v1.Hash) opener {
	return func(ctx context.Context) (io.ReadCloser, error) {
		l, err := j.hp.puller.Layer(ctx, j.ref.Context().Digest(d.String()))
		if err != nil {
			return nil, fmt.Errorf("fetch blob %s: %w", d, j.hp.classify(err))
		}
		rc, err := l.Compressed()
		if err != nil {
			return nil, fmt.Errorf("fetch blob %s: %w", d, j.hp.classify(err))
		}
		return rc, nil
	}
}

// manifestBytes returns the bytes of the manifest d, from the layout when
// it is there, else from the registry, checked against d.
func (j *imageJob) manifestBytes(ctx context.Context, d v1.Descriptor) ([]byte, error) {
	if b, ok := j.c.blobs.readLocal(d); ok {
		return b, nil
	}
	got, err := j.hp.puller.Get(ctx, j.ref.Context().Digest(d.Digest.String()))
	if err != nil {
		return nil, fmt.Errorf("fetch manifest %s: %w", d.Digest, j.hp.classify(err))
	}
	if int64(len(got.Manifest)) != d.Size || !digestMatches(got.Manifest, d.Digest) {
		return nil, fmt.Errorf("fetch manifest %s: %w: got %d bytes, the index gives %d", d.Digest, ErrDigestMismatch, len(got.Manifest), d.Size)
	}
	return got.Manifest, nil
}

// configBytes returns the bytes of the config d, from the layout when it
// is there, else from the registry, verified.
func (j *imageJob) configBytes(ctx context.Context, d v1.Descriptor) ([]byte, error) {
	if b, ok := j.c.blobs.readLocal(d); ok {
		return b, nil
	}
	if d.Size < 0 || d.Size > maxConfigSize {
		return nil, fmt.Errorf("image config %s: size %d is beyond the %d bytes accepted", d.Digest, d.Size, maxConfigSize)
	}
	rc, err := j.remoteBlob(d.Digest)(ctx)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var buf bytes.Buffer
	if err := copyVerified(ctx, &buf, rc, d, nil); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// plain is d without platform, annotations and other extras: only what
// names a blob.
func plain(d v1.Descriptor) v1.Descriptor {
	return v1.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size}
}
