package mirror

import (
	"strings"
	"testing"

	"github.com/drove-project/drove/imagecache/ocilayout"
	"github.com/drove-project/drove/layers/reference"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const (
	digestA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	digestB = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

func TestLayoutEntries(t *testing.T) {
	doc := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
	 {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + digestA + `","size":400,
	  "annotations":{"io.containerd.image.name":"docker.io/library/nginx:1.25","org.opencontainers.image.ref.name":"1.25"}},
	 {"mediaType":"application/vnd.oci.image.index.v1+json","digest":"` + digestB + `","size":900,
	  "annotations":{"io.containerd.image.name":"registry.k8s.io/pause@` + digestB + `"}},
	 {"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":"` + digestA + `","size":400,
	  "annotations":{"io.containerd.image.name":"nginx"}},
	 {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + digestA + `","size":400},
	 {"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"` + digestA + `","size":400,
	  "annotations":{"io.containerd.image.name":"quay.io/a/layer:1"}},
	 {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + digestA + `","size":400,
	  "annotations":{"io.containerd.image.name":"quay.io/a/b@` + digestB + `"}},
	 {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + digestA + `","size":400,
	  "annotations":{"io.containerd.image.name":"Not/A/Name"}},
	 {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + digestA + `","size":0,
	  "annotations":{"io.containerd.image.name":"quay.io/a/b:0"}}
	]}`
	idx, err := ocilayout.ParseIndex("index.json", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	entries, skipped := layoutEntries(idx.Manifests)
	var got []string
	for _, e := range entries {
		got = append(got, e.repo.String()+" "+e.tag+" "+e.desc.Digest.String()[:8])
	}
	want := []string{
		"docker.io/library/nginx 1.25 sha256:a",
		"registry.k8s.io/pause  sha256:b",
		"docker.io/library/nginx latest sha256:a",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("entries:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(skipped) != 4 {
		t.Errorf("skipped %d entries, want 4 (layer, wrong digest, bad name, size 0): %q", len(skipped), skipped)
	}
}

// FuzzLayoutEntry checks that any image name annotation and descriptor
// fields of an index.json entry (as ocilayout.ParseIndex passes them on)
// are either refused or give an entry naming a valid image whose
// descriptor the mirror can serve.
func FuzzLayoutEntry(f *testing.F) {
	f.Add("docker.io/library/nginx:1.25", string(types.OCIManifestSchema1), int64(400), digestA)
	f.Fuzz(func(t *testing.T, ann, mediaType string, size int64, digest string) {
		h, err := v1.NewHash(digest)
		if err != nil {
			return // ParseIndex refuses such an index
		}
		e, err := layoutEntryOf(ann, v1.Descriptor{MediaType: types.MediaType(mediaType), Size: size, Digest: h})
		if err != nil {
			return
		}
		if !validRepoPath(e.repo.path) || e.repo.host == "" {
			t.Fatalf("entry names repository %q", e.repo)
		}
		if e.desc.Size <= 0 || e.desc.Size > maxManifestSize || (!e.desc.MediaType.IsImage() && !e.desc.MediaType.IsIndex()) {
			t.Fatalf("entry %+v cannot be served", e.desc)
		}
		suffix := "@" + e.desc.Digest.String()
		if e.tag != "" {
			suffix = ":" + e.tag
		}
		if _, err := reference.Parse(e.repo.String() + suffix); err != nil {
			t.Fatalf("entry does not spell a reference: %v", err)
		}
	})
}
