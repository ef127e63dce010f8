package cli

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	goruntime "runtime"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/drove-project/drove/layers/extension"
	"github.com/drove-project/drove/layers/layer"
	"github.com/drove-project/drove/layers/registry"
	"github.com/drove-project/drove/layers/store"
	"github.com/drove-project/drove/layers/swarm"
	"github.com/drove-project/drove/protocol"
)

// clusterImage is what `drove run` needs to know of a cluster image in the
// local store: its labels, env and sealer metadata, and the few files of
// its root filesystem that shape the plan.
type clusterImage struct {
	Ref    string // as the user named it
	Name   string // the store's full name
	Digest string // the manifest (or index) the nodes fetch: their rootfs directory
	Labels map[string]string
	// Env is the image's ENV as KEY=VALUE entries (the sealer extension's
	// env, else the image config's).
	Env []string
	Ext *extension.ImageExtension // nil for an image without sealer metadata
	// Files are the rootfs files runFiles picks (kubeadm defaults, plugins,
	// Metadata), by slash path relative to the rootfs.
	Files map[string][]byte
	// Has lists the paths of wantedPaths present in the rootfs (bin/kubeadm).
	Has map[string]bool
	// ContainerImages counts the container images the image caches (its
	// sealer.image.container.images annotation).
	ContainerImages int
}

// Rootfs paths that change a plan. The kubeadm defaults are tried in this
// order; the first present wins.
var (
	kubeadmDefaults = []string{
		"etc/kubeadm.yaml.tmpl", "etc/kubeadm.yaml",
		"etc/kubeadm-config.yaml.tmpl", "etc/kubeadm-config.yaml",
		"etc/kubeadm.yml.tmpl", "etc/kubeadm.yml",
	}
	// presenceOnly are files whose content is not needed, only whether the
	// image has them.
	presenceOnly = []string{"bin/kubeadm"}
)

// maxRootfsFile bounds a file runFiles reads into memory.
const maxRootfsFile = 4 << 20

// runFile reports whether the rootfs file at p (slash, relative) is one
// `drove run` reads: a kubeadm default, a plugin document, or Gen-1's
// Metadata.
func runFile(p string) bool {
	if slices.Contains(kubeadmDefaults, p) || p == "Metadata" {
		return true
	}
	if dir, file := path.Split(p); dir == "plugins/" && file != "" {
		ext := path.Ext(file)
		return ext == ".yaml" || ext == ".yml"
	}
	return false
}

// resolveImage finds ref in the local store, pulling it when it is not
// there, and reads what the plan needs from it.
func resolveImage(ctx context.Context, g *Globals, ref string, rf registryFlags) (*clusterImage, error) {
	s, err := g.Store()
	if err != nil {
		return nil, err
	}
	e, err := s.Resolve(ref)
	if store.IsNotFound(err) {
		fmt.Fprintf(g.Err, "image %s is not in the local store: pulling it\n", ref)
		if err := pullQuietly(ctx, g, ref, rf.options()); err != nil {
			return nil, fmt.Errorf("image %s is neither in the local store nor pullable (build it, load it or log in to its registry): %w", ref, err)
		}
		e, err = s.Resolve(ref)
	}
	if err != nil {
		return nil, fmt.Errorf("find image %s: %w", ref, err)
	}
	img, err := readClusterImage(ctx, s, e)
	if err != nil {
		return nil, fmt.Errorf("read image %s: %w", ref, err)
	}
	img.Ref = ref
	return img, nil
}

// pullQuietly is `drove pull` without its digest line on stdout (the run
// command's stdout is its own).
func pullQuietly(ctx context.Context, g *Globals, ref string, opts registry.Options) error {
	quiet := *g
	quiet.Out = io.Discard
	return runPull(ctx, &quiet, ref, opts)
}

// readClusterImage reads the config, metadata and plan files of the image
// e names. For an index, the image for this machine's architecture (or
// else the first) speaks for all: platforms of one cluster image share
// their metadata.
func readClusterImage(ctx context.Context, s *store.Store, e store.Entry) (*clusterImage, error) {
	sum, err := s.Summarize(e.Descriptor)
	if err != nil {
		return nil, err
	}
	if len(sum.Manifests) == 0 {
		return nil, errors.New("the image holds no manifest")
	}
	m := sum.Manifests[0]
	for _, cand := range sum.Manifests {
		if strings.HasSuffix(cand.Platform, "/"+goruntime.GOARCH) || strings.Contains(cand.Platform, "/"+goruntime.GOARCH+"/") {
			m = cand
			break
		}
	}
	img := &clusterImage{Name: e.Name, Digest: e.Descriptor.Digest.String(), Labels: map[string]string{}}
	if m.Config != nil {
		for k, v := range m.Config.Config.Labels {
			img.Labels[k] = v
		}
		img.Env = slices.Clone(m.Config.Config.Env)
	}
	if a := m.Manifest.Annotations[extension.AnnotationContainerImages]; a != "" {
		list, err := extension.ParseContainerImages(a)
		if err != nil {
			return nil, fmt.Errorf("cached container images: %w", err)
		}
		img.ContainerImages = len(list)
	}
	if a, ok := m.Manifest.Annotations[extension.AnnotationExtension]; ok {
		ext, err := extension.Parse(a)
		if err != nil {
			return nil, fmt.Errorf("sealer metadata: %w", err)
		}
		img.Ext = ext
		if len(ext.Env) > 0 {
			img.Env = img.Env[:0]
			for _, k := range sortedKeys(ext.Env) {
				img.Env = append(img.Env, k+"="+ext.Env[k])
			}
		}
	}
	image, err := s.Image(m.Digest)
	if err != nil {
		return nil, err
	}
	layers, err := image.Layers()
	if err != nil {
		return nil, fmt.Errorf("list layers: %w", err)
	}
	img.Files, img.Has, err = scanLayers(ctx, layers, runFile, presenceOnly)
	if err != nil {
		return nil, err
	}
	return img, nil
}

