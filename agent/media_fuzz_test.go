package agent

import (
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/drove-project/drove/protocol"
)

// FuzzManifestChildren feeds arbitrary manifest and index bytes from media
// to the parsing that says which blobs to import next: whatever arrives,
// it does not panic, and every child it returns has a sha256 digest of 64
// hex digits (a safe file name under blobs/sha256/) and a size that is not
// negative.
func FuzzManifestChildren(f *testing.F) {
	d := "sha256:" + strings.Repeat("a", 64)
	f.Add(true, []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",`+
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":2,"digest":"`+d+`"},`+
		`"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","size":10,"digest":"`+d+`"}]}`))
	f.Add(false, []byte(`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":5,"digest":"`+d+`"}]}`))
	f.Add(true, []byte(`{"config":{"digest":"sha256:../../etc/passwd","size":1}}`))
	f.Add(false, []byte(`{"manifests":[{"digest":"sha512:`+strings.Repeat("b", 128)+`","size":-1}]}`))
	f.Fuzz(func(t *testing.T, image bool, b []byte) {
		desc := v1.Descriptor{MediaType: types.OCIImageIndex, Digest: v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("0", 64)}}
		if image {
			desc.MediaType = types.OCIManifestSchema1
		}
		children, err := manifestChildren(desc, b)
		if err != nil {
			if children != nil {
				t.Fatalf("children %v with error %v", children, err)
			}
			return
		}
		for _, c := range children {
			if !protocol.ValidDigest(c.Digest.String()) || c.Size < 0 {
				t.Fatalf("unsafe child %+v", c)
			}
		}
	})
}
