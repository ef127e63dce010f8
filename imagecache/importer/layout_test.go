package importer

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	d1 = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	d2 = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
)

func TestReadIndex(t *testing.T) {
	for _, tc := range []struct {
		name      string
		in        string // "" leaves index.json absent
		want      []string
		unnamed   int
		errSubstr string // the error must also match ErrInvalidLayout
	}{
		{
			name: "named and unnamed",
			in: `{"schemaVersion":2,"manifests":[
				{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + d1 + `","size":10,"annotations":{"io.containerd.image.name":"docker.io/library/nginx:1.25"}},
				{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + d2 + `","size":10},
				{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + d2 + `","size":10,"annotations":{"io.containerd.image.name":""}},
				{"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","digest":"` + d2 + `","size":10,"annotations":{"io.containerd.image.name":"busybox"}}]}`,
			want:    []string{"docker.io/library/nginx:1.25", "docker.io/library/busybox:latest"},
			unnamed: 2,
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
			name:      "layer as entry",
			in:        `{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"` + d1 + `","size":1,"annotations":{"io.containerd.image.name":"a:1"}}]}`,
			errSubstr: "not an image manifest or index",
		},
		{
			name:      "bad name",
			in:        `{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + d1 + `","size":1,"annotations":{"io.containerd.image.name":"UPPER/Case"}}]}`,
			errSubstr: "image name",
		},
		// What ocilayout.ReadIndex refuses is an invalid layout too.
		{
			name:      "path in digest",
			in:        `{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:../../etc/passwd","size":1,"annotations":{"io.containerd.image.name":"a:1"}}]}`,
			errSubstr: "digest",
		},
		{name: "negative size", in: `{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + d1 + `","size":-1,"annotations":{"io.containerd.image.name":"a"}}]}`, errSubstr: "negative"},
		{name: "schema 1", in: `{"schemaVersion":1}`, errSubstr: "schemaVersion"},
		{name: "not json", in: `{`, errSubstr: "unexpected end"},
		{name: "absent", in: "", errSubstr: "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.in != "" {
				if err := os.WriteFile(filepath.Join(dir, "index.json"), []byte(tc.in), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			entries, unnamed, err := readIndex(dir)
			if tc.errSubstr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errSubstr) || !errors.Is(err, ErrInvalidLayout) ||
					!strings.Contains(err.Error(), filepath.Join(dir, "index.json")) {
					t.Fatalf("err = %v, want ErrInvalidLayout naming index.json and containing %q", err, tc.errSubstr)
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
				if err := checkDescriptor(e.Desc); err != nil {
					t.Errorf("%s: descriptor %v", e.Name, err)
				}
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") || unnamed != tc.unnamed {
				t.Errorf("got %v (%d unnamed), want %v (%d unnamed)", got, unnamed, tc.want, tc.unnamed)
			}
		})
	}
}
