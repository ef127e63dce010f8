package mirror

import (
	"log/slog"
	"net/http"
	"sort"
	"sync"

	"github.com/drove-project/drove/layers/reference"
	"github.com/drove-project/drove/layers/registry"
	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// RecorderOptions configure a Recorder.
type RecorderOptions struct {
	// Registry says how upstream registries are reached: the auth file,
	// Insecure, and the base Transport. Loopback registries are reached
	// over plain HTTP without Insecure. Platform and Progress are not used.
	Registry registry.Options
	// Auth gives credentials per registry host ("docker.io", "quay.io",
	// "127.0.0.1:5000"); an entry wins over the auth file.
	Auth map[string]authn.Authenticator
	// Log receives each recorded image and upstream failures; nil discards.
	Log *slog.Logger
}

// Recorder is a pull-through registry mirror for build steps: it fetches
// every request from the upstream registry the request names, passes the
// answer back unchanged (manifests byte for byte, blobs streamed), and
// records each image pulled. It is an http.Handler; requests name the
// upstream registry as the package documentation describes.
type Recorder struct {
	up  upstreams
	log *slog.Logger

	mu sync.Mutex
	// tagged maps a manifest digest to the tag it was resolved from.
	tagged map[repoName]map[v1.Hash]string
	// covered holds manifests listed in an index that was pulled: a tag
	// or digest reference to the index already names them.
	covered map[repoName]map[v1.Hash]bool
	// byTag and byDigest are the pulls since the last Take.
	byTag    map[repoName]map[string]bool
	byDigest map[repoName]map[v1.Hash]bool
}

// NewRecorder returns a Recorder that has recorded nothing.
func NewRecorder(o RecorderOptions) *Recorder {
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Recorder{
		up:       upstreams{opts: o.Registry, auth: o.Auth},
		log:      log,
		tagged:   map[repoName]map[v1.Hash]string{},
		covered:  map[repoName]map[v1.Hash]bool{},
		byTag:    map[repoName]map[string]bool{},
		byDigest: map[repoName]map[v1.Hash]bool{},
	}
}

// Take returns the images pulled since the last Take, as normalised
// references ("docker.io/library/nginx:1.25", "quay.io/a/b@sha256:…"),
// sorted and without duplicates. A manifest fetched by tag is recorded by
// its tag; one fetched by digest by its digest, unless a tag recorded
// resolved to it or it is listed in an index pulled before (the reference
// to the index then covers it). What Take returned is forgotten.
func (r *Recorder) Take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	set := map[string]bool{}
	for repo, tags := range r.byTag {
		for tag := range tags {
			set[normalizedRef(repo, ":"+tag)] = true
		}
	}
	for repo, ds := range r.byDigest {
		for d := range ds {
			if _, ok := r.tagged[repo][d]; ok || r.covered[repo][d] {
				continue
			}
			set[normalizedRef(repo, "@"+d.String())] = true
		}
	}
	r.byTag = map[repoName]map[string]bool{}
	r.byDigest = map[repoName]map[v1.Hash]bool{}
	out := make([]string, 0, len(set))
	for s := range set {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// normalizedRef spells repo with suffix (":tag" or "@digest") as
// reference.Normalize does.
func normalizedRef(repo repoName, suffix string) string {
	s := repo.String() + suffix
	if n, err := reference.Normalize(s); err == nil {
		return n
	}
	return s
}

// noteResolved remembers that tag of repo names manifest d (a HEAD, or
// the start of a GET).
func (r *Recorder) noteResolved(repo repoName, tag string, d v1.Hash) {
	r.mu.Lock()
	defer r.mu.Unlock()
	setIn(r.tagged, repo, d, tag)
}

// notePulled records a manifest GET: by tag when tag is set, else by
// digest d (resolved to a tag earlier, covered by an index, or on its own).
// children are the manifests d lists when it is an index.
func (r *Recorder) notePulled(repo repoName, tag string, d v1.Hash, children []v1.Descriptor) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if tag == "" {
		tag = r.tagged[repo][d]
	} else {
		setIn(r.tagged, repo, d, tag)
	}
	for _, c := range children {
		setIn(r.covered, repo, c.Digest, true)
	}
	switch {
	case tag != "":
		if !r.byTag[repo][tag] {
			r.log.Info("image pulled through the build mirror", "image", normalizedRef(repo, ":"+tag))
		}
		setIn(r.byTag, repo, tag, true)
	case !r.covered[repo][d]:
		if !r.byDigest[repo][d] {
			r.log.Info("image pulled through the build mirror", "image", normalizedRef(repo, "@"+d.String()))
		}
		setIn(r.byDigest, repo, d, true)
	}
}

// setIn sets m[repo][k] = v, creating the inner map.
func setIn[K comparable, V any](m map[repoName]map[K]V, repo repoName, k K, v V) {
	inner, ok := m[repo]
	if !ok {
		inner = map[K]V{}
		m[repo] = inner
	}
	inner[k] = v
}

// ServeHTTP proxies one read-only distribution API request upstream.
func (r *Recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	rt, cands, ok := request(w, req)
	if !ok {
		return
	}
	repo := cands[0]
	up, err := r.up.get(req.Context(), repo)
	if err != nil {
		r.upstreamFailed(w, req, repo, err)
		return
	}
	switch rt.kind {
	case routeManifest:
		r.proxyManifest(w, req, repo, up, rt)
	case routeBlob:
		r.proxyStream(w, req, repo, up, "blobs", rt.digest.String())
	case routeTags:
		r.proxyStream(w, req, repo, up, "tags", "list")
	}
}
