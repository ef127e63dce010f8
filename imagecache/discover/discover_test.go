package discover

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// rootfsFiles is a rootfs with every source Discover reads, and files it
// must not read. Lines matter: the test names them.
var rootfsFiles = map[string]string{
	"manifests/imageList": "# base images\nbusybox\nregistry.k8s.io/pause:3.9   # sandbox\n",
	"manifests/app.yaml": `apiVersion: apps/v1
kind: Deployment
spec:
  template:
    spec:
      containers:
        - image: nginx:1.25
---
apiVersion: v1
kind: List
items:
  - kind: Pod
    spec:
      containers:
        - image: docker.io/library/busybox:latest
`,
	"manifests/templated.yaml":   "kind: Pod\nspec:\n  containers:\n    - image: \"{{ .Values.image }}\"\n",
	"manifests/nested/agent.yml": "apiVersion: example.com/v1\nkind: Agent\nspec:\n  agent:\n    image: quay.io/org/agent:v2\n",
	"manifests/notes.txt":        "image: not-yaml-extension:1\n",

	"application/apps/myapp/app.yaml":  "kind: Pod\nspec:\n  containers:\n    - image: nginx:1.25\n",
	"application/apps/myapp/imageList": "ghcr.io/org/tool:1\n",
	"application/apps/shellapp/run.sh": "kubectl apply -f x.yaml\n",
	"application/apps/loose.yaml":      "image: not-in-an-app:1\n",

	"opt/tools/imageList": "alpine:3.19\n",
	"etc/other.yaml":      "image: not-a-source:1\n",
	"charts/README.yaml":  "image: not-a-chart:1\n",

	// The cached images themselves: never read, though broken.
	"container-images/imageList":          "NOT A REFERENCE\n",
	"container-images/manifests/bad.yaml": "a: [\n",
}

// writeRootfs makes a rootfs with rootfsFiles and the test chart under
// charts/web and as the helm app helmapp.
func writeRootfs(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	writeFiles(t, root, rootfsFiles)
	for _, dst := range []string{"charts/web", "application/apps/helmapp/web"} {
		if err := os.CopyFS(filepath.Join(root, filepath.FromSlash(dst)), os.DirFS("testdata/charts/web")); err != nil {
			t.Fatal(err)
		}
	}
	// An imageList counts inside a chart too.
	writeFiles(t, root, map[string]string{"application/apps/helmapp/web/imageList": "\n\nextra/from-chart:1\n"})
	return root
}

