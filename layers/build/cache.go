package build

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/drove-project/drove/internal/atomicfile"
)

// cache remembers which layer a build step produced, so an unchanged step
// is not run again. Two maps, one small file per entry under dir:
//
//	steps/<key>   step key → layer. The key chains the parent step's key,
//	              the instruction and a content hash of its inputs.
//	inputs/<fp>   fingerprint of COPY sources' metadata (path, size, mtime,
//	              inode, mode) → their content hash, so a warm rebuild of a
//	              large context stats its files instead of reading them.
//
// Entries are written atomically; a layer entry whose blob has gone from
// the store (pruned) is a miss.
type cache struct {
	dir string
}

// cachedLayer is what a step produced. Empty means the step changed no file.
type cachedLayer struct {
	Empty bool `json:"empty,omitempty"`
	// omitzero: an empty step has no layer, and a zero v1.Hash encodes as
	// "" which does not decode, so the entry would never be reused.
	Layer  v1.Descriptor `json:"layer,omitzero"`
	DiffID v1.Hash       `json:"diffID,omitzero"`
	// Notes are what Options.RunHook asked to keep with a RUN step (the
	// images it pulled), handed back when the step is reused.
	Notes []string `json:"notes,omitempty"`
}

func openCache(dir string) (*cache, error) {
	for _, d := range []string{"steps", "inputs"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, fmt.Errorf("create build cache: %w", err)
		}
	}
	return &cache{dir: dir}, nil
}

func (c *cache) get(kind, key string, v any) bool {
	b, err := os.ReadFile(filepath.Join(c.dir, kind, key))
	if err != nil {
		return false
	}
	return json.Unmarshal(b, v) == nil
}

func (c *cache) put(kind, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(c.dir, kind, key), b, 0o644)
}

// layers lists every layer blob the cache points at, so pruning the store
// can keep them.
func (c *cache) layers() (map[v1.Hash]bool, error) {
	ents, err := os.ReadDir(filepath.Join(c.dir, "steps"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := map[v1.Hash]bool{}
	for _, e := range ents {
		var l cachedLayer
		if c.get("steps", e.Name(), &l) && !l.Empty {
			out[l.Layer.Digest] = true
		}
	}
	return out, nil
}

// KeepFunc returns a predicate for store.Prune that keeps the build cache's
// layers under the build work directory workDir.
func KeepFunc(workDir string) (func(v1.Hash) bool, error) {
	c := &cache{dir: filepath.Join(workDir, "cache")}
	keep, err := c.layers()
	if err != nil {
		return nil, fmt.Errorf("read build cache: %w", err)
	}
	return func(h v1.Hash) bool { return keep[h] }, nil
}

// keyOf hashes its parts into a cache key; parts are length-prefixed so
// ("ab","c") and ("a","bc") differ.
func keyOf(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s;", len(p), p)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// mapKey renders a map in a stable order for keyOf.
func mapKey(m map[string]string) string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	b, _ := json.Marshal(ks)
	s := string(b)
	for _, k := range ks {
		s += "\x00" + k + "=" + m[k]
	}
	return s
}
