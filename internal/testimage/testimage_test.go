package testimage

import (
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/drove-project/drove/internal/testregistry"
)

func TestImage(t *testing.T) {
	given := Layer(t, 100, types.OCILayer)
	for _, tc := range []struct {
		name      string
		spec      Spec
		given     []v1.Layer
		mt, cfgMT types.MediaType
		layerMTs  []types.MediaType
		platform  *v1.Platform
	}{
		{"oci", Spec{Layers: 2, LayerSize: 512, Arch: "amd64"}, nil,
			types.OCIManifestSchema1, types.OCIConfigJSON, []types.MediaType{types.OCILayer, types.OCILayer},
			&v1.Platform{OS: "linux", Architecture: "amd64"}},
		{"docker", Spec{Layers: 1, LayerSize: 512, Arch: "arm64", Variant: "v8", Docker: true}, nil,
			types.DockerManifestSchema2, types.DockerConfigJSON, []types.MediaType{types.DockerLayer},
			&v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}},
		{"given layers first, no platform", Spec{Layers: 1, LayerSize: 10, Docker: true}, []v1.Layer{given},
			types.DockerManifestSchema2, types.DockerConfigJSON, []types.MediaType{types.OCILayer, types.DockerLayer}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := Image(t, tc.spec, tc.given...)
			m, err := img.Manifest()
			if err != nil {
				t.Fatal(err)
			}
			if m.MediaType != tc.mt || m.Config.MediaType != tc.cfgMT || len(m.Layers) != len(tc.layerMTs) {
				t.Fatalf("manifest %s, config %s, %d layers; want %s, %s, %d", m.MediaType, m.Config.MediaType, len(m.Layers), tc.mt, tc.cfgMT, len(tc.layerMTs))
			}
			for i, l := range m.Layers {
				if l.MediaType != tc.layerMTs[i] {
					t.Errorf("layer %d: %s, want %s", i, l.MediaType, tc.layerMTs[i])
				}
			}
			if tc.given != nil {
				if d, _ := given.Digest(); m.Layers[0].Digest != d {
					t.Errorf("first layer %s, want the given %s", m.Layers[0].Digest, d)
				}
			}
			cf, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if got := cf.Platform(); (got == nil) != (tc.platform == nil) || got != nil && !got.Equals(*tc.platform) {
				t.Errorf("config platform %v, want %v", got, tc.platform)
			}
		})
	}
}

func TestIndex(t *testing.T) {
	idx := Index(t, Spec{Layers: 1, LayerSize: 64}, "amd64", "arm64")
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if im.MediaType != types.OCIImageIndex || len(im.Manifests) != 2 {
		t.Fatalf("index %s of %d manifests, want %s of 2", im.MediaType, len(im.Manifests), types.OCIImageIndex)
	}
	for i, arch := range []string{"amd64", "arm64"} {
		if p := im.Manifests[i].Platform; p == nil || p.OS != "linux" || p.Architecture != arch {
			t.Errorf("entry %d platform %v, want linux/%s", i, p, arch)
		}
	}
	im, err = IndexOf(t, Image(t, Spec{Layers: 1, LayerSize: 64})).IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if p := im.Manifests[0].Platform; p != nil {
		t.Errorf("entry of an image with no platform has platform %v", p)
	}
}

func TestPush(t *testing.T) {
	reg := testregistry.Start(t, testregistry.Opts{})
	for ref, x := range map[string]remote.Taggable{
		reg.Ref("img", ":1"): Image(t, Spec{Layers: 1, LayerSize: 64, Arch: "amd64"}),
		reg.Ref("idx", ":1"): Index(t, Spec{Layers: 1, LayerSize: 64}, "amd64", "arm64"),
	} {
		got := Push(t, ref, x)
		if want, _ := x.(interface{ Digest() (v1.Hash, error) }).Digest(); got != want {
			t.Errorf("Push %s returned %s, want %s", ref, got, want)
		}
		r, err := name.ParseReference(ref, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		desc, err := remote.Head(r)
		if err != nil || desc.Digest != got {
			t.Errorf("registry serves %s as %v (%v), want %s", ref, desc, err, got)
		}
	}
}
