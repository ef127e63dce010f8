package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/cobra"

	"github.com/drove-project/drove/imagecache"
	"github.com/drove-project/drove/layers/build"
	"github.com/drove-project/drove/layers/layer"
)

type buildOptions struct {
	File        string
	Tags        []string
	BuildArgs   []string
	Platforms   []string
	NoCache     bool
	Type        string
	Compression string
	Context     string
	Registry    registryFlags
	Cache       cacheFlags
}

func newBuildCmd(g *Globals) *cobra.Command {
	o := &buildOptions{}
	cmd := &cobra.Command{
		Use:   "build [flags] CONTEXT",
		Short: "Build a cluster image from a Kubefile",
		Long: `build reads a Kubefile (sealer's format) and builds a cluster image into the
local store.

FROM picks the base (scratch, a local image, or one pulled from a registry).
COPY, ADD, APP, CNI, CSI and RUN each add a layer; RUN runs "sh -c" on this
machine with the rootfs built so far as its working directory (an overlay
mount as root, a copy otherwise). CMD, CMDS, LAUNCH, APPCMDS, APPENV, ENV,
LABEL and KUBEVERSION go into the image config and sealer's
sealer.image.extension annotation.

A step is reused (CACHED) when its parent, its instruction and the content of
its inputs are unchanged; --no-cache runs every step. Several --platform
values build an OCI image index; ${ARCH} in COPY sources picks per-platform
files. Set SOURCE_DATE_EPOCH to stamp a fixed creation time.

Container images: after the steps, build caches into the image every
container image its cluster needs, so it installs offline — the images named
by imageList files, by "image:" in YAML under manifests/ and application/apps/,
by Helm charts under charts/ and in apps (rendered at their default values),
by --image-list and --image-list-with-auth, minus --ignored-image-list — and
every image a RUN step pulled through the build mirror. While RUN steps
execute, a pull-through mirror serves on 127.0.0.1 and each step gets
DROVE_REGISTRY_MIRROR (host:port), DROVE_REGISTRY_HOSTS_DIR (for ctr/nerdctl
--hosts-dir) and CONTAINERS_REGISTRIES_CONF (read by skopeo and podman).
The images go into one more layer (an OCI image layout at container-images/)
for each platform, and are listed in the sealer.image.container.images
annotation (drove inspect shows them). An image that cannot be pulled fails
the build (--ignore-missing makes it a warning); --build-mode lite caches none.
Like a step, the layer is reused when the rootfs and the list of images are
unchanged (a tag moved upstream is not noticed: --no-cache pulls again).`,
		Example: `  drove build -t my-cluster:v1 .
  drove build -f Kubefile.app -t apps:v2 --type app-installer ./apps
  drove build --platform linux/amd64,linux/arm64 -t multi:v1 .
  drove build --image-list images.txt --ignored-image-list skip.txt -t offline:v1 .`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Context = args[0]
			bo, err := o.toBuild(g)
			if err != nil {
				return err
			}
			if err := o.Cache.check(); err != nil {
				return err
			}
			return runBuild(cmd.Context(), g, bo, &o.Cache)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.File, "file", "f", "", "Kubefile to build (default CONTEXT/Kubefile)")
	f.StringArrayVarP(&o.Tags, "tag", "t", nil, "name for the image (repeatable); required")
	f.StringArrayVar(&o.BuildArgs, "build-arg", nil, "set an ARG: KEY=VALUE (repeatable)")
	f.StringSliceVar(&o.Platforms, "platform", nil, "target platforms, e.g. linux/amd64,linux/arm64 (default: this machine's)")
	f.BoolVar(&o.NoCache, "no-cache", false, "run every step and pull every container image instead of reusing cached layers")
	f.StringVar(&o.Type, "type", "kube-installer", "image type: kube-installer or app-installer")
	f.StringVar(&o.Compression, "compression", "gzip", "layer compression: gzip, zstd or none")
	o.Registry.add(f)
	o.Cache.add(f)
	return cmd
}

