package imagecache

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/drove-project/drove/imagecache/collect"
	"github.com/drove-project/drove/imagecache/ocilayout"
	"github.com/drove-project/drove/internal/testimage"
	"github.com/drove-project/drove/internal/testregistry"
	"github.com/drove-project/drove/layers/build"
	"github.com/drove-project/drove/layers/extension"
	"github.com/drove-project/drove/layers/layer"
	"github.com/drove-project/drove/layers/store"
)

type fixture struct {
	t    *testing.T
	s    *store.Store
	work string
	up   *testregistry.Registry
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	if _, err := os.Stat(testregistry.Binary); err != nil {
		t.Skipf("needs %s (Debian package docker-registry)", testregistry.Binary)
	}
	d := t.TempDir()
	s, err := store.Open(filepath.Join(d, "store"))
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, s: s, work: filepath.Join(d, "work"), up: testregistry.Start(t, testregistry.Opts{})}
}

// push puts a random one-layer linux/<host arch> image, with Docker
// schema 2 media types, at repo:tag.
func (f *fixture) push(repoTag string) string {
	f.t.Helper()
	img := testimage.Image(f.t, testimage.Spec{Layers: 1, LayerSize: 16 << 10, Arch: build.HostPlatform().Architecture, Docker: true})
	ref := f.up.Ref(repoTag, "")
	testimage.Push(f.t, ref, img)
	return ref
}

// build makes a cluster image from a Kubefile and files.
func (f *fixture) build(files map[string]string) v1.Descriptor {
	f.t.Helper()
	ctxDir := f.t.TempDir()
	for p, c := range files {
		full := filepath.Join(ctxDir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			f.t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			f.t.Fatal(err)
		}
	}
	res, err := build.Build(context.Background(), f.s, build.Options{Context: ctxDir, WorkDir: f.work})
	if err != nil {
		f.t.Fatal(err)
	}
	return res.Descriptor
}

func (f *fixture) add(desc v1.Descriptor, o Options) (Result, error) {
	o.WorkDir = f.work
	return Add(context.Background(), f.s, desc, o)
}

// cacheLayer lists the files under LayoutDir of the image's last layer.
func (f *fixture) cacheLayer(desc v1.Descriptor) []string {
	f.t.Helper()
	img, err := f.s.Image(desc.Digest)
	if err != nil {
		f.t.Fatal(err)
	}
	ls, err := img.Layers()
	if err != nil {
		f.t.Fatal(err)
	}
	rc, err := ls[len(ls)-1].Uncompressed()
	if err != nil {
		f.t.Fatal(err)
	}
	defer rc.Close()
	var out []string
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			f.t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			out = append(out, h.Name)
		}
	}
}

func (f *fixture) annotation(desc v1.Descriptor) []string {
	f.t.Helper()
	img, err := f.s.Image(desc.Digest)
	if err != nil {
		f.t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		f.t.Fatal(err)
	}
	list, err := extension.ParseContainerImages(m.Annotations[extension.AnnotationContainerImages])
	if err != nil {
		f.t.Fatalf("annotation: %v", err)
	}
	var out []string
	for _, c := range list {
		out = append(out, c.Image+"|"+c.AppName)
	}
	return out
}

func blobCount(files []string) int {
	n := 0
	for _, f := range files {
		if strings.HasPrefix(f, LayoutDir+"/blobs/sha256/") {
			n++
		}
	}
	return n
}

