package mirror

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/drove-project/drove/layers/reference"
)

// SealerHub is the registry name sealer-built images and kubeadm
// configurations use for the cluster's own registry. The node mirror
// answers requests for it from images of any registry.
const SealerHub = "sea.hub:5000"

// hubHost is Docker Hub as users spell it.
const hubHost = "docker.io"

// repoName is one repository in one registry: host is the registry as users
// spell it (Docker Hub is "docker.io"), path the repository within it
// ("library/nginx").
type repoName struct {
	host string
	path string
}

func (r repoName) String() string { return r.host + "/" + r.path }

// normalizeHost spells a registry host the way references name it:
// lower-cased, and every Docker Hub alias as docker.io.
func normalizeHost(h string) string {
	return reference.DisplayRegistry(strings.ToLower(h))
}

// pathComponent is one '/'-separated part of a repository path in docker's
// reference grammar.
var pathComponent = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$`)

// hostPattern is a registry host as docker's reference grammar has it (a
// domain or IPv4 address, an optional port) or a bracketed IPv6 address.
var hostPattern = regexp.MustCompile(`^(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*|\[[0-9a-f:.]+\])(?::[0-9]{1,5})?$`)

// encodedPort matches a path element "HOST_PORT", the form a registry host
// with a port takes in a mirror path.
var encodedPort = regexp.MustCompile(`^(.+)_([0-9]{1,5})$`)

// validRepoPath reports whether p is a repository path docker accepts.
func validRepoPath(p string) bool {
	if p == "" || len(p) > 255 {
		return false
	}
	for _, c := range strings.Split(p, "/") {
		if !pathComponent.MatchString(c) {
			return false
		}
	}
	return true
}

// looksLikeHost reports whether a reference's first component names a
// registry, as docker decides it: it has a dot or a colon, or is localhost.
func looksLikeHost(s string) bool {
	return strings.ContainsAny(s, ".:") || s == "localhost"
}

// hostElement reads the first element of a registries.conf-style mirror path
// as a registry host: "docker.io", "127.0.0.1:5000", or the path-safe
// "127.0.0.1_5000". ok is false when the element is a repository component.
func hostElement(s string) (host string, ok bool) {
	s = strings.ToLower(s)
	if m := encodedPort.FindStringSubmatch(s); m != nil && looksLikeHost(m[1]) {
		s = m[1] + ":" + m[2]
	}
	if !looksLikeHost(s) || !hostPattern.MatchString(s) {
		return "", false
	}
	return normalizeHost(s), true
}

// pathElement spells a registry host as the first element of a mirror path
// that image-reference parsers accept: "127.0.0.1:5000" becomes
// "127.0.0.1_5000". IPv6 addresses cannot be spelled that way.
func pathElement(host string) (string, error) {
	h := normalizeHost(host)
	if strings.HasPrefix(h, "[") {
		return "", fmt.Errorf("registry %s: an IPv6 address cannot be named in a mirror path", host)
	}
	return strings.Replace(h, ":", "_", 1), nil
}

// canonicalRegistry checks that s names a registry host (a scheme and a
// trailing slash are dropped) and returns it normalised: "https://Quay.io/"
// is "quay.io", "registry-1.docker.io" is "docker.io".
func canonicalRegistry(s string) (string, error) {
	h := strings.TrimSpace(s)
	lower := strings.ToLower(h)
	for _, scheme := range []string{"https://", "http://"} {
		if strings.HasPrefix(lower, scheme) {
			h = h[len(scheme):]
			break
		}
	}
	h = normalizeHost(strings.TrimSuffix(h, "/"))
	if !hostPattern.MatchString(h) {
		return "", fmt.Errorf("registry %q: want a host name or address with an optional port", s)
	}
	return h, nil
}

// expandHub gives a single-component Docker Hub path its "library/"
// prefix, as docker does ("nginx" is "library/nginx").
func expandHub(r repoName) repoName {
	if r.host == hubHost && !strings.Contains(r.path, "/") {
		r.path = "library/" + r.path
	}
	return r
}