func TestDiscover(t *testing.T) {
	root := writeRootfs(t)
	flags := t.TempDir()
	list := filepath.Join(flags, "list.txt")
	auth := filepath.Join(flags, "auth.yaml")
	ignore := filepath.Join(flags, "ignore.txt")
	writeFiles(t, flags, map[string]string{
		"list.txt": "nginx:1.25\nquay.io/flag/only:1\n",
		"auth.yaml": "- registry: private.example.com:5000\n  username: u\n  password: p\n" +
			"  images:\n    - team/api:2\n    - private.example.com:5000/team/db:3\n",
		"ignore.txt": "# not wanted\nregistry.k8s.io/pause:3.9\nnever-found:1\nprivate.example.com:5000/team/db:3\n",
	})
	res, err := Discover(context.Background(), root, Options{
		ImageLists:   []string{list},
		AuthLists:    []string{auth},
		IgnoredLists: []string{ignore},
		Log:          slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	const chart, appChart = "charts/web (helm, default values)", "application/apps/helmapp/web (helm, default values)"
	want := []Image{
		{"docker.io/extra/from-chart:1", "helmapp", "application/apps/helmapp/web/imageList:3"},
		{"docker.io/library/alpine:3.19", "", "opt/tools/imageList:1"},
		{"docker.io/library/busybox:latest", "", "manifests/app.yaml:15"},
		{"docker.io/library/nginx:1.25", "", "manifests/app.yaml:7"},
		{"docker.io/library/nginx:1.25", "myapp", "application/apps/myapp/app.yaml:4"},
		{"docker.io/library/redis:7.2.4", "", chart},
		{"docker.io/library/redis:7.2.4", "helmapp", appChart},
		{"docker.io/valkey/valkey:7.2", "", chart},
		{"docker.io/valkey/valkey:7.2", "helmapp", appChart},
		{"ghcr.io/org/tool:1", "myapp", "application/apps/myapp/imageList:1"},
		{"private.example.com:5000/team/api:2", "", "--image-list-with-auth " + auth + ":5"},
		{"quay.io/flag/only:1", "", "--image-list " + list + ":2"},
		{"quay.io/org/agent:v2", "", "manifests/nested/agent.yml:5"},
		{"registry.example.com/team/web:1.2.3", "", chart},
		{"registry.example.com/team/web:1.2.3", "helmapp", appChart},
	}
	if !reflect.DeepEqual(res.Images, want) {
		t.Errorf("Images:\n%s\nwant\n%s", fmtImages(res.Images), fmtImages(want))
	}
	wantAuth := []AuthSection{{Registry: "private.example.com:5000", Username: "u", Password: "p",
		Images: []string{"private.example.com:5000/team/api:2"}}}
	if !reflect.DeepEqual(res.Auth, wantAuth) {
		t.Errorf("Auth = %+v, want %+v", res.Auth, wantAuth)
	}
	wantWarn := []string{
		`manifests/templated.yaml:4: image "{{ .Values.image }}" is not an image reference`,
		ignore + ":3: ignored image docker.io/library/never-found:1 is not among the images found",
	}
	if len(res.Warnings) != len(wantWarn) {
		t.Fatalf("Warnings = %q, want %d", res.Warnings, len(wantWarn))
	}
	for i, w := range wantWarn {
		if !strings.HasPrefix(res.Warnings[i], w) {
			t.Errorf("warning %d = %q, want it to start with %q", i, res.Warnings[i], w)
		}
	}
}

func fmtImages(ims []Image) string {
	var b strings.Builder
	for _, im := range ims {
		b.WriteString("  " + im.Ref + " app=" + im.AppName + " from " + im.Source + "\n")
	}
	return b.String()
}

// TestDiscoverNothing: a rootfs without sources, and one with only the
// cached images, need no images.
func TestDiscoverNothing(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{"bin/kubeadm": "#!/bin/sh\n", "container-images/imageList": "nginx\n"})
	res, err := Discover(context.Background(), root, Options{})
	if err != nil || len(res.Images) != 0 || len(res.Warnings) != 0 {
		t.Fatalf("Discover = %+v, %v; want nothing", res, err)
	}
}

// TestDiscoverSymlinks: files that lead out of the rootfs are not read; a
// chart holding such a symlink is refused, since helm would follow it.
func TestDiscoverSymlinks(t *testing.T) {
	outside := t.TempDir()
	writeFiles(t, outside, map[string]string{"imageList": "outside:1\n", "values.yaml": "image: outside:1\n"})
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"manifests/real.yaml":         "image: inside:1\n",
		"charts/web/Chart.yaml":       "apiVersion: v2\nname: web\nversion: 1.0.0\n",
		"charts/web/templates/a.yaml": "image: chart:1\n",
	})
	for link, target := range map[string]string{
		"manifests/imageList":    filepath.Join(outside, "imageList"),
		"manifests/link.yaml":    "real.yaml",
		"manifests/escape.yaml":  "../../" + filepath.Base(outside) + "/values.yaml",
		"charts/web/values.yaml": filepath.Join(outside, "values.yaml"),
	} {
		if err := os.Symlink(target, filepath.Join(root, filepath.FromSlash(link))); err != nil {
			t.Fatal(err)
		}
	}
	_, err := Discover(context.Background(), root, Options{})
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, ErrChart) || e.File != "charts/web" || !strings.Contains(err.Error(), "charts/web/values.yaml") {
		t.Fatalf("error = %v, want the chart refused for charts/web/values.yaml", err)
	}
	if err := os.Remove(filepath.Join(root, "charts/web/values.yaml")); err != nil {
		t.Fatal(err)
	}
	res, err := Discover(context.Background(), root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var refs []string
	for _, im := range res.Images {
		refs = append(refs, im.Ref+" "+im.Source)
	}
	want := []string{"docker.io/library/chart:1 charts/web (helm, default values)", "docker.io/library/inside:1 manifests/link.yaml:1"}
	if !slices.Equal(refs, want) {
		t.Errorf("images = %q, want %q", refs, want)
	}
	if len(res.Warnings) != 2 || !strings.HasPrefix(res.Warnings[0], "manifests/escape.yaml: skipped") || !strings.HasPrefix(res.Warnings[1], "manifests/imageList: skipped") {
		t.Errorf("warnings = %q, want the two escaping symlinks skipped", res.Warnings)
	}
}

func TestDiscoverCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Discover(ctx, writeRootfs(t), Options{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("error = %v, want context.Canceled", err)
	}
}

