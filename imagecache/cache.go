package imagecache

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/drove-project/drove/imagecache/collect"
	"github.com/drove-project/drove/imagecache/discover"
	"github.com/drove-project/drove/imagecache/ocilayout"
	"github.com/drove-project/drove/internal/progress"
	"github.com/drove-project/drove/layers/extension"
	"github.com/drove-project/drove/layers/layer"
	"github.com/drove-project/drove/layers/registry"
	"github.com/drove-project/drove/layers/store"
)

// Build modes: sealer's --build-mode.
const (
	ModeAll  = "all"  // cache every discovered container image (default)
	ModeLite = "lite" // cache none
)

// Options configure Add.
type Options struct {
	Mode     string           // ModeAll (default) or ModeLite
	Discover discover.Options // --image-list, --image-list-with-auth, --ignored-image-list
	// Pulled are images the build's RUN steps pulled through the build
	// mirror (BuildMirror.Images): cached though nothing names them.
	Pulled        []string
	Registry      registry.Options
	IgnoreMissing bool   // an image that cannot be pulled is a warning, not an error
	WorkDir       string // scratch space and the layer cache (the build's work dir)
	// NoCache pulls the images again although an earlier build cached the
	// same list over the same rootfs (drove build --no-cache).
	NoCache  bool
	Progress *progress.Reporter
	Out      io.Writer
	Log      *slog.Logger
}

// Result is what Add did.
type Result struct {
	Descriptor v1.Descriptor // the image with its cache layer(s); the input when nothing was added
	Images     []extension.ContainerImage
	Warnings   []string
}

// Add caches the container images the image at desc needs — found in its
// rootfs (imageList files, manifests, charts, apps), in the options' lists
// and pulled by its RUN steps — into one more layer per platform holding
// an OCI image layout at LayoutDir, and lists them in the manifest's
// sealer.image.container.images annotation. Blobs the image's lower layers
// already carry (a base image's cache) are not stored again. On error the
// store gains only unreferenced blobs and no name changes.
func Add(ctx context.Context, s *store.Store, desc v1.Descriptor, o Options) (Result, error) {
	if o.Mode == "" {
		o.Mode = ModeAll
	}
	if o.Mode != ModeAll && o.Mode != ModeLite {
		return Result{}, fmt.Errorf("build mode %q: use %s or %s", o.Mode, ModeAll, ModeLite)
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Progress == nil {
		o.Progress = progress.New(io.Discard, true)
	}
	res := Result{Descriptor: desc}
	if o.Mode == ModeLite {
		return res, nil
	}
	if !desc.MediaType.IsIndex() {
		pd, imgs, warns, err := addPlatform(ctx, s, desc, o)
		if err != nil {
			return Result{}, err
		}
		res.Descriptor, res.Images, res.Warnings = pd, imgs, warns
		return res, nil
	}
	raw, err := s.ReadBlob(desc.Digest)
	if err != nil {
		return Result{}, err
	}
	var idx v1.IndexManifest
	if err := json.Unmarshal(raw, &idx); err != nil {
		return Result{}, fmt.Errorf("read index %s: %w", desc.Digest, err)
	}
	changed := false
	for i, m := range idx.Manifests {
		pd, imgs, warns, err := addPlatform(ctx, s, m, o)
		if err != nil {
			return Result{}, err
		}
		pd.Platform, pd.Annotations = m.Platform, m.Annotations
		changed = changed || pd.Digest != m.Digest
		idx.Manifests[i] = pd
		res.Images = append(res.Images, imgs...)
		res.Warnings = append(res.Warnings, warns...)
	}
	if !changed {
		return res, nil
	}
	raw, err = json.Marshal(idx)
	if err != nil {
		return Result{}, err
	}
	h, err := s.PutBytes(ctx, raw)
	if err != nil {
		return Result{}, err
	}
	res.Descriptor = v1.Descriptor{MediaType: desc.MediaType, Size: int64(len(raw)), Digest: h}
	return res, nil
}

// addPlatform adds the cache layer to one platform's image.
func addPlatform(ctx context.Context, s *store.Store, desc v1.Descriptor, o Options) (v1.Descriptor, []extension.ContainerImage, []string, error) {
	rawM, err := s.ReadBlob(desc.Digest)
	if err != nil {
		return v1.Descriptor{}, nil, nil, err
	}
	var m v1.Manifest
	if err := json.Unmarshal(rawM, &m); err != nil {
		return v1.Descriptor{}, nil, nil, fmt.Errorf("read manifest %s: %w", desc.Digest, err)
	}
	rawC, err := s.ReadBlob(m.Config.Digest)
	if err != nil {
		return v1.Descriptor{}, nil, nil, err
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(rawC))
	if err != nil {
		return v1.Descriptor{}, nil, nil, fmt.Errorf("read config %s: %w", m.Config.Digest, err)
	}
	plat := cfg.Platform()
	if plat == nil {
		plat = &v1.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant}
	}
	tmp, err := os.MkdirTemp(o.WorkDir, "imagecache-")
	if err != nil {
		return v1.Descriptor{}, nil, nil, err
	}
	defer os.RemoveAll(tmp)
	rf, err := unpackSparse(ctx, s, m.Layers, filepath.Join(tmp, "rootfs"))
	if err != nil {
		return v1.Descriptor{}, nil, nil, err
	}
	found, err := discover.Discover(ctx, rf.dir, o.Discover)
	if err != nil {
		return v1.Descriptor{}, nil, nil, err
	}
	warnings := slices.Clone(found.Warnings)
	base := inherited(rf.dir, plat)
	// What a lower layer caches already is not pulled again: the image
	// the base was built with stays the one it runs.
	reqs := slices.DeleteFunc(requests(found.Images, o.Pulled), func(r collect.Request) bool {
		return slices.ContainsFunc(base, func(b extension.ContainerImage) bool { return b.Image == r.Ref })
	})
	if len(reqs) == 0 {
		return annotated(ctx, s, desc, m, base, warnings)
	}
	key := layerKey(cfg, plat, reqs)
	if cl, ok := o.lookup(s, key); ok {
		fmt.Fprintf(o.Out, "[%s] %d container images: CACHED\n", plat, len(cl.Images))
		if err := appendLayer(ctx, s, &m, cfg, cl); err != nil {
			return v1.Descriptor{}, nil, nil, err
		}
		return annotated(ctx, s, desc, m, cl.Images, warnings)
	}
	layout := filepath.Join(tmp, "layer", LayoutDir)
	if err := seedLayout(rf.dir, layout); err != nil {
		return v1.Descriptor{}, nil, nil, err
	}
	fmt.Fprintf(o.Out, "[%s] caching %d container images\n", plat, len(reqs))
	got, err := collect.Collect(ctx, layout, reqs, collect.Options{
		Platforms: []v1.Platform{*plat},
		Registry:  o.Registry,
		Auth:      authOf(found.Auth),
		Have:      func(h v1.Hash) bool { return rf.blobs[h] },
		Progress:  trackProgress(o.Progress, plat.String()),
		Log:       o.Log,
	})
	var missing *collect.MissingError
	switch {
	case errors.As(err, &missing) && o.IgnoreMissing:
		for _, f := range missing.Failures {
			warnings = append(warnings, fmt.Sprintf("container image %s not cached: %v", f.Ref, f.Err))
			fmt.Fprintf(o.Out, "WARNING: container image %s not cached: %v\n", f.Ref, f.Err)
		}
	case errors.As(err, &missing):
		return v1.Descriptor{}, nil, nil, fmt.Errorf("%w\n(--ignore-missing builds without them; --build-mode lite caches no images)", err)
	case err != nil:
		return v1.Descriptor{}, nil, nil, fmt.Errorf("cache container images: %w", err)
	}
	if len(got) == 0 {
		return annotated(ctx, s, desc, m, base, warnings)
	}
	cl, err := writeLayer(ctx, s, filepath.Join(tmp, "layer"))
	if err != nil {
		return v1.Descriptor{}, nil, nil, err
	}
	cl.Images = containerImages(got, reqs, base, plat)
	if len(got) == len(reqs) { // a layer missing images is not reused
		o.remember(key, cl)
	}
	if err := appendLayer(ctx, s, &m, cfg, cl); err != nil {
		return v1.Descriptor{}, nil, nil, err
	}
	return annotated(ctx, s, desc, m, cl.Images, warnings)
}

