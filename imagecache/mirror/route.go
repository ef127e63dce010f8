package mirror

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// routeKind is what a distribution API path asks for.
type routeKind int

const (
	routeBase     routeKind = iota // /v2/
	routeManifest                  // /v2/<name>/manifests/<ref>
	routeBlob                      // /v2/<name>/blobs/<digest>
	routeTags                      // /v2/<name>/tags/list
)

// maxNameLen bounds the repository name part of a request path.
const maxNameLen = 512

// route is a parsed distribution API path.
type route struct {
	kind routeKind
	// name is the repository name as requested, possibly starting with a
	// registry host element (see locate).
	name string
	// tag is set for a manifest asked for by tag.
	tag string
	// digest is set for a manifest asked for by digest, and for a blob.
	digest v1.Hash
}

// tagPattern is docker's tag grammar.
var tagPattern = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)

// parseRoute reads a request path of the read-only distribution API. ok is
// false for any other path (uploads, catalog, malformed names).
func parseRoute(p string) (r route, ok bool) {
	if p == "/v2" || p == "/v2/" {
		return route{kind: routeBase}, true
	}
	rest, found := strings.CutPrefix(p, "/v2/")
	if !found {
		return route{}, false
	}
	if name, found := strings.CutSuffix(rest, "/tags/list"); found {
		if !validName(name) {
			return route{}, false
		}
		return route{kind: routeTags, name: name}, true
	}
	if i := strings.LastIndex(rest, "/manifests/"); i > 0 {
		name, ref := rest[:i], rest[i+len("/manifests/"):]
		if !validName(name) {
			return route{}, false
		}
		if tagPattern.MatchString(ref) {
			return route{kind: routeManifest, name: name, tag: ref}, true
		}
		d, err := v1.NewHash(ref)
		if err != nil {
			return route{}, false
		}
		return route{kind: routeManifest, name: name, digest: d}, true
	}
	if i := strings.LastIndex(rest, "/blobs/"); i > 0 {
		name, ref := rest[:i], rest[i+len("/blobs/"):]
		if !validName(name) {
			return route{}, false
		}
		d, err := v1.NewHash(ref)
		if err != nil {
			return route{}, false
		}
		return route{kind: routeBlob, name: name, digest: d}, true
	}
	return route{}, false
}

// validName reports whether a requested name has the shape of a repository
// name: non-empty '/'-separated elements, none "." or "..". Whether the
// elements are valid is decided by locate.
func validName(name string) bool {
	if name == "" || len(name) > maxNameLen {
		return false
	}
	for _, e := range strings.Split(name, "/") {
		if e == "" || e == "." || e == ".." {
			return false
		}
	}
	return true
}

// locate interprets a requested repository name and the ns query parameter
// as the repositories the client may mean, most likely first:
//
//   - ns set (containerd's mirror style): the name in registry ns;
//   - the first element names a registry (registries.conf style): the rest
//     of the name in that registry, then the whole name in Docker Hub;
//   - otherwise: the name in Docker Hub.
//
// Docker Hub paths of one component gain "library/". Names whose path is
// not a valid repository path are dropped, so the result may be empty.
func locate(name, ns string) []repoName {
	var cands []repoName
	switch first, rest, hasRest := strings.Cut(name, "/"); {
	case ns != "":
		if h, err := canonicalRegistry(ns); err == nil {
			cands = append(cands, repoName{host: h, path: name})
		}
	case hasRest:
		if h, ok := hostElement(first); ok {
			cands = append(cands, repoName{host: h, path: rest})
		}
		cands = append(cands, repoName{host: hubHost, path: name})
	default:
		cands = append(cands, repoName{host: hubHost, path: name})
	}
	out := cands[:0]
	for _, c := range cands {
		c = expandHub(c)
		if validRepoPath(c.path) {
			out = append(out, c)
		}
	}
	return out
}

// request is the part of answering a request both mirrors share: refuse
// writes, parse the path, answer the base endpoint. It returns the route
// and the candidate repositories the name may mean, or ok false when the
// request has been answered already.
func request(w http.ResponseWriter, r *http.Request) (rt route, cands []repoName, ok bool) {
	if readOnly(w, r) {
		return route{}, nil, false
	}
	rt, ok = parseRoute(r.URL.Path)
	if !ok {
		writeError(w, r, http.StatusNotFound, codeUnsupported, "not a read-only distribution API path: "+r.URL.Path)
		return route{}, nil, false
	}
	if rt.kind == routeBase {
		writeBase(w, r)
		return route{}, nil, false
	}
	cands = locate(rt.name, r.URL.Query().Get("ns"))
	if len(cands) == 0 {
		writeError(w, r, http.StatusBadRequest, codeNameInvalid, fmt.Sprintf("invalid repository name %q", rt.name))
		return route{}, nil, false
	}
	return rt, cands, true
}
