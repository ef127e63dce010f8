package importer

import (
	"errors"
	"maps"
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/platforms"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestGCLabelsNumberLikeContainerd(t *testing.T) {
	got := gcLabels([]ocispec.Descriptor{
		{MediaType: ocispec.MediaTypeImageConfig, Digest: d1},
		{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: d2},
		{MediaType: "application/vnd.docker.image.rootfs.diff.tar.gzip", Digest: d1},
		{MediaType: ocispec.MediaTypeImageManifest, Digest: d2},
		{MediaType: "application/vnd.example.other", Digest: d1},
	})
	want := map[string]string{
		"containerd.io/gc.ref.content.config": d1,
		"containerd.io/gc.ref.content.l.0":    d2,
		"containerd.io/gc.ref.content.l.1":    d1,
		"containerd.io/gc.ref.content.m.0":    d2,
		"containerd.io/gc.ref.content.0":      d1,
	}
	if !maps.Equal(got, want) {
		t.Errorf("gcLabels = %v, want %v", got, want)
	}
}

// writeLayout writes idx whole into a new layout and returns its dir and
// the index descriptor.
func writeLayout(t *testing.T, idx v1.ImageIndex) (string, ocispec.Descriptor) {
	t.Helper()
	dir := t.TempDir()
	l, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.AppendIndex(idx); err != nil {
		t.Fatal(err)
	}
	d, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	size, err := idx.Size()
	if err != nil {
		t.Fatal(err)
	}
	mt, err := idx.MediaType()
	if err != nil {
		t.Fatal(err)
	}
	return dir, ocispec.Descriptor{MediaType: string(mt), Digest: digest.Digest(d.String()), Size: size}
}

func TestPlanPicksTheBestManifestOnly(t *testing.T) {
	amd := buildImage(t, types.OCIManifestSchema1, types.OCIConfigJSON, types.OCILayer, "amd64", 1)
	arm := buildImage(t, types.DockerManifestSchema2, types.DockerConfigJSON, types.DockerLayer, "arm64", 2)
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}}},
	)
	dir, top := writeLayout(t, idx)
	for _, tc := range []struct {
		platform string
		img      v1.Image
		blobs    int // config + layers + manifest + index
	}{
		{"linux/amd64", amd, 4},
		{"linux/arm64", arm, 5},
	} {
		p, err := planImage(dir, top, platforms.Only(platforms.MustParse(tc.platform)))
		if err != nil {
			t.Fatalf("%s: %v", tc.platform, err)
		}
		if len(p.Blobs) != tc.blobs {
			t.Errorf("%s: %d blobs, want %d", tc.platform, len(p.Blobs), tc.blobs)
		}
		want := digestOf(t, tc.img).String()
		last := p.Blobs[len(p.Blobs)-1]
		if last.Desc.Digest != top.Digest || last.Labels["containerd.io/gc.ref.content.m.0"] != want || len(last.Labels) != 1 {
			t.Errorf("%s: index blob %s labels %v, want only m.0=%s", tc.platform, last.Desc.Digest, last.Labels, want)
		}
		// Children come before their parents.
		if m := p.Blobs[len(p.Blobs)-2]; m.Desc.Digest.String() != want || m.Labels["containerd.io/gc.ref.content.config"] == "" {
			t.Errorf("%s: blob before the index is %s labels %v", tc.platform, m.Desc.Digest, m.Labels)
		}
	}
}

func TestPlanRejects(t *testing.T) {
	img := buildImage(t, types.OCIManifestSchema1, types.OCIConfigJSON, types.OCILayer, "riscv64", 1)
	// A child listed without a platform is judged by its config.
	idx := mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{}})
	dir, top := writeLayout(t, idx)
	if _, err := planImage(dir, top, platforms.Only(platforms.MustParse("linux/amd64"))); !errors.Is(err, ErrNoPlatform) {
		t.Errorf("foreign config behind a platform-less child: err = %v, want ErrNoPlatform", err)
	}
	if _, err := planImage(dir, top, platforms.Only(platforms.MustParse("linux/riscv64"))); err != nil {
		t.Errorf("matching config: %v", err)
	}

	// A manifest whose bytes do not match its digest is caught before
	// it is parsed.
	md := digestOf(t, img)
	path := filepath.Join(dir, "blobs", md.Algorithm, md.Hex)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[0] = ' '
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = planImage(dir, top, platforms.Only(platforms.MustParse("linux/riscv64")))
	if !errors.Is(err, ErrDigestMismatch) {
		t.Errorf("tampered manifest: err = %v, want ErrDigestMismatch", err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	_, err = planImage(dir, top, platforms.Only(platforms.MustParse("linux/riscv64")))
	if !errors.Is(err, ErrInvalidLayout) {
		t.Errorf("missing manifest: err = %v, want ErrInvalidLayout", err)
	}
}

func TestPlanNestedIndex(t *testing.T) {
	img := buildImage(t, types.OCIManifestSchema1, types.OCIConfigJSON, types.OCILayer, "amd64", 1)
	inner := mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}})
	outer := mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: inner})
	dir, top := writeLayout(t, outer)
	p, err := planImage(dir, top, platforms.Only(platforms.MustParse("linux/amd64")))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Blobs) != 5 || p.Platform.Architecture != "amd64" {
		t.Errorf("nested: %d blobs, platform %v; want 5 blobs for amd64", len(p.Blobs), p.Platform)
	}
}

// FuzzDecodeManifest feeds the manifest, index and config decoders the
// same bytes: none may panic, and a decoded manifest's descriptors are
// valid.
func FuzzDecodeManifest(f *testing.F) {
	f.Add([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` + d1 + `","size":2},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"` + d2 + `","size":3}]}`))
	f.Add([]byte(`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + d1 + `","size":2,"platform":{"os":"linux","architecture":"arm64","variant":"v8"}}]}`))
	f.Add([]byte(`{"os":"linux","architecture":"amd64","rootfs":{"type":"layers","diff_ids":[]}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if m, err := decodeManifest(b); err == nil {
			if m.Config.Digest.Validate() != nil {
				t.Fatalf("invalid config digest %q accepted", m.Config.Digest)
			}
			for _, l := range m.Layers {
				if l.Digest.Validate() != nil || l.Size < 0 {
					t.Fatalf("invalid layer %+v accepted", l)
				}
			}
		}
		if idx, err := decodeIndexBlob(b); err == nil {
			for _, c := range idx.Manifests {
				if c.Digest.Validate() != nil {
					t.Fatalf("invalid child digest %q accepted", c.Digest)
				}
			}
			_ = listPlatforms(idx.Manifests)
		}
		_, _ = decodeConfigPlatform(b)
	})
}
