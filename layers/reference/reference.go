// Package reference parses and spells image references the way docker does,
// for every part of drove that names images: the local store, registries
// and archives.
package reference

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// dockerHubDomain is the registry name users type and see for Docker Hub.
const dockerHubDomain = "docker.io"

// HubAliases are the host names that all mean Docker Hub.
var HubAliases = map[string]bool{
	"docker.io":            true,
	"index.docker.io":      true,
	"registry-1.docker.io": true,
}

// Parse parses an image reference with docker's defaults: a missing
// registry is Docker Hub, a single-component Hub repository gains
// "library/", and a missing tag is "latest" ("foo" is
// docker.io/library/foo:latest). registry-1.docker.io is treated as
// Docker Hub too. An invalid reference yields an error quoting the input.
func Parse(s string, opts ...name.Option) (name.Reference, error) {
	return parse(s, opts...)
}

// parse is Parse; ggcr options (name.Insecure) pass through.
func parse(s string, opts ...name.Option) (name.Reference, error) {
	in := s
	if s == "" || strings.TrimSpace(s) != s {
		return nil, fmt.Errorf("invalid reference %q: must be non-empty and have no surrounding spaces", in)
	}
	if rest, ok := strings.CutPrefix(s, "registry-1.docker.io/"); ok {
		s = dockerHubDomain + "/" + rest
	}
	ref, err := name.ParseReference(s, opts...)
	if err != nil {
		return nil, fmt.Errorf("invalid reference %q: %w", in, err)
	}
	// ggcr checks the repository as written; Docker Hub's "library/" can
	// take the normalised form past docker's 255 characters.
	if repo := ref.Context().RepositoryStr(); len(repo) > maxRepository {
		return nil, fmt.Errorf("invalid reference %q: repository %q is longer than %d characters", in, repo, maxRepository)
	}
	for _, c := range strings.Split(ref.Context().RepositoryStr(), "/") {
		if !pathComponent.MatchString(c) {
			return nil, fmt.Errorf("invalid reference %q: repository path component %q must be lowercase letters and digits separated by '.', '_', '__' or '-'", in, c)
		}
	}
	return ref, nil
}

// maxRepository is docker's limit on a repository path.
const maxRepository = 255

// pathComponent is one '/'-separated part of a repository name in docker's
// reference grammar; ggcr alone would accept "a/../b".
var pathComponent = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$`)

// Normalize returns the fully qualified form of an image reference, with
// Docker Hub spelled "docker.io": "foo" becomes
// "docker.io/library/foo:latest", "ghcr.io/a/b" becomes "ghcr.io/a/b:latest",
// and a digest reference keeps only its digest. Names in the local store
// use this form.
func Normalize(s string) (string, error) {
	ref, err := Parse(s)
	if err != nil {
		return "", err
	}
	return String(ref), nil
}

// String renders ref fully qualified with Docker Hub as docker.io.
func String(ref name.Reference) string {
	repo := ref.Context()
	reg := DisplayRegistry(repo.RegistryStr())
	sep := ":"
	if _, ok := ref.(name.Digest); ok {
		sep = "@"
	}
	return reg + "/" + repo.RepositoryStr() + sep + ref.Identifier()
}

// Familiar returns the short form docker shows for ref: Docker Hub's
// "docker.io/library/" and "docker.io/" prefixes are dropped
// ("docker.io/library/foo:latest" is "foo:latest", "docker.io/bar/foo:1" is
// "bar/foo:1"); references to other registries are returned normalised.
func Familiar(ref name.Reference) string {
	s := String(ref)
	if rest, ok := strings.CutPrefix(s, dockerHubDomain+"/"); ok {
		if short, ok := strings.CutPrefix(rest, "library/"); ok && !strings.Contains(repoPart(short), "/") {
			return short
		}
		if looksLikeHost(strings.SplitN(rest, "/", 2)[0]) {
			return s // "docker.io/0.0/x" must keep its registry, or "0.0" would become one
		}
		return rest
	}
	return s
}

// looksLikeHost reports whether the first component of a reference would be
// read as a registry host, as docker decides it: it has a dot or a colon,
// or is localhost.
func looksLikeHost(c string) bool {
	return strings.ContainsAny(c, ".:") || c == "localhost"
}

// repoPart returns the repository part of a familiar reference string,
// without its tag or digest.
func repoPart(s string) string {
	if i := strings.IndexAny(s, ":@"); i >= 0 {
		return s[:i]
	}
	return s
}

// DisplayRegistry spells a registry host the way users see it: any Docker
// Hub alias becomes "docker.io", everything else is unchanged.
func DisplayRegistry(host string) string {
	if HubAliases[host] {
		return dockerHubDomain
	}
	return host
}

// FamiliarString is Familiar for a reference held as a string; a string that
// does not parse is returned unchanged.
func FamiliarString(s string) string {
	ref, err := Parse(s)
	if err != nil {
		return s
	}
	return Familiar(ref)
}
