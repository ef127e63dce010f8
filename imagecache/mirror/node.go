package mirror

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// NodeOptions configure a node mirror.
type NodeOptions struct {
	// Layouts returns the OCI image layout directories to serve, newest
	// first; an image named in several is served from the first. It is
	// called on every request, so layouts unpacked meanwhile
	// (<data>/rootfs/*/container-images) are served at once.
	Layouts func() []string
	// Log receives refused blobs and unreadable layouts; nil discards.
	Log *slog.Logger
}

// node is the read-only distribution endpoint NewNode returns.
type node struct {
	layouts func() []string
	log     *slog.Logger
	indexes indexCache
	verify  verifier

	childMu  sync.Mutex
	children map[v1.Hash][]v1.Descriptor
}

// NewNode returns a read-only OCI distribution endpoint that serves the
// images named (by the io.containerd.image.name annotation) in the OCI
// layouts o.Layouts lists, by their original repository names. Every blob
// and manifest is checked against its digest before it is served; one that
// does not match is refused and logged. See the package documentation for
// how requests name the registry.
func NewNode(o NodeOptions) http.Handler {
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	layouts := o.Layouts
	if layouts == nil {
		layouts = func() []string { return nil }
	}
	return &node{layouts: layouts, log: log, children: map[v1.Hash][]v1.Descriptor{}}
}

// ServeHTTP answers one distribution API request.
func (n *node) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rt, cands, ok := request(w, r)
	if !ok {
		return
	}
	layouts := n.indexes.load(n.layouts(), n.layoutProblem)
	repos := cachedRepos(layouts, cands)
	if len(repos) == 0 {
		writeError(w, r, http.StatusNotFound, codeNameUnknown, fmt.Sprintf("repository %s is not cached on this node", cands[0]))
		return
	}
	switch rt.kind {
	case routeManifest:
		if rt.tag != "" {
			n.serveTag(w, r, layouts, repos, rt.tag)
		} else {
			n.serveManifestDigest(w, r, layouts, repos, rt.digest)
		}
	case routeBlob:
		n.serveBlob(w, r, layouts, repos, rt.digest)
	case routeTags:
		serveTags(w, r, layouts, repos, rt.name)
	}
}

// layoutProblem logs a layout or entry that cannot be served.
func (n *node) layoutProblem(dir, msg string) {
	n.log.Warn("container image layout not fully served", "layout", dir, "problem", msg)
}