// TestDiscoverErrors: every problem is an error naming the file and, where
// the file has lines, the line.
func TestDiscoverErrors(t *testing.T) {
	for _, tc := range []struct {
		name     string
		files    map[string]string // in the rootfs
		flags    map[string]string // beside it; "list" is --image-list, "auth" --image-list-with-auth, "ignore" --ignored-image-list
		sentinel error
		want     string // "FLAGS/" stands for the flags directory
	}{
		{name: "bad imageList line", files: map[string]string{"manifests/imageList": "nginx\n\nNot A Ref\n"},
			sentinel: ErrReference, want: "manifests/imageList:3: "},
		{name: "bad imageList anywhere", files: map[string]string{"opt/imageList": "UPPER:1\n"},
			sentinel: ErrReference, want: "opt/imageList:1: "},
		{name: "manifest not YAML", files: map[string]string{"manifests/a.yaml": "kind: Pod\n\tspec: {}\n"},
			sentinel: ErrSyntax, want: "manifests/a.yaml:2: yaml syntax error"},
		{name: "app manifest not YAML", files: map[string]string{"application/apps/x/deploy/a.yml": "a: 1\nb: 'open\n"},
			sentinel: ErrSyntax, want: "application/apps/x/deploy/a.yml:"},
		{name: "chart does not render", files: map[string]string{
			"charts/broken/Chart.yaml":       "apiVersion: v2\nname: broken\nversion: 1.0.0\n",
			"charts/broken/templates/a.yaml": "image: {{ fail \"set image\" }}\n",
		}, sentinel: ErrChart, want: "charts/broken: render helm chart at default values: execution error at (broken/templates/a.yaml:1:10): set image"},
		{name: "app chart renders bad YAML", files: map[string]string{
			"application/apps/h/c/Chart.yaml":       "apiVersion: v2\nname: c\nversion: 1.0.0\n",
			"application/apps/h/c/templates/a.yaml": "a: 1\nb: [\n",
		}, sentinel: ErrSyntax, want: "helm chart application/apps/h/c rendered at default values: c/templates/a.yaml:2: "},
		{name: "bad --image-list line", flags: map[string]string{"list": "nginx\nBAD\n"},
			sentinel: ErrReference, want: "FLAGS/list:2: "},
		{name: "bad --ignored-image-list line", flags: map[string]string{"ignore": "BAD\n"},
			sentinel: ErrReference, want: "FLAGS/ignore:1: "},
		{name: "bad --image-list-with-auth field", flags: map[string]string{"auth": "- registry: r.example.com\n  images: [a, {b: c}]\n"},
			sentinel: ErrInvalid, want: "FLAGS/auth:2: [0].images[1]: "},
		{name: "credentials differ between auth lists", flags: map[string]string{
			"auth":  "- {registry: r.example.com, username: a, password: b}\n",
			"auth2": "# second\n- {registry: r.example.com, username: a, password: c}\n",
		}, sentinel: ErrInvalid, want: "FLAGS/auth2:2: registry: registry r.example.com has other credentials at FLAGS/auth:1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			writeFiles(t, root, tc.files)
			flags := t.TempDir()
			writeFiles(t, flags, tc.flags)
			var o Options
			for name := range tc.flags {
				p := filepath.Join(flags, name)
				switch strings.TrimRight(name, "0123456789") {
				case "list":
					o.ImageLists = append(o.ImageLists, p)
				case "auth":
					o.AuthLists = append(o.AuthLists, p)
				case "ignore":
					o.IgnoredLists = append(o.IgnoredLists, p)
				}
			}
			slices.Sort(o.AuthLists)
			res, err := Discover(context.Background(), root, o)
			if err == nil {
				t.Fatalf("Discover = %+v, want an error", res)
			}
			if !errors.Is(err, tc.sentinel) {
				t.Errorf("error does not wrap %v: %v", tc.sentinel, err)
			}
			if want := strings.ReplaceAll(tc.want, "FLAGS/", flags+"/"); !strings.Contains(err.Error(), want) {
				t.Errorf("error does not say %q:\n%v", want, err)
			}
			if !strings.Contains(err.Error(), root) {
				t.Errorf("error does not name the rootfs: %v", err)
			}
		})
	}
}

// TestDiscoverAllErrors: problems in several files are reported together,
// and a missing list file is named.
func TestDiscoverAllErrors(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"manifests/imageList": "BAD\n",
		"manifests/a.yaml":    "a: [\n",
	})
	missing := filepath.Join(t.TempDir(), "nope.txt")
	_, err := Discover(context.Background(), root, Options{ImageLists: []string{missing}})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"manifests/imageList:1: ", "manifests/a.yaml:1: ", "read --image-list", missing} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("error does not wrap os.ErrNotExist: %v", err)
	}
}

func TestDiscoverNoRootfs(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope")
	if _, err := Discover(context.Background(), missing, Options{}); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Fatalf("error = %v, want one naming %s", err, missing)
	}
}
