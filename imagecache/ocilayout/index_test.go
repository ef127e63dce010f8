package ocilayout

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

const goodDigest = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// writeIndex writes content as dir/index.json.
func writeIndex(t *testing.T, dir, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, IndexFile), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestReadIndex(t *testing.T) {
	tests := []struct {
		name    string
		content string
		want    int      // entries
		wantErr []string // all in the error, which must match ErrInvalidIndex
	}{
		{name: "empty index", content: `{"schemaVersion":2,"manifests":[]}`, want: 0},
		{name: "no manifests", content: `{"schemaVersion":2}`, want: 0},
		{name: "one entry", content: `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + goodDigest + `","size":7,"annotations":{"io.containerd.image.name":"docker.io/library/x:1"}}]}`, want: 1},
		{name: "unnamed and docker entries", content: `{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","digest":"` + goodDigest + `","size":7},{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"` + goodDigest + `","size":0}]}`, want: 2},
		{name: "empty file", content: ``, wantErr: []string{"index.json", "unexpected end"}},
		{name: "truncated", content: `{"schemaVersion":2,"manifests":[`, wantErr: []string{"index.json", "unexpected end"}},
		{name: "not JSON", content: `schemaVersion: 2`, wantErr: []string{"index.json", "invalid JSON at byte 1"}},
		{name: "array", content: `[]`, wantErr: []string{"index.json", "cannot unmarshal array"}},
		{name: "wrong schema", content: `{"schemaVersion":1}`, wantErr: []string{"schemaVersion is 1, want 2"}},
		{name: "no schema", content: `{"manifests":[]}`, wantErr: []string{"schemaVersion is 0, want 2"}},
		{name: "docker media type", content: `{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json"}`, wantErr: []string{"mediaType is"}},
		{name: "bad digest", content: `{"schemaVersion":2,"manifests":[{"mediaType":"m","digest":"sha256:xyz","size":1}]}`, wantErr: []string{"index.json", `manifests[0]: digest "sha256:xyz"`, "non-hex"}},
		{name: "path in digest", content: `{"schemaVersion":2,"manifests":[{"mediaType":"m","digest":"` + goodDigest + `","size":1},{"mediaType":"m","digest":"sha256:../../etc/passwd","size":1}]}`, wantErr: []string{`manifests[1]: digest "sha256:../../etc/passwd"`}},
		{name: "sha512 digest", content: `{"schemaVersion":2,"manifests":[{"mediaType":"m","digest":"sha512:` + strings.Repeat("a", 128) + `","size":1}]}`, wantErr: []string{"manifests[0]", "sha512"}},
		{name: "short digest", content: `{"schemaVersion":2,"manifests":[{"mediaType":"m","digest":"sha256:00","size":1}]}`, wantErr: []string{"manifests[0]", "wrong number of hex digits"}},
		{name: "no digest", content: `{"schemaVersion":2,"manifests":[{"mediaType":"m","size":1}]}`, wantErr: []string{"manifests[0]: no digest"}},
		{name: "negative size", content: `{"schemaVersion":2,"manifests":[{"mediaType":"m","digest":"` + goodDigest + `","size":-1}]}`, wantErr: []string{"manifests[0]", "negative size"}},
		{name: "no media type", content: `{"schemaVersion":2,"manifests":[{"digest":"` + goodDigest + `","size":1}]}`, wantErr: []string{"manifests[0]", "no mediaType"}},
		{name: "manifests not a list", content: `{"schemaVersion":2,"manifests":{}}`, wantErr: []string{"index.json", "cannot unmarshal"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeIndex(t, dir, tt.content)
			got, err := ReadIndex(dir)
			if len(tt.wantErr) > 0 {
				if !errors.Is(err, ErrInvalidIndex) {
					t.Fatalf("ReadIndex = %v, %v; want an error matching ErrInvalidIndex", got, err)
				}
				for _, w := range append(tt.wantErr, filepath.Join(dir, IndexFile)) {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not mention %q", err, w)
					}
				}
				return
			}
			if err != nil || len(got.Manifests) != tt.want {
				t.Fatalf("ReadIndex = %v, %v; want %d entries", got, err, tt.want)
			}
		})
	}
}

