package archive

import (
	"errors"
	"testing"

	"github.com/drove-project/drove/layers/store"
)

func TestOCIName(t *testing.T) {
	for _, tc := range []struct {
		refName, containerd, base string
		want                      string
		err                       error
	}{
		{"docker.io/library/app:v1", "", "", "docker.io/library/app:v1", nil},
		{"app:v1", "", "", "docker.io/library/app:v1", nil},
		{"ghcr.io/acme/tools:2", "", "", "ghcr.io/acme/tools:2", nil},
		{"registry.local:5000/k8s", "", "", "registry.local:5000/k8s:latest", nil},
		// Bare tags, as skopeo oci:DIR:v1 and docker save write them.
		{"v1", "", "", "localhost/v1:latest", nil},
		{"v1", "", "registry.local/k8s", "registry.local/k8s:v1", nil},
		{"v1.28", "", "k8s", "docker.io/library/k8s:v1.28", nil},
		// The containerd annotation holds the full name and wins.
		{"v1", "docker.io/library/app:v1", "", "docker.io/library/app:v1", nil},
		{"", "quay.io/x/y:3", "", "quay.io/x/y:3", nil},
		// No name, or only a digest: loaded unnamed.
		{"", "", "", "", nil},
		{"app@sha256:" + hex64, "", "", "", nil},
		{"Not A Name", "", "", "", ErrUnsupported},
		{"v1", "", "UPPER/case", "", ErrUnsupported},
	} {
		ann := map[string]string{}
		if tc.refName != "" {
			ann[store.RefNameAnnotation] = tc.refName
		}
		if tc.containerd != "" {
			ann[ContainerdNameAnnotation] = tc.containerd
		}
		got, err := ociName(ann, tc.base)
		if !errors.Is(err, tc.err) || (tc.err == nil && err != nil) || got != tc.want {
			t.Errorf("ociName(%q, %q, base %q) = %q, %v; want %q, %v", tc.refName, tc.containerd, tc.base, got, err, tc.want, tc.err)
		}
	}
}

const hex64 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestDockerName(t *testing.T) {
	for _, tc := range []struct {
		tag, want string
		err       error
	}{
		{"app:v1", "docker.io/library/app:v1", nil},
		{"app", "docker.io/library/app:latest", nil},
		{"ghcr.io/acme/tools:2", "ghcr.io/acme/tools:2", nil},
		{"app@sha256:" + hex64, "", ErrCorrupt},
		{"::", "", ErrCorrupt},
	} {
		got, err := dockerName(tc.tag)
		if !errors.Is(err, tc.err) || (tc.err == nil && err != nil) || got != tc.want {
			t.Errorf("dockerName(%q) = %q, %v; want %q, %v", tc.tag, got, err, tc.want, tc.err)
		}
	}
}
