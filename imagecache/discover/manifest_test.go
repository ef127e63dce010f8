package discover

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// manifestYAML has image fields in every shape ManifestImages must find,
// and values it must pass over. Lines matter: the test names them.
const manifestYAML = `# a Deployment
apiVersion: apps/v1
kind: Deployment
spec:
  template:
    spec:
      initContainers:
        - name: init
          image: busybox:1.36
      containers:
        - name: web
          image: "nginx:1.25"
---
apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: Pod
    spec:
      containers:
        - image: registry.k8s.io/pause:3.9
  - apiVersion: batch/v1
    kind: CronJob
    spec:
      jobTemplate:
        spec:
          template:
            spec:
              containers:
                - image: 'quay.io/org/job:v1'
---
apiVersion: example.com/v1
kind: Agent
spec:
  components:
    agent: {image: ghcr.io/org/agent:2, replicas: 1}
    values:
      image:
        repository: not/collected
        tag: "1"
    empty:
      image: ""
    blank:
      image: "   "
    number:
      image: 3
    none:
      image: null
    template:
      image: "{{ .Values.image }}"
---
defaults: &defaults
  image: docker.io/library/alpine:3.19
first:
  <<: *defaults
second:
  <<: *defaults
img: &img sidecar:1
aliased:
  image: *img
`

func TestManifestImages(t *testing.T) {
	got, err := ManifestImages([]byte(manifestYAML), "app.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := []Found{
		{"busybox:1.36", 9},
		{"nginx:1.25", 12},
		{"registry.k8s.io/pause:3.9", 21},
		{"quay.io/org/job:v1", 30},
		{"ghcr.io/org/agent:2", 36},
		{"{{ .Values.image }}", 50},
		{"docker.io/library/alpine:3.19", 53},
		{"sidecar:1", 60},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ManifestImages =\n%v\nwant\n%v", got, want)
	}
}

func TestManifestImagesEmpty(t *testing.T) {
	for _, data := range []string{"", "---\n", "# nothing\n", "---\n---\n", "just a string\n", "- 1\n- 2\n"} {
		got, err := ManifestImages([]byte(data), "x.yaml")
		if err != nil || len(got) != 0 {
			t.Errorf("ManifestImages(%q) = %v, %v; want nothing", data, got, err)
		}
	}
}

// TestManifestImagesAliasCycle: a self-referencing alias must not loop.
func TestManifestImagesAliasCycle(t *testing.T) {
	data := "a: &a\n  image: x:1\n  self: [*a, *a]\nb: *a\n"
	got, err := ManifestImages([]byte(data), "x.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if want := []Found{{"x:1", 2}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestManifestImagesSyntaxErrors(t *testing.T) {
	for _, tc := range []struct {
		name, data string
		line       int
	}{
		{"unclosed flow in third document", "a: 1\n---\nb: 2\n---\nc: [\n", 5},
		{"tab indentation", "a:\n  b: 1\n\tc: 2\n", 3},
		{"control character", "a: 1\nb: 2\nc: \x01\n", 3},
		{"invalid UTF-8", "a: 1\nb: \xff\xfe\xfd\n", 2},
		{"unknown alias", "a: 1\nb: *nope\n", 2},
		{"unknown alias late", "a: 1\nb: 2\nc:\n  d: *nope\n", 4},
		// yaml.v3 names the line of the block the error is in, not the
		// line of the error (line 4 here).
		{"bad indentation", "spec:\n  containers:\n    - image: a\n   image: b\n", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ManifestImages([]byte(tc.data), "manifests/bad.yaml")
			if err == nil {
				t.Fatalf("ManifestImages = %v, want an error", got)
			}
			if !errors.Is(err, ErrSyntax) {
				t.Errorf("error does not wrap ErrSyntax: %v", err)
			}
			var e *Error
			if !errors.As(err, &e) || e.File != "manifests/bad.yaml" || e.Line == 0 {
				t.Fatalf("error %v: want an *Error naming manifests/bad.yaml and a line", err)
			}
			// yaml.v3 reports parser errors at the line of the construct
			// it was in; allow it one line early.
			if e.Line != tc.line && e.Line != tc.line-1 {
				t.Errorf("line %d, want %d: %v", e.Line, tc.line, err)
			}
			if !strings.HasPrefix(err.Error(), "manifests/bad.yaml:") {
				t.Errorf("message %q does not start with the file", err)
			}
		})
	}
}