// scanLayers reads the files want picks, and notes which of present exist,
// in the root filesystem that layers (bottom first) make, honouring OCI
// whiteouts.
func scanLayers(ctx context.Context, layers []v1.Layer, want func(string) bool, present []string) (map[string][]byte, map[string]bool, error) {
	files := map[string][]byte{}
	has := map[string]bool{}
	for i, l := range layers {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		rc, err := l.Compressed()
		if err != nil {
			return nil, nil, fmt.Errorf("open layer %d: %w", i+1, err)
		}
		err = scanLayer(rc, files, has, want, present)
		rc.Close()
		if err != nil {
			return nil, nil, fmt.Errorf("read layer %d: %w", i+1, err)
		}
	}
	return files, has, nil
}

// scanLayer applies one compressed layer to files and has: its whiteouts
// first (they hide what lower layers had), then its entries.
func scanLayer(r io.Reader, files map[string][]byte, has map[string]bool, want func(string) bool, present []string) error {
	dr, err := layer.Decompress(r)
	if err != nil {
		return err
	}
	defer dr.Close()
	type entry struct {
		path    string
		regular bool
		data    []byte
	}
	var entries []entry
	var hide []string   // paths removed, with everything under them
	var opaque []string // directories whose lower content is hidden
	tr := tar.NewReader(dr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		p := layer.CleanPath(h.Name)
		if p == "" || p == "." {
			continue
		}
		dir, base := path.Split(p)
		switch {
		case base == layer.WhiteoutOpaque:
			opaque = append(opaque, strings.TrimSuffix(dir, "/"))
			continue
		case strings.HasPrefix(base, layer.WhiteoutPrefix):
			hide = append(hide, dir+strings.TrimPrefix(base, layer.WhiteoutPrefix))
			continue
		}
		e := entry{path: p, regular: h.Typeflag == tar.TypeReg}
		if e.regular && want(p) {
			if h.Size > maxRootfsFile {
				return fmt.Errorf("%s is %d bytes: more than the %d bytes drove reads", p, h.Size, maxRootfsFile)
			}
			if e.data, err = io.ReadAll(io.LimitReader(tr, maxRootfsFile+1)); err != nil {
				return fmt.Errorf("read %s: %w", p, err)
			}
		}
		entries = append(entries, e)
	}
	under := func(p, dir string) bool { return dir == "" || p == dir || strings.HasPrefix(p, dir+"/") }
	drop := func(match func(string) bool) {
		for p := range files {
			if match(p) {
				delete(files, p)
			}
		}
		for p := range has {
			if match(p) {
				delete(has, p)
			}
		}
	}
	for _, h := range hide {
		drop(func(p string) bool { return under(p, h) })
	}
	for _, d := range opaque {
		drop(func(p string) bool { return p != d && under(p, d) })
	}
	for _, e := range entries {
		// Any entry replaces what a lower layer had at its path; a
		// directory replacing a file (or the reverse) hides it too.
		drop(func(p string) bool { return p == e.path })
		if !e.regular {
			continue
		}
		if e.data != nil {
			files[e.path] = e.data
		}
		if slices.Contains(present, e.path) {
			has[e.path] = true
		}
	}
	return nil
}

// distribution describes the image for a distribute step: the piece
// hashes of every blob, computed from the local store. id is the ID of
// the plan that carries it.
func (img *clusterImage) distribution(ctx context.Context, g *Globals, id string) (*protocol.Distribution, error) {
	s, err := g.Store()
	if err != nil {
		return nil, err
	}
	h, err := v1.NewHash(img.Digest)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", img.Ref, err)
	}
	blobs, err := swarm.ImageBlobs(ctx, s, h, 0)
	if err != nil {
		return nil, fmt.Errorf("describe %s for delivery: %w", img.Ref, err)
	}
	return &protocol.Distribution{ID: id, Image: img.Ref, ImageDigest: img.Digest, Blobs: blobs}, nil
}

// kubeadmDefault is the image's default kubeadm configuration (a
// template or not; see kubeadmDefaults for the order) and its path, if
// the image has one.
func (img *clusterImage) kubeadmDefault() (string, []byte) {
	for _, p := range kubeadmDefaults {
		if b, ok := img.Files[p]; ok {
			return p, b
		}
	}
	return "", nil
}

// pluginFiles are the image's plugins/*.yaml documents, by path, sorted.
func (img *clusterImage) pluginFiles() []string {
	var out []string
	for p := range img.Files {
		if strings.HasPrefix(p, "plugins/") {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// gen1Metadata is the Gen-1 rootfs Metadata file's fields drove reads.
type gen1Metadata struct {
	KubeVersion    string `json:"kubeVersion"`
	ClusterRuntime string `json:"ClusterRuntime"`
}

func (img *clusterImage) metadata() gen1Metadata {
	var m gen1Metadata
	if b, ok := img.Files["Metadata"]; ok {
		_ = json.Unmarshal(b, &m) // a Metadata file drove cannot read tells nothing
	}
	return m
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
