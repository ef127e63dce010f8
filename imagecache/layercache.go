package imagecache

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/drove-project/drove/imagecache/collect"
	"github.com/drove-project/drove/internal/atomicfile"
	"github.com/drove-project/drove/layers/extension"
	"github.com/drove-project/drove/layers/store"
)

// cachedLayer is a container-image layer as the build cache keeps it.
type cachedLayer struct {
	Layer  v1.Descriptor              `json:"layer"`
	DiffID v1.Hash                    `json:"diffID"`
	Images []extension.ContainerImage `json:"images"`
}

// layerKey names the cache layer of an image: the same rootfs (its layers'
// diff IDs, which unlike the manifest do not change with the build time),
// platform and requested images give the same layer, as a RUN step with
// the same inputs gives the same layer. Like Docker's RUN cache, a tag
// that moved upstream is not noticed: --no-cache pulls again.
func layerKey(cfg *v1.ConfigFile, plat *v1.Platform, reqs []collect.Request) string {
	h := sha256.New()
	h.Write([]byte("drove container images v1\n" + plat.String() + "\n"))
	for _, d := range cfg.RootFS.DiffIDs {
		h.Write([]byte(d.String() + "\n"))
	}
	refs := make([]string, 0, len(reqs))
	for _, r := range reqs {
		refs = append(refs, r.Ref+"|"+r.AppName)
	}
	slices.Sort(refs)
	for _, r := range refs {
		h.Write([]byte(r + "\n"))
	}
	return hex.EncodeToString(h.Sum(nil))
}

func (o Options) cacheFile(key string) string {
	return filepath.Join(o.WorkDir, "cache", "container-images", key)
}

// lookup finds the layer an earlier build made for key, if the store
// still holds it.
func (o Options) lookup(s *store.Store, key string) (cachedLayer, bool) {
	if o.NoCache || o.WorkDir == "" {
		return cachedLayer{}, false
	}
	b, err := os.ReadFile(o.cacheFile(key))
	if err != nil {
		return cachedLayer{}, false
	}
	var cl cachedLayer
	if json.Unmarshal(b, &cl) != nil || !s.HasBlob(cl.Layer.Digest) {
		return cachedLayer{}, false
	}
	return cl, true
}

// remember records the layer made for key; a failure to record only costs
// a later build the pulls.
func (o Options) remember(key string, cl cachedLayer) {
	if o.WorkDir == "" {
		return
	}
	b, err := json.Marshal(cl)
	if err != nil {
		return
	}
	if err := os.MkdirAll(filepath.Dir(o.cacheFile(key)), 0o755); err != nil {
		o.Log.Warn("container image layer not cached", "err", err)
		return
	}
	if err := atomicfile.WriteFile(o.cacheFile(key), b, 0o644); err != nil {
		o.Log.Warn("container image layer not cached", "err", err)
	}
}