// A base image caches what its manifests name; a child built FROM it adds
// one image (also pulled by a RUN step through the mirror) and carries
// only the new image's blobs, while its index and annotation list both.
func TestAddCachesAndInheritsFromBase(t *testing.T) {
	f := newFixture(t)
	a, b, c := f.push("team/a:v1"), f.push("team/b:v1"), f.push("team/c:v1")
	base := f.build(map[string]string{
		"Kubefile":           "FROM scratch\nCOPY manifests manifests\n",
		"manifests/app.yaml": "kind: Pod\nspec:\n  containers:\n  - image: " + a + "\n",
	})
	res, err := f.add(base, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := f.annotation(res.Descriptor); !slices.Equal(got, []string{a + "|"}) {
		t.Fatalf("base annotation %v", got)
	}
	baseFiles := f.cacheLayer(res.Descriptor)
	if n := blobCount(baseFiles); n != 3 { // manifest, config, layer
		t.Fatalf("base cache layer holds %d blobs: %v", n, baseFiles)
	}
	if err := f.s.Tag("base:v1", res.Descriptor); err != nil {
		t.Fatal(err)
	}
	child := f.build(map[string]string{
		"Kubefile":  "FROM base:v1\nCOPY imageList manifests/imageList\n",
		"imageList": b + "\n",
	})
	res2, err := f.add(child, Options{Pulled: []string{c}})
	if err != nil {
		t.Fatal(err)
	}
	if got := f.annotation(res2.Descriptor); !slices.Equal(got, []string{a + "|", b + "|", c + "|"}) {
		t.Fatalf("child annotation %v", got)
	}
	childFiles := f.cacheLayer(res2.Descriptor)
	if n := blobCount(childFiles); n != 6 {
		t.Fatalf("child cache layer holds %d blobs, want only b's and c's 6: %v", n, childFiles)
	}
	for _, bf := range baseFiles {
		if strings.Contains(bf, "/blobs/") && slices.Contains(childFiles, bf) {
			t.Fatalf("child layer repeats the base's blob %s", bf)
		}
	}
	// The child's index.json lists all three (it is the top layer's).
	dir := t.TempDir()
	img, _ := f.s.Image(res2.Descriptor.Digest)
	ls, _ := img.Layers()
	for _, l := range ls {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := layer.Apply(context.Background(), dir, rc); err != nil {
			t.Fatal(err)
		}
		rc.Close()
	}
	names, err := ocilayout.ImageNames(filepath.Join(dir, LayoutDir))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{a, b, c}) {
		t.Fatalf("index.json names %v", names)
	}
	if l := ls[len(ls)-1]; mustMediaType(t, l) != types.OCIUncompressedLayer {
		t.Fatalf("cache layer media type %s: image blobs are compressed already", mustMediaType(t, l))
	}
	// An image built on the child that names no new image adds no layer,
	// but still lists what it inherits (run uses the list to decide
	// whether nodes need the images step).
	if err := f.s.Tag("child:v1", res2.Descriptor); err != nil {
		t.Fatal(err)
	}
	grand := f.build(map[string]string{"Kubefile": "FROM child:v1\nCOPY f f\n", "f": "x"})
	res3, err := f.add(grand, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := f.annotation(res3.Descriptor); !slices.Equal(got, []string{a + "|", b + "|", c + "|"}) {
		t.Fatalf("grandchild annotation %v", got)
	}
	gimg, _ := f.s.Image(res3.Descriptor.Digest)
	gls, _ := gimg.Layers()
	if len(gls) != len(ls)+1 { // the child's layers and the COPY
		t.Fatalf("grandchild has %d layers, want %d: no new cache layer", len(gls), len(ls)+1)
	}
}

func mustMediaType(t *testing.T, l v1.Layer) types.MediaType {
	t.Helper()
	mt, err := l.MediaType()
	if err != nil {
		t.Fatal(err)
	}
	return mt
}

// Lite mode and an image naming nothing change nothing; an image that
// cannot be pulled fails with its name unless IgnoreMissing.
func TestAddModesAndMissingImages(t *testing.T) {
	f := newFixture(t)
	a := f.push("team/a:v1")
	gone := f.up.Ref("team/missing:v1", "")
	plain := f.build(map[string]string{"Kubefile": "FROM scratch\nCOPY f f\n", "f": "x"})
	if res, err := f.add(plain, Options{}); err != nil || res.Descriptor.Digest != plain.Digest {
		t.Fatalf("nothing to cache: %v, %v", res.Descriptor.Digest, err)
	}
	withImages := f.build(map[string]string{
		"Kubefile":            "FROM scratch\nCOPY manifests manifests\n",
		"manifests/imageList": a + "\n" + gone + "\n",
	})
	if res, err := f.add(withImages, Options{Mode: ModeLite}); err != nil || res.Descriptor.Digest != withImages.Digest {
		t.Fatalf("lite: %v, %v", res.Descriptor.Digest, err)
	}
	_, err := f.add(withImages, Options{})
	var missing *collect.MissingError
	if !errors.As(err, &missing) || !strings.Contains(err.Error(), gone) || strings.Contains(err.Error(), a+":") {
		t.Fatalf("want a MissingError naming only %s, got %v", gone, err)
	}
	res, err := f.add(withImages, Options{IgnoreMissing: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := f.annotation(res.Descriptor); !slices.Equal(got, []string{a + "|"}) {
		t.Fatalf("annotation %v", got)
	}
	if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], gone) {
		t.Fatalf("warnings %v", res.Warnings)
	}
	if _, err := f.add(withImages, Options{Mode: "fast"}); err == nil {
		t.Fatal("unknown mode accepted")
	}
}

// A second Add over the same rootfs and image list reuses the layer the
// first one made — with the upstream registry gone — unless NoCache.
func TestAddReusesItsLayer(t *testing.T) {
	f := newFixture(t)
	a := f.push("team/a:v1")
	img := f.build(map[string]string{"Kubefile": "FROM scratch\nCOPY manifests manifests\n", "manifests/imageList": a + "\n"})
	first, err := f.add(img, Options{})
	if err != nil {
		t.Fatal(err)
	}
	f.up.Stop()
	var out strings.Builder
	again, err := f.add(img, Options{Out: &out})
	if err != nil {
		t.Fatalf("second add with the registry stopped: %v", err)
	}
	if again.Descriptor.Digest != first.Descriptor.Digest || !strings.Contains(out.String(), "CACHED") {
		t.Fatalf("second add made %s (first %s), output %q: want the cached layer", again.Descriptor.Digest, first.Descriptor.Digest, out.String())
	}
	if got := f.annotation(again.Descriptor); !slices.Equal(got, []string{a + "|"}) {
		t.Fatalf("annotation %v", got)
	}
	if _, err := f.add(img, Options{NoCache: true}); err == nil || !strings.Contains(err.Error(), a) {
		t.Fatalf("NoCache with the registry stopped: %v, want a failure naming %s", err, a)
	}
}
