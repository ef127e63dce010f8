package collect

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/drove-project/drove/imagecache/ocilayout"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func TestPrepareLayoutRefusesInvalidIndex(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "index.json"), []byte(`{"schemaVersion":2,"manifests":[{"size":1}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := prepareLayout(dir)
	if !errors.Is(err, ocilayout.ErrInvalidIndex) || !strings.Contains(err.Error(), filepath.Join(dir, "index.json")) {
		t.Fatalf("prepareLayout = %v, want ErrInvalidIndex naming index.json", err)
	}
}

func TestPrepareLayoutChecksVersion(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"2.0.0"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := prepareLayout(dir)
	if err == nil || !strings.Contains(err.Error(), `"2.0.0"`) || !strings.Contains(err.Error(), "oci-layout") {
		t.Fatalf("prepareLayout = %v, want an error naming oci-layout and the version", err)
	}
}

func TestMergeEntries(t *testing.T) {
	e := func(name, hex string) v1.Descriptor {
		d := v1.Descriptor{MediaType: types.OCIManifestSchema1, Digest: v1.Hash{Algorithm: "sha256", Hex: strings.Repeat(hex, 64)}, Size: 1}
		if name != "" {
			d.Annotations = map[string]string{ocilayout.ImageNameAnnotation: name}
		}
		return d
	}
	old := []v1.Descriptor{e("base", "a"), e("", "b"), e("app", "c")}
	add := []v1.Descriptor{e("new", "d"), e("app", "e")}
	got := mergeEntries(old, add)
	want := []v1.Descriptor{e("base", "a"), e("", "b"), e("app", "e"), e("new", "d")}
	if !slices.EqualFunc(got, want, func(a, b v1.Descriptor) bool { return a.Digest == b.Digest }) {
		t.Errorf("mergeEntries = %v, want %v", got, want)
	}
}

func TestWriteIndexRoundTrip(t *testing.T) {
	dir := t.TempDir()
	idx := &v1.IndexManifest{Annotations: map[string]string{"kept": "yes"}, Manifests: []v1.Descriptor{{
		MediaType: types.DockerManifestSchema2, Digest: v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("f", 64)}, Size: 9,
		Annotations: map[string]string{ocilayout.ImageNameAnnotation: "docker.io/library/nginx:1.25", ocilayout.RefNameAnnotation: "1.25"},
	}}}
	if err := writeIndex(dir, idx); err != nil {
		t.Fatal(err)
	}
	back, err := ocilayout.ReadIndex(dir)
	if err != nil {
		t.Fatal(err)
	}
	if back.MediaType != types.OCIImageIndex || back.Annotations["kept"] != "yes" || len(back.Manifests) != 1 ||
		back.Manifests[0].Annotations[ocilayout.RefNameAnnotation] != "1.25" || back.Manifests[0].MediaType != types.DockerManifestSchema2 {
		t.Errorf("round trip gave %+v", back)
	}
	assertNoTemps(t, dir)
}
