package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/drove-project/drove/imagecache"
	"github.com/drove-project/drove/imagecache/importer"
	"github.com/drove-project/drove/imagecache/mirror"
	"github.com/drove-project/drove/imagecache/ocilayout"
	"github.com/drove-project/drove/layers/reference"
	"github.com/drove-project/drove/protocol"
)

// The images action's kind and parameters (see protocol.ActionImages).
const (
	ActionImages           = protocol.ActionImages
	EnvImagesImport        = protocol.EnvImagesImport
	EnvContainerdAddress   = protocol.EnvContainerdAddress
	EnvContainerdNamespace = protocol.EnvContainerdNamespace
	EnvRegistryAliases     = protocol.EnvRegistryAliases
	EnvCertsDir            = protocol.EnvCertsDir
)

// Defaults for where containerd lives on a node.
const (
	DefaultContainerdAddress = "/run/containerd/containerd.sock"
	DefaultCertsDir          = "/etc/containerd/certs.d"
	DefaultMirrorAddr        = "127.0.0.1:5050"
	DefaultRegistryAlias     = "sea.hub:5000"
)

// ImagesAction runs "images" steps: it makes the container images cached
// in a delivered cluster image (Action.Rootfs) pullable on this node by
// their original names. It writes containerd hosts.toml files, for every
// registry the images come from and for the aliases, that send pulls to
// the agent's node mirror (which serves every unpacked image's cache), and
// with EnvImagesImport it imports the images into containerd. A hosts.toml
// that drove did not write is left alone and reported. Running it again
// rewrites the same files and finds the content already imported.
type ImagesAction struct {
	DataDir           string
	Mirror            func() string // the node mirror's host:port; empty when none runs
	CertsDir          string
	ContainerdAddress string
}

// Run implements Action.
func (ia ImagesAction) Run(ctx context.Context, a protocol.Action, out io.Writer) (int, map[string]string, error) {
	if a.Rootfs == "" {
		return 1, nil, errors.New("images: the step names no image (Action.Rootfs)")
	}
	rootfs, err := imageRootfs(ia.DataDir, a.Rootfs)
	if err != nil {
		return 1, nil, fmt.Errorf("images: %w", err)
	}
	layout := filepath.Join(rootfs, imagecache.LayoutDir)
	names, err := imageNames(layout)
	if err != nil {
		return 1, nil, fmt.Errorf("images of %s: %w", a.Rootfs, err)
	}
	outputs := map[string]string{"images": strconv.Itoa(len(names))}
	if len(names) == 0 {
		fmt.Fprintln(out, "the image caches no container images")
		return 0, outputs, nil
	}
	mirrorAddr := ""
	if ia.Mirror != nil {
		mirrorAddr = ia.Mirror()
	}
	if mirrorAddr == "" {
		return 1, nil, errors.New("images: this agent serves no node mirror (started with --mirror-addr off, or its address was taken: see the agent's log)")
	}
	certs := firstNonEmpty(a.Env[EnvCertsDir], ia.CertsDir, DefaultCertsDir)
	var aliases []string
	for _, s := range strings.Split(firstNonEmpty(a.Env[EnvRegistryAliases], DefaultRegistryAlias), ",") {
		if s = strings.TrimSpace(s); s != "" {
			aliases = append(aliases, s)
		}
	}
	regs := registriesOf(names)
	skipped, err := mirror.WriteHostsDir(certs, regs, "http://"+mirrorAddr, mirror.HostsOptions{Aliases: aliases})
	if err != nil {
		return 1, nil, fmt.Errorf("images: write containerd hosts files under %s: %w", certs, err)
	}
	for _, s := range skipped {
		fmt.Fprintf(out, "warning: %s was not written by drove; left as it is (pulls from that registry do not use the node mirror)\n", s)
	}
	fmt.Fprintf(out, "%d images of %d registries served by the node mirror %s (hosts files in %s)\n",
		len(names), len(regs), mirrorAddr, certs)
	if on, _ := strconv.ParseBool(a.Env[EnvImagesImport]); !on {
		return 0, outputs, nil
	}
	addr := firstNonEmpty(a.Env[EnvContainerdAddress], ia.ContainerdAddress, DefaultContainerdAddress)
	got, err := importer.Import(ctx, layout, importer.Options{
		Address: addr, Namespace: firstNonEmpty(a.Env[EnvContainerdNamespace], "k8s.io"), Unpack: true,
	})
	for _, im := range got {
		fmt.Fprintf(out, "imported %s %s\n", im.Name, im.Digest)
	}
	outputs["imported"] = strconv.Itoa(len(got))
	if err != nil {
		return 1, outputs, fmt.Errorf("images: import into containerd at %s: %w", addr, err)
	}
	return 0, outputs, nil
}

// imageNames are the image names of a cache layout; none if there is no
// layout.
func imageNames(layout string) ([]string, error) { return ocilayout.ImageNames(layout) }

// registriesOf lists the registries of image names, sorted.
func registriesOf(names []string) []string {
	var out []string
	for _, n := range names {
		ref, err := reference.Parse(n)
		if err != nil {
			continue
		}
		if r := reference.DisplayRegistry(ref.Context().RegistryStr()); !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	slices.Sort(out)
	return out
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}
