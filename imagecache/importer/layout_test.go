package importer

import (
	"errors"
	"strings"
	"testing"
)

const (
	d1 = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	d2 = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
)

func TestDecodeIndex(t *testing.T) {
	for _, tc := range []struct {
		name      string
		in        string
		want      []string // names
		unnamed   int
		errSubstr string
	}{
		{
			name: "named and unnamed",
			in: `{"schemaVersion":2,"manifests":[
				{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + d1 + `","size":10,"annotations":{"io.containerd.image.name":"docker.io/library/nginx:1.25"}},
				{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + d2 + `","size":10},
				{"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","digest":"` + d2 + `","size":10,"annotations":{"io.containerd.image.name":"busybox"}}]}`,
			want:    []string{"docker.io/library/nginx:1.25", "docker.io/library/busybox:latest"},
			unnamed: 1,
		},
		{
			name: "same name twice, same digest",
			in: `{"schemaVersion":2,"manifests":[
				{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + d1 + `","size":1,"annotations":{"io.containerd.image.name":"a:1"}},
				{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + d1 + `","size":1,"annotations":{"io.containerd.image.name":"docker.io/library/a:1"}}]}`,
			want: []string{"docker.io/library/a:1"},
		},
		{
			name: "same name, two digests",
			in: `{"schemaVersion":2,"manifests":[
				{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + d1 + `","size":1,"annotations":{"io.containerd.image.name":"a:1"}},
				{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + d2 + `","size":1,"annotations":{"io.containerd.image.name":"a:1"}}]}`,
			errSubstr: "names both",
		},
		{
			name:      "path in digest",
			in:        `{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:../../etc/passwd","size":1,"annotations":{"io.containerd.image.name":"a:1"}}]}`,
			errSubstr: "digest",
		},
		{
			name:      "layer as entry",
			in:        `{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"` + d1 + `","size":1,"annotations":{"io.containerd.image.name":"a:1"}}]}`,
			errSubstr: "not an image manifest or index",
		},
		{
			name:      "bad name",
			in:        `{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + d1 + `","size":1,"annotations":{"io.containerd.image.name":"UPPER/Case"}}]}`,
			errSubstr: "image name",
		},
		{name: "negative size", in: `{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + d1 + `","size":-1,"annotations":{"io.containerd.image.name":"a"}}]}`, errSubstr: "negative"},
		{name: "schema 1", in: `{"schemaVersion":1}`, errSubstr: "schemaVersion"},
		{name: "not json", in: `{`, errSubstr: "decode index"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			entries, unnamed, err := decodeIndex([]byte(tc.in))
			if tc.errSubstr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errSubstr) || !errors.Is(err, ErrInvalidLayout) {
					t.Fatalf("err = %v, want ErrInvalidLayout containing %q", err, tc.errSubstr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range entries {
				got = append(got, e.Name)
				if e.Desc.Annotations != nil {
					t.Errorf("%s: descriptor keeps annotations", e.Name)
				}
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") || unnamed != tc.unnamed {
				t.Errorf("got %v (%d unnamed), want %v (%d unnamed)", got, unnamed, tc.want, tc.unnamed)
			}
		})
	}
}

// FuzzDecodeIndex checks that decoding any index.json neither panics nor
// yields an entry that could escape the layout's blobs directory.
func FuzzDecodeIndex(f *testing.F) {
	f.Add([]byte(`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + d1 + `","size":10,"annotations":{"io.containerd.image.name":"docker.io/library/nginx:1.25"}}]}`))
	f.Add([]byte(`{"schemaVersion":2,"manifests":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		entries, _, err := decodeIndex(b)
		if err != nil {
			return
		}
		for _, e := range entries {
			if e.Name == "" || e.Desc.Size < 0 {
				t.Fatalf("bad entry %+v", e)
			}
			p := blobPath("/layout", e.Desc.Digest)
			if !strings.HasPrefix(p, "/layout/blobs/") || strings.Contains(p, "..") {
				t.Fatalf("digest %q maps to %s", e.Desc.Digest, p)
			}
		}
	})
}