// annotated stores m with list as its sealer.image.container.images
// annotation — also when only a base image's cache is inherited, so the
// image says it carries images — and returns its descriptor (desc itself
// when m is unchanged).
func annotated(ctx context.Context, s *store.Store, desc v1.Descriptor, m v1.Manifest, list []extension.ContainerImage, warnings []string) (v1.Descriptor, []extension.ContainerImage, []string, error) {
	if len(list) == 0 {
		return desc, nil, warnings, nil
	}
	ann, err := extension.ContainerImagesAnnotation(list)
	if err != nil {
		return v1.Descriptor{}, nil, nil, err
	}
	if m.Annotations[extension.AnnotationContainerImages] == ann {
		return desc, list, warnings, nil
	}
	if m.Annotations == nil {
		m.Annotations = map[string]string{}
	}
	m.Annotations[extension.AnnotationContainerImages] = ann
	raw, err := json.Marshal(m)
	if err != nil {
		return v1.Descriptor{}, nil, nil, err
	}
	h, err := s.PutBytes(ctx, raw)
	if err != nil {
		return v1.Descriptor{}, nil, nil, err
	}
	return v1.Descriptor{MediaType: desc.MediaType, Size: int64(len(raw)), Digest: h}, list, warnings, nil
}

// requests merges the discovered images with the ones RUN steps pulled.
func requests(found []discover.Image, pulled []string) []collect.Request {
	seen := map[string]bool{}
	var out []collect.Request
	for _, im := range found {
		out = append(out, collect.Request{Ref: im.Ref, AppName: im.AppName})
		seen[im.Ref] = true
	}
	for _, r := range pulled {
		if !seen[r] {
			seen[r] = true
			out = append(out, collect.Request{Ref: r})
		}
	}
	return out
}

