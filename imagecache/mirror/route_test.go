package mirror

import (
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func TestParseRoute(t *testing.T) {
	const d = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for _, c := range []struct {
		path string
		ok   bool
		want route
	}{
		{"/v2/", true, route{kind: routeBase}},
		{"/v2", true, route{kind: routeBase}},
		{"/v2/library/nginx/manifests/1.25", true, route{kind: routeManifest, name: "library/nginx", tag: "1.25"}},
		{"/v2/docker.io/library/nginx/manifests/" + d, true, route{kind: routeManifest, name: "docker.io/library/nginx", digest: mustHash(t, d)}},
		{"/v2/a/manifests/b/manifests/v1", true, route{kind: routeManifest, name: "a/manifests/b", tag: "v1"}},
		{"/v2/pause/blobs/" + d, true, route{kind: routeBlob, name: "pause", digest: mustHash(t, d)}},
		{"/v2/127.0.0.1:5000/team/app/tags/list", true, route{kind: routeTags, name: "127.0.0.1:5000/team/app"}},
		{"/v2/pause/blobs/uploads/", false, route{}},
		{"/v2/pause/blobs/uploads/1234", false, route{}},
		{"/v2/pause/blobs/sha256:abc", false, route{}},
		{"/v2/pause/manifests/" + strings.Repeat("t", 129), false, route{}},
		{"/v2/pause/manifests/", false, route{}},
		{"/v2/../etc/manifests/1", false, route{}},
		{"/v2//x/manifests/1", false, route{}},
		{"/v2/_catalog", false, route{}},
		{"/v1/pause/manifests/1", false, route{}},
		{"/", false, route{}},
	} {
		got, ok := parseRoute(c.path)
		if ok != c.ok || got != c.want {
			t.Errorf("parseRoute(%q) = %+v, %v; want %+v, %v", c.path, got, ok, c.want, c.ok)
		}
	}
}

func TestLocate(t *testing.T) {
	for _, c := range []struct {
		name, ns string
		want     []string
	}{
		{"library/nginx", "docker.io", []string{"docker.io/library/nginx"}},
		{"nginx", "docker.io", []string{"docker.io/library/nginx"}},
		{"library/nginx", "registry-1.docker.io", []string{"docker.io/library/nginx"}},
		{"pause", "registry.k8s.io", []string{"registry.k8s.io/pause"}},
		{"team/app", "127.0.0.1:5000", []string{"127.0.0.1:5000/team/app"}},
		{"pause", "sea.hub:5000", []string{"sea.hub:5000/pause"}},
		{"docker.io/library/nginx", "", []string{"docker.io/library/nginx", "docker.io/docker.io/library/nginx"}},
		{"registry.k8s.io/pause", "", []string{"registry.k8s.io/pause", "docker.io/registry.k8s.io/pause"}},
		{"127.0.0.1_5000/team/app", "", []string{"127.0.0.1:5000/team/app", "docker.io/127.0.0.1_5000/team/app"}},
		{"127.0.0.1:5000/team/app", "", []string{"127.0.0.1:5000/team/app"}},
		{"localhost_5000/app", "", []string{"localhost:5000/app", "docker.io/localhost_5000/app"}},
		{"library/nginx", "", []string{"docker.io/library/nginx"}},
		{"nginx", "", []string{"docker.io/library/nginx"}},
		{"team_a/app", "", []string{"docker.io/team_a/app"}},
		{"Upper/app", "", nil},
		{"library/nginx", "not a host", nil},
	} {
		var got []string
		for _, r := range locate(c.name, c.ns) {
			got = append(got, r.String())
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("locate(%q, %q) = %q, want %q", c.name, c.ns, got, c.want)
		}
	}
}

func TestHostElementRoundTrip(t *testing.T) {
	for _, h := range []string{"docker.io", "quay.io", "127.0.0.1:5000", "localhost:5000", "sea.hub:5000", "my-registry.example.com:443"} {
		e, err := pathElement(h)
		if err != nil {
			t.Fatal(err)
		}
		if !pathComponent.MatchString(e) {
			t.Errorf("path element %q of %s is not a valid repository path component", e, h)
		}
		if got, ok := hostElement(e); !ok || got != h {
			t.Errorf("hostElement(%q) = %q, %v; want %q", e, got, ok, h)
		}
	}
	if _, err := pathElement("[::1]:5000"); err == nil {
		t.Error("pathElement accepted an IPv6 address")
	}
}

// FuzzRoute checks that any request path parses without panicking and
// that every repository locate offers is one docker accepts.
func FuzzRoute(f *testing.F) {
	f.Add("/v2/library/nginx/manifests/1.25", "docker.io")
	f.Add("/v2/127.0.0.1_5000/team/app/blobs/sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "")
	f.Add("/v2/pause/tags/list", "sea.hub:5000")
	f.Fuzz(func(t *testing.T, path, ns string) {
		r, ok := parseRoute(path)
		if !ok || r.kind == routeBase {
			return
		}
		if r.name == "" || (r.kind == routeManifest && (r.tag == "") == (r.digest.Hex == "")) {
			t.Fatalf("parseRoute(%q) = %+v", path, r)
		}
		for _, c := range locate(r.name, ns) {
			if !validRepoPath(c.path) || !hostPattern.MatchString(c.host) {
				t.Fatalf("locate(%q, %q) offered %q", r.name, ns, c)
			}
		}
	})
}

func mustHash(t *testing.T, s string) v1.Hash {
	t.Helper()
	h, err := v1.NewHash(s)
	if err != nil {
		t.Fatal(err)
	}
	return h
}
