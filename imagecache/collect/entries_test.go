package collect

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/drove-project/drove/imagecache/ocilayout"
	"github.com/drove-project/drove/layers/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func TestCollectKeepsExistingEntries(t *testing.T) {
	u := startUpstream(t)
	dir := t.TempDir()
	base := v1.Descriptor{
		MediaType:   types.OCIManifestSchema1,
		Digest:      v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("a", 64)},
		Size:        100,
		Annotations: map[string]string{ocilayout.ImageNameAnnotation: "docker.io/library/base:1", ocilayout.RefNameAnnotation: "1"},
	}
	stale := base
	stale.Digest = v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("b", 64)}
	stale.Annotations = map[string]string{ocilayout.ImageNameAnnotation: u.refA, ocilayout.RefNameAnnotation: "a-v1"}
	seed := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{stale, base}}
	b, err := json.Marshal(seed)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "index.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}

	opts := Options{Platforms: []v1.Platform{amd64}, Registry: registry.Options{AuthFile: noAuthFile(t)}}
	if _, err := Collect(context.Background(), dir, []Request{{Ref: u.refA}, {Ref: u.refB}}, opts); err != nil {
		t.Fatalf("Collect: %v", err)
	}
	entries := indexEntries(t, dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Annotations[ocilayout.ImageNameAnnotation])
	}
	if want := []string{u.refA, "docker.io/library/base:1", u.refB}; !slices.Equal(names, want) {
		t.Fatalf("index.json names %v, want %v", names, want)
	}
	if entries[0].Digest != digestOf(t, u.a) {
		t.Errorf("entry for %s has digest %s, want the upstream %s", u.refA, entries[0].Digest, digestOf(t, u.a))
	}
	if entries[1].Digest != base.Digest {
		t.Errorf("inherited entry changed: %+v", entries[1])
	}
}

func TestCollectByDigest(t *testing.T) {
	u := startUpstream(t)
	dir := t.TempDir()
	d := digestOf(t, u.idx)
	ref := u.reg.Ref("multi", "@"+d.String())
	opts := Options{Platforms: []v1.Platform{amd64}, Registry: registry.Options{AuthFile: noAuthFile(t)}}
	got, err := Collect(context.Background(), dir, []Request{{Ref: ref}, {Ref: u.refIdx}}, opts)
	if err != nil {
		t.Fatalf("Collect: %v", err)
	}
	if len(got) != 2 || got[0].Ref != ref || got[0].Digest != d || got[1].Digest != d {
		t.Fatalf("collected %+v, want the index by digest and by tag", got)
	}
	entries := indexEntries(t, dir)
	if len(entries) != 2 || entries[0].Annotations[ocilayout.ImageNameAnnotation] != ref ||
		entries[0].Annotations[ocilayout.RefNameAnnotation] != d.String() || entries[1].Annotations[ocilayout.RefNameAnnotation] != "multi-v1" {
		t.Errorf("index.json entries %+v", entries)
	}
}
