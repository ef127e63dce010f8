package mirror

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/drove-project/drove/imagecache/ocilayout"
	"github.com/drove-project/drove/layers/reference"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// maxManifestSize bounds a manifest or index the mirrors read into memory.
const maxManifestSize = 4 << 20

// layoutEntry is one named image of a layout's index.json.
type layoutEntry struct {
	repo repoName
	// tag is empty for an image named by digest only.
	tag  string
	desc v1.Descriptor
}

// layoutEntries returns the entries of a layout's index.json that name an
// image with the io.containerd.image.name annotation. Entries without the
// annotation are ignored; entries whose annotation, media type or size the
// mirror cannot serve are left out and described in skipped.
func layoutEntries(manifests []v1.Descriptor) (entries []layoutEntry, skipped []string) {
	for i, d := range manifests {
		ann, ok := d.Annotations[ocilayout.ImageNameAnnotation]
		if !ok {
			continue
		}
		e, err := layoutEntryOf(ann, d)
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("manifests[%d] %q: %v", i, ann, err))
			continue
		}
		entries = append(entries, e)
	}
	return entries, skipped
}

// layoutEntryOf checks one index.json descriptor named ann.
func layoutEntryOf(ann string, d v1.Descriptor) (layoutEntry, error) {
	if !d.MediaType.IsImage() && !d.MediaType.IsIndex() {
		return layoutEntry{}, fmt.Errorf("media type %q is not an image manifest or index", d.MediaType)
	}
	if d.Size <= 0 || d.Size > maxManifestSize {
		return layoutEntry{}, fmt.Errorf("manifest size %d is outside 1..%d", d.Size, maxManifestSize)
	}
	ref, err := reference.Parse(ann)
	if err != nil {
		return layoutEntry{}, err
	}
	e := layoutEntry{
		repo: repoName{host: normalizeHost(ref.Context().RegistryStr()), path: ref.Context().RepositoryStr()},
		desc: d,
	}
	switch r := ref.(type) {
	case name.Tag:
		e.tag = r.TagStr()
	case name.Digest:
		if r.DigestStr() != d.Digest.String() {
			return layoutEntry{}, fmt.Errorf("names digest %s but the entry is %s", r.DigestStr(), d.Digest)
		}
	}
	return e, nil
}

// layoutDir is one OCI image layout directory and its named images.
type layoutDir struct {
	dir     string
	entries []layoutEntry
}

// blobPath is where a layout keeps the blob d.
func (l layoutDir) blobPath(d v1.Hash) string {
	return filepath.Join(l.dir, "blobs", d.Algorithm, d.Hex)
}

// has reports whether the layout names any image of repo.
func (l layoutDir) has(repo repoName) bool {
	for _, e := range l.entries {
		if e.repo == repo {
			return true
		}
	}
	return false
}

// indexCache keeps each layout's parsed index.json until the file changes.
type indexCache struct {
	mu    sync.Mutex
	byDir map[string]cachedIndex
}

// cachedIndex is what was read from one index.json, and the file state it
// came from (size -1: the file could not be examined).
type cachedIndex struct {
	size    int64
	modTime time.Time
	entries []layoutEntry
	err     error
}

// load returns the layouts in dirs, in order, leaving out those whose
// index.json cannot be read. Problems are reported through problem once per
// change of the file, not on every call. Dirs no longer asked for are
// dropped from the cache.
func (c *indexCache) load(dirs []string, problem func(dir, msg string)) []layoutDir {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byDir == nil {
		c.byDir = map[string]cachedIndex{}
	}
	keep := make(map[string]bool, len(dirs))
	out := make([]layoutDir, 0, len(dirs))
	for _, dir := range dirs {
		keep[dir] = true
		ci := c.read(dir, problem)
		if ci.err != nil {
			continue
		}
		out = append(out, layoutDir{dir: dir, entries: ci.entries})
	}
	for dir := range c.byDir {
		if !keep[dir] {
			delete(c.byDir, dir)
		}
	}
	return out
}

// read returns dir's index, parsing index.json again only when its size or
// modification time changed. The caller holds c.mu.
func (c *indexCache) read(dir string, problem func(dir, msg string)) cachedIndex {
	path := filepath.Join(dir, ocilayout.IndexFile)
	prev, cached := c.byDir[dir]
	fi, err := os.Stat(path)
	if err != nil {
		ci := cachedIndex{size: -1, err: fmt.Errorf("read OCI layout: %w", err)}
		if !cached || prev.size != -1 {
			problem(dir, ci.err.Error())
		}
		c.byDir[dir] = ci
		return ci
	}
	if cached && prev.size == fi.Size() && prev.modTime.Equal(fi.ModTime()) {
		return prev
	}
	ci := cachedIndex{size: fi.Size(), modTime: fi.ModTime()}
	if idx, err := ocilayout.ReadIndex(dir); err != nil {
		ci.err = err
		problem(dir, err.Error())
	} else {
		var skipped []string
		ci.entries, skipped = layoutEntries(idx.Manifests)
		for _, s := range skipped {
			problem(dir, path+": "+s)
		}
	}
	c.byDir[dir] = ci
	return ci
}
