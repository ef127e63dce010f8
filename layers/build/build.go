// Package build turns a Kubefile and its context into a cluster image in the
// local store: FROM picks the base, COPY/ADD/APP/CNI/CSI and RUN add layers
// (each cached by parent, instruction and a content hash of its inputs), and
// the run-time instructions become the image config and sealer's metadata.
package build

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/drove-project/drove/internal/progress"
	"github.com/drove-project/drove/layers/extension"
	"github.com/drove-project/drove/layers/kubefile"
	"github.com/drove-project/drove/layers/layer"
	"github.com/drove-project/drove/layers/registry"
	"github.com/drove-project/drove/layers/store"
)

// Options describe one build.
type Options struct {
	File        string            // the Kubefile; default Context/Kubefile
	Context     string            // build context directory
	Tags        []string          // names for the result
	BuildArgs   map[string]string // --build-arg values
	Platforms   []v1.Platform     // empty: this machine's
	NoCache     bool              // rebuild every step
	Type        string            // extension.KubeInstaller (default) or AppInstaller
	Compression layer.Compression // layer compression; default gzip
	WorkDir     string            // build cache and scratch space
	Registry    registry.Options  // for pulling the FROM image
	Out         io.Writer         // step lines and RUN output
	Progress    *progress.Reporter
	Log         *slog.Logger
	// RunHook, when set, takes part in every RUN step (drove's build-time
	// registry mirror: it points the step's tools at itself and records
	// what they pulled).
	RunHook RunHook
	// Created stamps the image config; zero means now (the CLI honours
	// SOURCE_DATE_EPOCH for reproducible builds).
	Created time.Time
}

// Result is what a build produced.
type Result struct {
	Descriptor v1.Descriptor // the manifest, or the index for several platforms
	Steps      int           // layer steps run or reused, over all platforms
	Cached     int           // of which reused from the cache
	Warnings   []string
}

// HostPlatform is the platform this machine runs.
func HostPlatform() v1.Platform {
	return v1.Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH}
}

// Build runs the Kubefile and names the result with opts.Tags. On any error
// no name is added or changed.
func Build(ctx context.Context, s *store.Store, o Options) (Result, error) {
	if err := o.defaults(); err != nil {
		return Result{}, err
	}
	for _, t := range o.Tags {
		if _, err := store.NormalizeName(t); err != nil {
			return Result{}, err
		}
	}
	kf, err := readKubefile(o.File)
	if err != nil {
		return Result{}, err
	}
	cache, err := openCache(filepath.Join(o.WorkDir, "cache"))
	if err != nil {
		return Result{}, err
	}
	cleanStaleRuns(filepath.Join(o.WorkDir, "runs"), o.Log)
	b := &builder{s: s, o: o, kf: kf, cache: cache}
	res := Result{Warnings: append([]string(nil), kf.Warnings...)}
	for _, w := range kf.Warnings {
		fmt.Fprintf(o.Out, "WARNING: %s\n", w)
	}
	var built []platformImage
	for _, p := range o.Platforms {
		pi, err := b.buildPlatform(ctx, p, &res)
		if err != nil {
			return Result{}, err
		}
		built = append(built, pi)
	}
	desc := built[0].desc
	if len(built) > 1 {
		if desc, err = b.writeIndex(ctx, built); err != nil {
			return Result{}, err
		}
	}
	for _, t := range o.Tags {
		if err := s.Tag(t, desc); err != nil {
			return Result{}, err
		}
	}
	res.Descriptor = desc
	return res, nil
}

func (o *Options) defaults() error {
	if o.Context == "" {
		o.Context = "."
	}
	abs, err := filepath.Abs(o.Context)
	if err != nil {
		return err
	}
	if fi, err := os.Stat(abs); err != nil || !fi.IsDir() {
		return fmt.Errorf("build context %s is not a directory", o.Context)
	}
	o.Context = abs
	if o.File == "" {
		o.File = filepath.Join(o.Context, "Kubefile")
	}
	if len(o.Platforms) == 0 {
		o.Platforms = []v1.Platform{HostPlatform()}
	}
	if o.Type == "" {
		o.Type = extension.KubeInstaller
	}
	if o.Type != extension.KubeInstaller && o.Type != extension.AppInstaller {
		return fmt.Errorf("image type %q: use %s or %s", o.Type, extension.KubeInstaller, extension.AppInstaller)
	}
	if o.Compression == "" {
		// gzip, not zstd: every registry, docker load and go-containerregistry's
		// validate read it, and on incompressible data it is the faster of the
		// two here (measured: 256 MiB random, gzip 1.47 s, zstd 2.16 s).
		o.Compression = layer.Gzip
	}
	if _, err := o.Compression.MediaType(); err != nil {
		return err
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Progress == nil {
		o.Progress = progress.New(io.Discard, true)
	}
	if o.Created.IsZero() {
		o.Created = time.Now().UTC()
	}
	return nil
}

func readKubefile(path string) (*kubefile.Kubefile, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no Kubefile at %s (use -f to name one)", path)
		}
		return nil, err
	}
	defer f.Close()
	return kubefile.Parse(displayPath(path), f)
}

// displayPath shortens path for messages: relative to the working
// directory when it is below it.
func displayPath(path string) string {
	if wd, err := os.Getwd(); err == nil {
		if rel, err := filepath.Rel(wd, path); err == nil && !strings.HasPrefix(rel, "..") {
			return rel
		}
	}
	return path
}

// builder holds what all platforms of one build share.
type builder struct {
	s     *store.Store
	o     Options
	kf    *kubefile.Kubefile
	cache *cache
	notes []string // from RunHook.Ran, for the RUN step being stored
}

// RunHook takes part in RUN steps. Env is added to each RUN's environment
// (not to its cache key); Ran is called after each RUN that executed and
// returns notes to keep with the cached step; Reused gets those notes back
// when a later build takes the step from the cache, so what a RUN did
// beside its files (images it pulled) is known either way.
type RunHook interface {
	Env() []string
	Ran() []string
	Reused(notes []string)
}

type platformImage struct {
	desc     v1.Descriptor
	platform v1.Platform
	ext      string // the sealer extension annotation
}

// stepError places err at a Kubefile line.
func (b *builder) stepError(st kubefile.Step, err error) error {
	var ke *kubefile.Error
	if errors.As(err, &ke) {
		return err
	}
	return &kubefile.Error{File: b.kf.File, Line: st.Line, Msg: fmt.Sprintf("%s: %v", st.Cmd, err)}
}

func (b *builder) writeIndex(ctx context.Context, built []platformImage) (v1.Descriptor, error) {
	im := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex}
	for _, pi := range built {
		d := pi.desc
		p := pi.platform
		d.Platform = &p
		im.Manifests = append(im.Manifests, d)
	}
	if built[0].ext != "" {
		im.Annotations = map[string]string{extension.AnnotationExtension: built[0].ext}
	}
	raw, err := json.Marshal(im)
	if err != nil {
		return v1.Descriptor{}, err
	}
	h, err := b.s.PutBytes(ctx, raw)
	if err != nil {
		return v1.Descriptor{}, err
	}
	return v1.Descriptor{MediaType: types.OCIImageIndex, Size: int64(len(raw)), Digest: h}, nil
}
