package collect

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const goodDigest = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

func TestReadIndex(t *testing.T) {
	tests := []struct {
		name    string
		content string // "" leaves index.json absent
		want    int    // entries
		wantErr []string
	}{
		{name: "absent", content: "", want: 0},
		{name: "empty index", content: `{"schemaVersion":2,"manifests":[]}`, want: 0},
		{name: "one entry", content: `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + goodDigest + `","size":7,"annotations":{"io.containerd.image.name":"docker.io/library/x:1"}}]}`, want: 1},
		{name: "truncated", content: `{"schemaVersion":2,"manifests":[`, wantErr: []string{"index.json", "unexpected end"}},
		{name: "not JSON", content: `schemaVersion: 2`, wantErr: []string{"index.json", "invalid JSON at byte 1"}},
		{name: "wrong schema", content: `{"schemaVersion":1}`, wantErr: []string{"schemaVersion is 1, want 2"}},
		{name: "docker media type", content: `{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json"}`, wantErr: []string{"mediaType is"}},
		{name: "bad digest", content: `{"schemaVersion":2,"manifests":[{"mediaType":"m","digest":"sha256:xyz","size":1}]}`, wantErr: []string{"index.json", "non-hex"}},
		{name: "no digest", content: `{"schemaVersion":2,"manifests":[{"mediaType":"m","size":1}]}`, wantErr: []string{"manifests[0]", "not a sha256 digest"}},
		{name: "negative size", content: `{"schemaVersion":2,"manifests":[{"mediaType":"m","digest":"` + goodDigest + `","size":-1}]}`, wantErr: []string{"manifests[0]", "negative size"}},
		{name: "no media type", content: `{"schemaVersion":2,"manifests":[{"digest":"` + goodDigest + `","size":1}]}`, wantErr: []string{"manifests[0]", "no mediaType"}},
		{name: "manifests not a list", content: `{"schemaVersion":2,"manifests":{}}`, wantErr: []string{"index.json", "cannot unmarshal"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.content != "" {
				if err := os.WriteFile(filepath.Join(dir, "index.json"), []byte(tt.content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := ReadIndex(dir)
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatalf("ReadIndex = %v, want an error", got)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not mention %q", err, w)
					}
				}
				return
			}
			if err != nil || len(got) != tt.want {
				t.Fatalf("ReadIndex = %v, %v; want %d entries", got, err, tt.want)
			}
		})
	}
}

func TestReadIndexOfMissingDir(t *testing.T) {
	got, err := ReadIndex(filepath.Join(t.TempDir(), "nowhere"))
	if err != nil || got != nil {
		t.Fatalf("ReadIndex = %v, %v; want nothing", got, err)
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
			d.Annotations = map[string]string{ImageNameAnnotation: name}
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
		Annotations: map[string]string{ImageNameAnnotation: "docker.io/library/nginx:1.25", RefNameAnnotation: "1.25"},
	}}}
	if err := writeIndex(dir, idx); err != nil {
		t.Fatal(err)
	}
	back, err := readIndexFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	if back.MediaType != types.OCIImageIndex || back.Annotations["kept"] != "yes" || len(back.Manifests) != 1 ||
		back.Manifests[0].Annotations[RefNameAnnotation] != "1.25" || back.Manifests[0].MediaType != types.DockerManifestSchema2 {
		t.Errorf("round trip gave %+v", back)
	}
	assertNoTemps(t, dir)
}

// FuzzReadIndex feeds arbitrary index.json contents to the decoder behind
// ReadIndex: it must not panic, and what it accepts must survive being
// written back and read again (Collect rewrites index.json).
func FuzzReadIndex(f *testing.F) {
	f.Add([]byte(`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + goodDigest + `","size":7}]}`))
	f.Add([]byte(`{"schemaVersion":2}`))
	f.Add([]byte(`{"schemaVersion":2,"manifests":[{"digest":"sha256:00","size":1}]}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		idx, err := parseIndex("index.json", data)
		if err != nil {
			if !strings.Contains(err.Error(), "index.json") {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		for i, d := range idx.Manifests {
			if err := checkEntry(d); err != nil {
				t.Fatalf("accepted an invalid entry %d: %v", i, err)
			}
		}
		b, err := json.Marshal(idx)
		if err != nil {
			t.Fatalf("re-encode accepted index: %v", err)
		}
		back, err := parseIndex("index.json", b)
		if err != nil {
			t.Fatalf("re-read of a written index failed: %v\n%s", err, b)
		}
		if len(back.Manifests) != len(idx.Manifests) {
			t.Fatalf("round trip changed the entries: %d, then %d", len(idx.Manifests), len(back.Manifests))
		}
	})
}
