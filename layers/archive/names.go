package archive

import (
	"fmt"
	"strings"

	"github.com/drove-project/drove/layers/store"
)

// LocalRegistry prefixes bare names found in OCI archives when no base name
// is given, as podman does: "v1" loads as "localhost/v1:latest".
const LocalRegistry = "localhost"

// ociName is the store name for an index.json entry with these annotations:
// io.containerd.image.name if set (a full name by convention), else
// org.opencontainers.image.ref.name. It returns "" when the entry has no name
// or only a digest reference, which names no tag.
//
// ref.name is often a bare tag ("v1", as skopeo oci:DIR:v1 and Docker write
// it). With base set, a bare value is a tag of base ("base:v1", like ctr
// import --base-name). Without, it follows podman: the value is taken as a
// repository under localhost ("localhost/v1:latest"), so the image is
// reachable and clearly not from a registry.
func ociName(annotations map[string]string, base string) (string, error) {
	n := annotations[ContainerdNameAnnotation]
	if n == "" {
		n = annotations[store.RefNameAnnotation]
	}
	if n == "" {
		return "", nil
	}
	full := n
	if !strings.ContainsAny(n, "/:@") {
		if base != "" {
			full = base + ":" + n
		} else {
			full = LocalRegistry + "/" + n
		}
	}
	norm, err := store.NormalizeName(full)
	if err != nil {
		return "", fmt.Errorf("%w: image name %q: %w", ErrUnsupported, n, err)
	}
	if strings.Contains(norm, "@") {
		return "", nil
	}
	return norm, nil
}

// dockerName is the store name for one of manifest.json's RepoTags.
func dockerName(tag string) (string, error) {
	norm, err := store.NormalizeName(tag)
	if err != nil {
		return "", fmt.Errorf("%w: RepoTag %q: %w", ErrCorrupt, tag, err)
	}
	if strings.Contains(norm, "@") {
		return "", fmt.Errorf("%w: RepoTag %q is a digest reference", ErrCorrupt, tag)
	}
	return norm, nil
}