// toBuild checks the flags and turns them into build options.
func (o *buildOptions) toBuild(g *Globals) (build.Options, error) {
	if len(o.Tags) == 0 {
		return build.Options{}, usageErrorf("build needs a name: -t NAME[:TAG]")
	}
	args := map[string]string{}
	for _, a := range o.BuildArgs {
		k, v, ok := strings.Cut(a, "=")
		if !ok || k == "" {
			if v, ok := os.LookupEnv(a); ok && a != "" {
				args[a] = v // docker: --build-arg NAME takes NAME from the environment
				continue
			}
			return build.Options{}, usageErrorf("--build-arg %q: want KEY=VALUE", a)
		}
		args[k] = v
	}
	var plats []v1.Platform
	for _, p := range o.Platforms {
		pp, err := v1.ParsePlatform(strings.TrimSpace(p))
		if err != nil || pp.OS == "" || pp.Architecture == "" {
			return build.Options{}, usageErrorf("--platform %q: want OS/ARCH[/VARIANT], e.g. linux/arm64", p)
		}
		plats = append(plats, *pp)
	}
	comp := layer.Compression(o.Compression)
	if _, err := comp.MediaType(); err != nil {
		return build.Options{}, usageErrorf("--compression %q: use gzip, zstd or none", o.Compression)
	}
	bo := build.Options{
		File: o.File, Context: o.Context, Tags: o.Tags, BuildArgs: args, Platforms: plats,
		NoCache: o.NoCache, Type: o.Type, Compression: comp,
		WorkDir:  filepath.Join(g.DataDir, "build"),
		Registry: o.Registry.options(),
	}
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return build.Options{}, usageErrorf("SOURCE_DATE_EPOCH %q: want seconds since 1970", s)
		}
		bo.Created = time.Unix(sec, 0).UTC()
	}
	return bo, nil
}

// runBuild builds the image, then caches its container images into it
// (unless --build-mode lite), and only then names it: a failure at any
// point changes no name.
func runBuild(ctx context.Context, g *Globals, bo build.Options, cf *cacheFlags) error {
	s, err := g.Store()
	if err != nil {
		return err
	}
	bo.Out = g.Err
	bo.Log = g.Log
	rep := g.Progress()
	bo.Progress = rep
	start := time.Now()
	var bm *imagecache.BuildMirror
	if cf.Mode != imagecache.ModeLite {
		var stop func()
		if bm, stop, err = cf.startBuildMirror(ctx, g, bo.Context, bo.WorkDir, bo.Registry); err != nil {
			return err
		}
		defer stop()
		bo.RunHook = bm
	}
	tags := bo.Tags
	bo.Tags = nil
	res, err := build.Build(ctx, s, bo)
	rep.Wait()
	if err != nil {
		return err
	}
	co := imagecache.Options{Mode: cf.Mode, Discover: cf.discover(g), Registry: bo.Registry, NoCache: bo.NoCache,
		IgnoreMissing: cf.IgnoreMissing, WorkDir: bo.WorkDir, Out: g.Err, Log: g.Log}
	if bm != nil {
		co.Pulled = bm.Images()
	}
	crep := g.Progress()
	co.Progress = crep
	cached, err := imagecache.Add(ctx, s, res.Descriptor, co)
	crep.Wait()
	if err != nil {
		return err
	}
	for _, t := range tags {
		if err := s.Tag(t, cached.Descriptor); err != nil {
			return err
		}
	}
	fmt.Fprintf(g.Err, "built %s in %s: %d layer steps, %d cached, %d container images\n", strings.Join(tags, ", "),
		time.Since(start).Round(time.Millisecond), res.Steps, res.Cached, len(cached.Images))
	fmt.Fprintln(g.Out, cached.Descriptor.Digest.String())
	return nil
}
