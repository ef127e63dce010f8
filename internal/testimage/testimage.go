package testimage

import (
	"slices"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Spec describes a random image.
type Spec struct {
	// Layers is how many random layers the image has, each a tar of one
	// file of LayerSize bytes.
	Layers    int
	LayerSize int64
	// Arch and Variant are the linux platform the config declares; with
	// Arch empty it declares none.
	Arch, Variant string
	// Docker selects Docker schema 2 media types for the manifest, the
	// config and the random layers; the default is OCI ones.
	Docker bool
}

// Image builds the image s describes. Its layers are layers, then
// s.Layers random ones.
func Image(t testing.TB, s Spec, layers ...v1.Layer) v1.Image {
	t.Helper()
	mt, cfgMT, layerMT := types.OCIManifestSchema1, types.OCIConfigJSON, types.OCILayer
	if s.Docker {
		mt, cfgMT, layerMT = types.DockerManifestSchema2, types.DockerConfigJSON, types.DockerLayer
	}
	layers = slices.Clip(layers) // appending must not write into the caller's array
	for range s.Layers {
		layers = append(layers, Layer(t, s.LayerSize, layerMT))
	}
	img, err := mutate.AppendLayers(mutate.ConfigMediaType(mutate.MediaType(empty.Image, mt), cfgMT), layers...)
	if err != nil {
		t.Fatalf("testimage: append layers: %v", err)
	}
	if s.Arch == "" {
		return img
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatalf("testimage: read config: %v", err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = "linux", s.Arch, s.Variant
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatalf("testimage: set platform: %v", err)
	}
	return img
}

// Layer is a random layer of media type mt: a tar of one file of size
// bytes.
func Layer(t testing.TB, size int64, mt types.MediaType) v1.Layer {
	t.Helper()
	l, err := random.Layer(size, mt)
	if err != nil {
		t.Fatalf("testimage: random layer: %v", err)
	}
	return l
}

// Index is an OCI index of one image per linux architecture, each built
// as s says with s.Arch set to it.
func Index(t testing.TB, s Spec, archs ...string) v1.ImageIndex {
	t.Helper()
	imgs := make([]v1.Image, 0, len(archs))
	for _, arch := range archs {
		s.Arch = arch
		imgs = append(imgs, Image(t, s))
	}
	return IndexOf(t, imgs...)
}

// IndexOf is an OCI index of imgs, each under the platform its config
// declares (none when it declares none).
func IndexOf(t testing.TB, imgs ...v1.Image) v1.ImageIndex {
	t.Helper()
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, img := range imgs {
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatalf("testimage: read config: %v", err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: cf.Platform()}})
	}
	return idx
}

// Push writes x, a v1.Image or a v1.ImageIndex, to ref and returns its
// digest. The registry may speak plain HTTP.
func Push(t testing.TB, ref string, x remote.Taggable, opts ...remote.Option) v1.Hash {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatalf("testimage: %v", err)
	}
	var d v1.Hash
	switch x := x.(type) {
	case v1.ImageIndex:
		if err = remote.WriteIndex(r, x, opts...); err == nil {
			d, err = x.Digest()
		}
	case v1.Image:
		if err = remote.Write(r, x, opts...); err == nil {
			d, err = x.Digest()
		}
	default:
		t.Fatalf("testimage: push %s: %T is neither an image nor an index", ref, x)
	}
	if err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	return d
}
