package mirror

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/drove-project/drove/internal/atomicfile"
	"github.com/drove-project/drove/layers/registry"
)

// WriteRegistriesConf writes a containers-registries.conf (version 2, the
// file skopeo, podman and buildah read; point them at it with the
// environment variable CONTAINERS_REGISTRIES_CONF) that sends pulls from
// each registry to the mirror at mirrorHost ("127.0.0.1:5050"):
//
//	[[registry]]
//	prefix = "docker.io"
//	location = "docker.io"
//
//	[[registry.mirror]]
//	location = "127.0.0.1:5050/docker.io"
//	insecure = true
//
// A loopback registry is marked insecure = true. In the mirror location a
// registry's port is written "_PORT" ("127.0.0.1:5050/127.0.0.1_5000"),
// since those tools reject a ':' inside a repository path; both mirrors in
// this package read it back. The file is replaced atomically (its
// directory is created if missing). IPv6 registry addresses are refused.
func WriteRegistriesConf(path string, registries []string, mirrorHost string) error {
	mirror := strings.TrimSpace(mirrorHost)
	for _, scheme := range []string{"http://", "https://"} {
		mirror = strings.TrimPrefix(mirror, scheme)
	}
	mirror = strings.TrimSuffix(mirror, "/")
	if _, err := canonicalRegistry(mirror); err != nil {
		return fmt.Errorf("write registries.conf %s: mirror: %w", path, err)
	}
	hosts, err := registryHosts(registries)
	if err != nil {
		return fmt.Errorf("write registries.conf %s: %w", path, err)
	}
	var b strings.Builder
	b.WriteString(DroveMarker + ": pulls go to the registry mirror " + mirror + " first.\n")
	for _, h := range hosts {
		elem, err := pathElement(h)
		if err != nil {
			return fmt.Errorf("write registries.conf %s: %w", path, err)
		}
		b.WriteString("\n[[registry]]\n")
		b.WriteString("prefix = " + tomlString(h) + "\n")
		b.WriteString("location = " + tomlString(h) + "\n")
		if registry.IsLoopback(h) {
			b.WriteString("insecure = true\n")
		}
		b.WriteString("\n[[registry.mirror]]\n")
		b.WriteString("location = " + tomlString(mirror+"/"+elem) + "\n")
		b.WriteString("insecure = true\n")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write registries.conf %s: %w", path, err)
	}
	if err := atomicfile.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("write registries.conf: %w", err)
	}
	return nil
}