// cachedRepos returns the repositories of cands that the layouts hold, in
// the order they are tried. A candidate in the SealerHub alias registry
// stands for its path in any registry: the alias itself first, then Docker
// Hub, then the others in the order found.
func cachedRepos(layouts []layoutDir, cands []repoName) []repoName {
	var out []repoName
	seen := map[repoName]bool{}
	add := func(r repoName) {
		if !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	for _, c := range cands {
		if c.host != SealerHub {
			for _, l := range layouts {
				if l.has(c) {
					add(c)
					break
				}
			}
			continue
		}
		var hub, other []repoName
		for _, l := range layouts {
			for _, e := range l.entries {
				switch {
				case !aliasMatches(e.repo, c.path):
				case e.repo.host == SealerHub:
					add(e.repo)
				case e.repo.host == hubHost:
					hub = append(hub, e.repo)
				default:
					other = append(other, e.repo)
				}
			}
		}
		for _, r := range append(hub, other...) {
			add(r)
		}
	}
	return out
}

// aliasMatches reports whether repo has the path asked for under the alias
// registry; Docker Hub's "library/" may be left out.
func aliasMatches(repo repoName, path string) bool {
	return repo.path == path || (repo.host == hubHost && repo.path == "library/"+path)
}

// serveTag answers a manifest request by tag from the first repository and
// layout that has the tag and a readable, intact manifest.
func (n *node) serveTag(w http.ResponseWriter, r *http.Request, layouts []layoutDir, repos []repoName, tag string) {
	var lastErr error
	for _, repo := range repos {
		for _, l := range layouts {
			for _, e := range l.entries {
				if e.repo != repo || e.tag != tag {
					continue
				}
				body, err := n.readManifest(l, e.desc)
				if err != nil {
					lastErr = err
					continue
				}
				writeManifest(w, r, e.desc, body)
				return
			}
		}
	}
	msg := fmt.Sprintf("manifest %s:%s is not cached on this node", repos[0], tag)
	if lastErr != nil {
		msg = lastErr.Error()
	}
	writeError(w, r, http.StatusNotFound, codeManifestUnknown, msg)
}

// serveManifestDigest answers a manifest request by digest: the digest must
// be a cached image of one of repos, or a manifest listed (at any depth) in
// the index of one.
func (n *node) serveManifestDigest(w http.ResponseWriter, r *http.Request, layouts []layoutDir, repos []repoName, d v1.Hash) {
	var lastErr error
	for _, repo := range repos {
		for _, l := range layouts {
			for _, e := range l.entries {
				if e.repo != repo {
					continue
				}
				desc, ok := n.findManifest(l, e.desc, d, 0)
				if !ok {
					continue
				}
				for _, src := range preferring(layouts, l) {
					body, err := n.readManifest(src, desc)
					if err != nil {
						lastErr = err
						continue
					}
					writeManifest(w, r, desc, body)
					return
				}
			}
		}
	}
	msg := fmt.Sprintf("manifest %s@%s is not cached on this node", repos[0], d)
	if lastErr != nil {
		msg = lastErr.Error()
	}
	writeError(w, r, http.StatusNotFound, codeManifestUnknown, msg)
}

// maxIndexDepth bounds how deep findManifest looks into nested indexes.
const maxIndexDepth = 4

// findManifest returns the descriptor of manifest d if it is root or listed
// below it (root's blob being read from l).
func (n *node) findManifest(l layoutDir, root v1.Descriptor, d v1.Hash, depth int) (v1.Descriptor, bool) {
	if root.Digest == d {
		return root, true
	}
	if !root.MediaType.IsIndex() || depth >= maxIndexDepth {
		return v1.Descriptor{}, false
	}
	for _, c := range n.indexChildren(l, root) {
		if desc, ok := n.findManifest(l, c, d, depth+1); ok {
			return desc, true
		}
	}
	return v1.Descriptor{}, false
}

// indexChildren returns the manifests an index lists, read once per digest.
func (n *node) indexChildren(l layoutDir, idx v1.Descriptor) []v1.Descriptor {
	n.childMu.Lock()
	c, ok := n.children[idx.Digest]
	n.childMu.Unlock()
	if ok {
		return c
	}
	body, err := n.readManifest(l, idx)
	if err != nil {
		return nil
	}
	im, err := v1.ParseIndexManifest(bytes.NewReader(body))
	if err != nil {
		n.log.Warn("container image index cannot be decoded", "layout", l.dir, "digest", idx.Digest, "err", err)
		return nil
	}
	n.childMu.Lock()
	n.children[idx.Digest] = im.Manifests
	n.childMu.Unlock()
	return im.Manifests
}

// preferring returns layouts with first moved to the front.
func preferring(layouts []layoutDir, first layoutDir) []layoutDir {
	out := []layoutDir{first}
	for _, l := range layouts {
		if l.dir != first.dir {
			out = append(out, l)
		}
	}
	return out
}

// errBlobMismatch marks a blob whose bytes do not hash to its digest.
var errBlobMismatch = errors.New("does not match its digest")

// readManifest reads manifest desc from layout l and checks its bytes
// against the digest; a mismatch is logged.
func (n *node) readManifest(l layoutDir, desc v1.Descriptor) ([]byte, error) {
	path := l.blobPath(desc.Digest)
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", desc.Digest, err)
	}
	defer f.Close()
	body, err := io.ReadAll(io.LimitReader(f, maxManifestSize+1))
	if err != nil {
		return nil, fmt.Errorf("read manifest %s: %w", path, err)
	}
	hasher, err := v1.Hasher(desc.Digest.Algorithm)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", desc.Digest, err)
	}
	hasher.Write(body)
	got := fmt.Sprintf("%x", hasher.Sum(nil))
	if got != desc.Digest.Hex || len(body) > maxManifestSize {
		n.log.Error("refusing a manifest whose bytes do not match its digest",
			"digest", desc.Digest, "got", desc.Digest.Algorithm+":"+got, "path", path)
		return nil, fmt.Errorf("manifest %s on this node %w", desc.Digest, errBlobMismatch)
	}
	return body, nil
}

