package runtime

import (
	"strconv"
	"strings"

	"github.com/drove-project/drove/protocol"
)

// imagesPhase adds the "container-images" phase where the runtime's
// containerd exists (afterCreate picks the call after create or join):
// each host's agent points containerd at its node mirror of the images
// the cluster image caches and, with Desired.ImportImages, imports them.
func (c *cluster) imagesPhase(b *builder, f flavor, hosts []Host, afterCreate bool) {
	addr, after := f.containerd()
	if after != afterCreate || c.d.ContainerImages == 0 {
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

// DefaultRegistryAlias is the registry name sealer-built images use for
// their cached images; pulls from it go to the node mirror.
const DefaultRegistryAlias = "sea.hub:5000"
