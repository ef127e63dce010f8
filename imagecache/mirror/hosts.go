package mirror

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/drove-project/drove/internal/atomicfile"
	"github.com/drove-project/drove/layers/registry"
)

// DroveMarker starts the first line of every client configuration file
// drove writes. A hosts.toml whose first line does not start with it belongs
// to someone else and is never replaced.
const DroveMarker = "# Written by drove"

// defaultHostsDir is containerd's directory name for the configuration of
// every registry that has none of its own.
const defaultHostsDir = "_default"

// HostsOptions tune WriteHostsDir.
type HostsOptions struct {
	// Default also writes _default/hosts.toml, which sends pulls from every
	// registry without a directory of its own to the mirror.
	Default bool
	// Aliases are more registry names whose pulls go to the mirror, such as
	// SealerHub for sealer-built images.
	Aliases []string
}

// WriteHostsDir writes a containerd hosts.toml for each registry (and each
// alias) as <dir>/<registry>/hosts.toml, sending pulls and resolves to the
// mirror at mirrorURL ("http://127.0.0.1:5050") before the registry itself:
//
//	# Written by drove …
//	server = "https://registry-1.docker.io"
//
//	[host."http://127.0.0.1:5050"]
//	  capabilities = ["pull", "resolve"]
//
// The server is https://registry-1.docker.io for Docker Hub, http://HOST for
// a loopback registry and https://HOST otherwise. Each file is replaced
// atomically. A hosts.toml that exists and was not written by drove (its
// first line does not start with DroveMarker) is left untouched and
// returned in skipped, for the caller to report: that registry's pulls do
// not use the mirror. err is set only when a file could not be written or
// the arguments are wrong; files written before the failure stay.
func WriteHostsDir(dir string, registries []string, mirrorURL string, o HostsOptions) (skipped []string, err error) {
	mirror := strings.TrimSuffix(strings.TrimSpace(mirrorURL), "/")
	if !strings.HasPrefix(mirror, "http://") && !strings.HasPrefix(mirror, "https://") {
		return nil, fmt.Errorf("write containerd hosts files: mirror URL %q must start with http:// or https://", mirrorURL)
	}
	hosts, err := registryHosts(append(append([]string(nil), registries...), o.Aliases...))
	if err != nil {
		return nil, fmt.Errorf("write containerd hosts files: %w", err)
	}
	type file struct{ dir, content string }
	var files []file
	for _, h := range hosts {
		files = append(files, file{h, hostsTOML("server = "+tomlString(upstreamServer(h)), mirror)})
	}
	if o.Default {
		files = append(files, file{defaultHostsDir, hostsTOML("", mirror)})
	}
	for _, f := range files {
		path := filepath.Join(dir, f.dir, "hosts.toml")
		mine, err := writtenByDrove(path)
		if err != nil {
			return skipped, fmt.Errorf("write containerd hosts files: %w", err)
		}
		if !mine {
			skipped = append(skipped, path)
			continue
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return skipped, fmt.Errorf("write containerd hosts files: %w", err)
		}
		if err := atomicfile.WriteFile(path, []byte(f.content), 0o644); err != nil {
			return skipped, fmt.Errorf("write containerd hosts files: %w", err)
		}
	}
	return skipped, nil
}

// registryHosts normalises and de-duplicates registry names, keeping
// their order.
func registryHosts(names []string) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	for _, n := range names {
		h, err := canonicalRegistry(n)
		if err != nil {
			return nil, err
		}
		if !seen[h] {
			seen[h] = true
			out = append(out, h)
		}
	}
	return out, nil
}

// upstreamServer is the URL containerd falls back to for registry host.
func upstreamServer(host string) string {
	switch {
	case host == hubHost:
		return "https://registry-1.docker.io"
	case registry.IsLoopback(host):
		return "http://" + host
	default:
		return "https://" + host
	}
}

// hostsTOML renders one hosts.toml; server is its "server = …" line, or
// empty for _default.
func hostsTOML(server, mirror string) string {
	var b strings.Builder
	b.WriteString(DroveMarker + ": pulls go to the node's registry mirror first. drove rewrites this file; delete this line to keep your own.\n")
	if server != "" {
		b.WriteString(server + "\n")
	}
	b.WriteString("\n[host." + tomlString(mirror) + "]\n")
	b.WriteString("  capabilities = [\"pull\", \"resolve\"]\n")
	return b.String()
}

// writtenByDrove reports whether path may be replaced: it does not exist,
// or its first line starts with DroveMarker.
func writtenByDrove(path string) (bool, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	line, err := bufio.NewReader(f).ReadSlice('\n')
	if err != nil && len(line) == 0 {
		return false, nil // empty file: someone else's
	}
	return bytes.HasPrefix(line, []byte(DroveMarker)), nil
}
