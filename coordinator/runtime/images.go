package runtime

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/drove-project/drove/protocol"
)

// imagesPhase adds the "container-images" phase where the runtime's
// containerd exists (afterCreate picks the call after create or join):
// each host's agent points containerd at its node mirror of the images
// the cluster image caches and, with Desired.ImportImages, imports them.
func (c *cluster) imagesPhase(b *builder, f flavor, hosts []Host, afterCreate bool) {
	if _, after := f.containerd(); after != afterCreate {
		return
	}
	c.addImagesPhase(b, f, hosts)
}

// addImagesPhase adds the container-images phase for hosts, if the image
// caches any.
func (c *cluster) addImagesPhase(b *builder, f flavor, hosts []Host) {
	addr, _ := f.containerd()
	if c.d.ContainerImages == 0 {
		return
	}
	aliases := c.d.RegistryAliases
	if len(aliases) == 0 {
		aliases = []string{DefaultRegistryAlias}
	}
	env := map[string]string{
		protocol.EnvImagesImport:    strconv.FormatBool(c.d.ImportImages),
		protocol.EnvRegistryAliases: strings.Join(aliases, ","),
	}
	if addr != "" {
		env[protocol.EnvContainerdAddress] = addr
	}
	b.phase("container-images", 0, idem(protocol.StepSpec{
		Name:   b.uniq("container-images"),
		Target: protocol.Selector{Nodes: ips(hosts)},
		Action: protocol.Action{Kind: protocol.ActionImages, Rootfs: c.d.ImageDigest, Env: env},
	}, timeoutScripts))
}

// LoadImages: the image, then its container images, on every host.
func (l lifecycle) LoadImages(d Desired) (protocol.PlanSpec, error) {
	if d.ContainerImages == 0 {
		return protocol.PlanSpec{}, fmt.Errorf("%w: image %s caches no container images (build it without --build-mode lite)", ErrInvalid, d.Image)
	}
	c, _, err := l.setup(&d)
	if err != nil {
		return protocol.PlanSpec{}, err
	}
	b := newBuilder("load images of " + d.Image)
	b.phase("distribute", 0, c.distributeStep(c.all))
	c.addImagesPhase(b, l.f, c.all)
	return b.done()
}

// DefaultRegistryAlias is the registry name sealer-built images use for
// their cached images; pulls from it go to the node mirror.
const DefaultRegistryAlias = "sea.hub:5000"