// authOf turns --image-list-with-auth sections into per-registry logins.
func authOf(secs []discover.AuthSection) map[string]authn.Authenticator {
	if len(secs) == 0 {
		return nil
	}
	out := map[string]authn.Authenticator{}
	for _, s := range secs {
		if s.Username != "" || s.Password != "" {
			out[s.Registry] = &authn.Basic{Username: s.Username, Password: s.Password}
		}
	}
	return out
}

// seedLayout starts the new layer's layout with the index of the images
// the lower layers carry, so the top layer's index.json lists them all.
func seedLayout(rootfs, layout string) error {
	if err := os.MkdirAll(layout, 0o755); err != nil {
		return err
	}
	raw, err := os.ReadFile(filepath.Join(rootfs, LayoutDir, "index.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(layout, "index.json"), raw, 0o644)
}

// inherited lists the images a base image's layout already holds.
func inherited(rootfs string, plat *v1.Platform) []extension.ContainerImage {
	names, err := ocilayout.ImageNames(filepath.Join(rootfs, LayoutDir))
	if err != nil {
		return nil
	}
	var out []extension.ContainerImage
	for _, n := range names {
		out = append(out, extension.ContainerImage{Image: n, Platform: platformOf(plat)})
	}
	return out
}

func platformOf(p *v1.Platform) *extension.Platform {
	return &extension.Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant}
}

// containerImages is the annotation list: what was inherited, then what
// was cached now, one entry per (image, app).
func containerImages(got []collect.Collected, reqs []collect.Request, base []extension.ContainerImage, plat *v1.Platform) []extension.ContainerImage {
	out := slices.Clone(base)
	seen := map[string]bool{}
	for _, b := range base {
		seen[b.Image+"\x00"+b.AppName] = true
	}
	apps := map[string][]string{}
	for _, r := range reqs {
		apps[r.Ref] = append(apps[r.Ref], r.AppName)
	}
	for _, g := range got {
		for _, app := range apps[g.Ref] {
			if k := g.Ref + "\x00" + app; !seen[k] {
				seen[k] = true
				out = append(out, extension.ContainerImage{Image: g.Ref, AppName: app, Platform: platformOf(plat)})
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Image < out[j].Image })
	return out
}

// appendLayer stores dir (holding LayoutDir) as an uncompressed layer —
// image blobs are compressed already — and appends it to m and cfg.
func writeLayer(ctx context.Context, s *store.Store, dir string) (cachedLayer, error) {
	var entries []layer.Entry
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		entries = append(entries, layer.Entry{Src: p, Dest: filepath.ToSlash(rel)})
		return err
	})
	if err != nil {
		return cachedLayer{}, err
	}
	w, err := s.NewBlobWriter()
	if err != nil {
		return cachedLayer{}, err
	}
	defer w.Cancel()
	lr, err := layer.WriteLayer(ctx, w, entries, layer.Options{Compression: layer.None})
	if err != nil {
		return cachedLayer{}, fmt.Errorf("write container image layer: %w", err)
	}
	if _, err := w.Commit(lr.Digest); err != nil {
		return cachedLayer{}, err
	}
	return cachedLayer{Layer: v1.Descriptor{MediaType: lr.MediaType, Size: lr.Size, Digest: lr.Digest}, DiffID: lr.DiffID}, nil
}

// appendLayer appends the cache layer to m and cfg (a new config).
func appendLayer(ctx context.Context, s *store.Store, m *v1.Manifest, cfg *v1.ConfigFile, cl cachedLayer) error {
	cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, cl.DiffID)
	cfg.History = append(cfg.History, v1.History{Created: cfg.Created, CreatedBy: fmt.Sprintf("drove: cache %d container images", len(cl.Images)), Comment: "drove"})
	rawC, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	ch, err := s.PutBytes(ctx, rawC)
	if err != nil {
		return err
	}
	m.Config.Size, m.Config.Digest = int64(len(rawC)), ch
	m.Layers = append(m.Layers, cl.Layer)
	return nil
}

// trackProgress shows each image's bytes as it is pulled: a bar on a
// terminal, a line when done otherwise.
func trackProgress(rep *progress.Reporter, plat string) func(collect.Event) {
	var mu sync.Mutex
	trackers := map[string]progress.Tracker{}
	return func(ev collect.Event) {
		mu.Lock()
		tr, ok := trackers[ev.Ref]
		if !ok {
			tr = rep.Track("[" + plat + "] " + ev.Ref)
			trackers[ev.Ref] = tr
		}
		mu.Unlock()
		switch ev.Phase {
		case collect.Started, collect.Bytes:
			tr.Set(ev.Done, ev.Total)
		case collect.Done:
			tr.Set(ev.Done, ev.Total)
			tr.Done(nil)
		case collect.Failed:
			tr.Done(ev.Err)
		}
	}
}
