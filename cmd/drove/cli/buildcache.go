package cli

import (
	"context"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/spf13/pflag"

	"github.com/drove-project/drove/imagecache"
	"github.com/drove-project/drove/imagecache/discover"
	"github.com/drove-project/drove/layers/reference"
	"github.com/drove-project/drove/layers/registry"
)

// cacheFlags are sealer's build flags for the container images a cluster
// image caches.
type cacheFlags struct {
	Mode          string
	ImageLists    []string
	AuthLists     []string
	IgnoredLists  []string
	IgnoreMissing bool
}

func (c *cacheFlags) add(f *pflag.FlagSet) {
	f.StringVar(&c.Mode, "build-mode", imagecache.ModeAll, "all: cache the container images the image needs into it; lite: cache none")
	f.StringArrayVar(&c.ImageLists, "image-list", nil, "file listing more container images to cache, one per line (repeatable)")
	f.StringArrayVar(&c.AuthLists, "image-list-with-auth", nil, "YAML file of sections {registry, username, password, images: [...]} to cache from private registries (repeatable)")
	f.StringArrayVar(&c.IgnoredLists, "ignored-image-list", nil, "file listing container images not to cache, one per line (repeatable)")
	f.BoolVar(&c.IgnoreMissing, "ignore-missing", false, "build even when some container images cannot be pulled (they are listed as warnings)")
}

func (c *cacheFlags) check() error {
	if c.Mode != imagecache.ModeAll && c.Mode != imagecache.ModeLite {
		return usageErrorf("--build-mode %q: use all or lite", c.Mode)
	}
	return nil
}

func (c *cacheFlags) discover(g *Globals) discover.Options {
	return discover.Options{ImageLists: c.ImageLists, AuthLists: c.AuthLists, IgnoredLists: c.IgnoredLists, Log: g.Log}
}

// startBuildMirror serves the build-time mirror the RUN steps pull
// through. It intercepts the well-known registries, those of the images
// the build context and the image lists name, and those the credentials
// file has logins for.
func (c *cacheFlags) startBuildMirror(ctx context.Context, g *Globals, contextDir, workDir string, ro registry.Options) (*imagecache.BuildMirror, func(), error) {
	regs, auth, err := c.listedRegistries()
	if err != nil {
		return nil, nil, err
	}
	// The context's manifests, charts and imageList files, read as if it
	// were the rootfs; what is wrong there is reported after the build.
	if found, err := discover.Discover(ctx, contextDir, discover.Options{Log: g.Log}); err == nil {
		for _, im := range found.Images {
			if r, err := reference.Parse(im.Ref); err == nil {
				regs = appendNew(regs, reference.DisplayRegistry(r.Context().RegistryStr()))
			}
		}
	}
	if path, err := registry.AuthFilePath(ro.AuthFile); err == nil {
		if af, err := registry.ReadAuthFile(path); err == nil {
			for _, r := range af.Registries() {
				regs = appendNew(regs, reference.DisplayRegistry(r))
			}
		}
	}
	if err := os.MkdirAll(workDir, 0o755); err != nil {
		return nil, nil, err
	}
	dir, err := os.MkdirTemp(workDir, "mirror-")
	if err != nil {
		return nil, nil, err
	}
	m, err := imagecache.StartBuildMirror(imagecache.BuildMirrorOptions{
		Dir: dir, Registries: regs, Registry: ro, Auth: auth, Log: g.Log,
	})
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	g.Log.Info("build registry mirror serving", "addr", m.Addr(), "config", dir)
	stop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		m.Close(ctx)
		os.RemoveAll(dir)
	}
	return m, stop, nil
}

// listedRegistries are the registries of the images the list files name,
// and the logins of the auth lists.
func (c *cacheFlags) listedRegistries() ([]string, map[string]authn.Authenticator, error) {
	var regs []string
	add := func(ref string) {
		if r, err := reference.Parse(ref); err == nil {
			regs = appendNew(regs, reference.DisplayRegistry(r.Context().RegistryStr()))
		}
	}
	for _, f := range c.ImageLists {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, nil, fmt.Errorf("--image-list: %w", err)
		}
		list, err := discover.ParseImageList(b, f)
		if err != nil {
			return nil, nil, err
		}
		for _, e := range list {
			add(e.Ref)
		}
	}
	auth := map[string]authn.Authenticator{}
	for _, f := range c.AuthLists {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, nil, fmt.Errorf("--image-list-with-auth: %w", err)
		}
		secs, err := discover.ParseAuthList(b, f)
		if err != nil {
			return nil, nil, err
		}
		for _, s := range secs {
			regs = appendNew(regs, reference.DisplayRegistry(s.Registry))
			if s.Username != "" || s.Password != "" {
				auth[s.Registry] = &authn.Basic{Username: s.Username, Password: s.Password}
			}
			for _, im := range s.Images {
				add(im)
			}
		}
	}
	slices.Sort(regs)
	return regs, auth, nil
}