// writeManifest sends a verified manifest with its media type and digest.
func writeManifest(w http.ResponseWriter, r *http.Request, desc v1.Descriptor, body []byte) {
	h := w.Header()
	mt := string(desc.MediaType)
	if mt == "" {
		mt = sniffMediaType(body)
	}
	h.Set("Content-Type", mt)
	h.Set("Docker-Content-Digest", desc.Digest.String())
	h.Set("ETag", `"`+desc.Digest.String()+`"`)
	h.Set(apiVersionHeader, "registry/2.0")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
}

// sniffMediaType returns the mediaType field of a manifest, for a
// descriptor that lacks one.
func sniffMediaType(body []byte) string {
	m, err := v1.ParseManifest(bytes.NewReader(body))
	if err == nil && m.MediaType != "" {
		return string(m.MediaType)
	}
	return "application/vnd.oci.image.manifest.v1+json"
}

// serveBlob answers a blob request from the first layout holding one of
// repos whose copy of the blob is intact.
func (n *node) serveBlob(w http.ResponseWriter, r *http.Request, layouts []layoutDir, repos []repoName, d v1.Hash) {
	mismatch := false
	for _, l := range layouts {
		if !holdsAny(l, repos) {
			continue
		}
		path := l.blobPath(d)
		f, err := os.Open(path)
		if errors.Is(err, fs.ErrNotExist) {
			n.verify.forget(path)
			continue
		}
		if err != nil {
			n.log.Warn("cannot open a cached blob", "path", path, "err", err)
			continue
		}
		ok, err := n.serveBlobFile(w, r, f, path, d)
		f.Close()
		if ok {
			return
		}
		if errors.Is(err, errBlobMismatch) {
			mismatch = true
		} else if err != nil {
			n.log.Warn("cannot verify a cached blob", "path", path, "err", err)
		}
	}
	msg := fmt.Sprintf("blob %s is not cached on this node for %s", d, repos[0])
	if mismatch {
		msg = fmt.Sprintf("blob %s on this node does not match its digest", d)
	}
	writeError(w, r, http.StatusNotFound, codeBlobUnknown, msg)
}

// serveBlobFile verifies the open blob file f and, when it matches d,
// sends it (ranges included). ok reports whether it was sent.
func (n *node) serveBlobFile(w http.ResponseWriter, r *http.Request, f *os.File, path string, d v1.Hash) (ok bool, err error) {
	fi, err := f.Stat()
	if err != nil {
		return false, fmt.Errorf("stat %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return false, fmt.Errorf("blob %s is not a regular file", path)
	}
	match, got, err := n.verify.check(f, fi, path, d)
	if err != nil {
		return false, err
	}
	if !match {
		n.log.Error("refusing a blob whose bytes do not match its digest", "digest", d, "got", got, "path", path)
		return false, errBlobMismatch
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Docker-Content-Digest", d.String())
	h.Set("ETag", `"`+d.String()+`"`)
	h.Set(apiVersionHeader, "registry/2.0")
	http.ServeContent(w, r, "", time.Time{}, io.NewSectionReader(f, 0, fi.Size()))
	return true, nil
}

// holdsAny reports whether l names an image of any of repos.
func holdsAny(l layoutDir, repos []repoName) bool {
	for _, repo := range repos {
		if l.has(repo) {
			return true
		}
	}
	return false
}