func TestReadIndexMissing(t *testing.T) {
	for _, dir := range []string{t.TempDir(), filepath.Join(t.TempDir(), "nowhere")} {
		_, err := ReadIndex(dir)
		if !errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrInvalidIndex) {
			t.Errorf("ReadIndex(%s) = %v, want fs.ErrNotExist", dir, err)
		}
		names, err := ImageNames(dir)
		if err != nil || names != nil {
			t.Errorf("ImageNames(%s) = %v, %v; want nothing", dir, names, err)
		}
	}
}

func TestReadIndexTooLarge(t *testing.T) {
	dir := t.TempDir()
	writeIndex(t, dir, `{"schemaVersion":2,"manifests":[]}`+strings.Repeat(" ", MaxIndexSize))
	_, err := ReadIndex(dir)
	if !errors.Is(err, ErrInvalidIndex) || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("ReadIndex of an oversized file = %v, want ErrInvalidIndex saying it is too large", err)
	}
}

func TestImageNames(t *testing.T) {
	dir := t.TempDir()
	entry := func(name string) string {
		ann := ""
		if name != "-" {
			ann = `,"annotations":{"` + ImageNameAnnotation + `":"` + name + `","` + RefNameAnnotation + `":"x"}`
		}
		return `{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + goodDigest + `","size":7` + ann + `}`
	}
	writeIndex(t, dir, `{"schemaVersion":2,"manifests":[`+entry("quay.io/a/b:1")+`,`+entry("-")+`,`+entry("")+`,`+entry("docker.io/library/nginx:1.25")+`]}`)
	got, err := ImageNames(dir)
	if want := []string{"quay.io/a/b:1", "docker.io/library/nginx:1.25"}; err != nil || !slices.Equal(got, want) {
		t.Errorf("ImageNames = %q, %v; want %q", got, err, want)
	}
	writeIndex(t, dir, `{"schemaVersion":3}`)
	if _, err := ImageNames(dir); !errors.Is(err, ErrInvalidIndex) {
		t.Errorf("ImageNames of an invalid index = %v, want ErrInvalidIndex", err)
	}
}

// FuzzParseIndex feeds arbitrary index.json contents to ParseIndex. It must
// not panic; an error must name the file; an accepted index must have only
// entries whose digest names a file inside blobs/sha256/, and must read back
// the same after being written out again (collect rewrites index.json).
func FuzzParseIndex(f *testing.F) {
	f.Add([]byte(`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + goodDigest + `","size":7,"annotations":{"io.containerd.image.name":"docker.io/library/nginx:1.25"}}]}`))
	f.Add([]byte(`{"schemaVersion":2}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		idx, err := ParseIndex("index.json", data)
		if err != nil {
			if !errors.Is(err, ErrInvalidIndex) || !strings.Contains(err.Error(), "index.json") {
				t.Fatalf("error %q does not match ErrInvalidIndex or name the file", err)
			}
			return
		}
		for i, d := range idx.Manifests {
			if err := checkEntry(d); err != nil {
				t.Fatalf("accepted an invalid entry %d: %v", i, err)
			}
			p := filepath.Join("/layout", "blobs", d.Digest.Algorithm, d.Digest.Hex)
			if filepath.Dir(p) != "/layout/blobs/sha256" {
				t.Fatalf("digest %q maps to %s", d.Digest, p)
			}
		}
		b, err := json.Marshal(idx)
		if err != nil {
			t.Fatalf("re-encode accepted index: %v", err)
		}
		back, err := ParseIndex("index.json", b)
		if err != nil {
			t.Fatalf("re-read of a written index failed: %v\n%s", err, b)
		}
		if !slices.EqualFunc(back.Manifests, idx.Manifests, sameEntry) {
			t.Fatalf("round trip changed the entries:\n%+v\n%+v", idx.Manifests, back.Manifests)
		}
	})
}

// sameEntry reports whether two entries agree on what readers use.
func sameEntry(a, b v1.Descriptor) bool {
	return a.Digest == b.Digest && a.Size == b.Size && a.MediaType == b.MediaType &&
		a.Annotations[ImageNameAnnotation] == b.Annotations[ImageNameAnnotation]
}
