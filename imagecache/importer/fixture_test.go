package importer

import (
	"bytes"
	"io"
	"runtime"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/drove-project/drove/imagecache/ocilayout"
	"github.com/drove-project/drove/internal/testimage"
	"github.com/drove-project/drove/internal/testregistry"
)

// Names the test layouts give their images.
const (
	nameOCI   = "docker.io/drovetest/oci-app:v1"
	nameDock  = "docker.io/drovetest/docker-app:v2"
	nameIndex = "registry.example.com/team/multi-arch:1.0"
)

// fixtureImage is one image pushed to the registry and put in the layout.
type fixtureImage struct {
	Name   string
	Digest v1.Hash // upstream (registry) digest: manifest or index
	// Layers are the compressed layer digests of the host-platform manifest.
	Layers []v1.Hash
	// Manifest is the host-platform manifest digest (Digest for a
	// single-manifest image).
	Manifest v1.Hash
	// Absent is, for the index, the other platform's manifest, which the
	// layout leaves out.
	Absent v1.Hash
}

// fixture is a layout built from images pulled from a real registry.
type fixture struct {
	Dir    string
	Images map[string]fixtureImage
}

// hostArch and otherArch are the architecture the layout's index child
// is for, and the one whose child the layout leaves out.
func hostArch() string { return runtime.GOARCH }

func otherArch() string {
	if runtime.GOARCH == "arm64" {
		return "amd64"
	}
	return "arm64"
}

// newFixture pushes three images to a real registry (an OCI manifest, a
// Docker schema 2 manifest, and an OCI index for the host and another
// architecture) and writes a layout at dir from what it pulls back, with
// only the host child of the index and each entry annotated with its name.
func newFixture(t *testing.T, dir string) fixture {
	t.Helper()
	reg := testregistry.Start(t, testregistry.Opts{})
	f := fixture{Dir: dir, Images: map[string]fixtureImage{}}

	oci := testimage.Image(t, testimage.Spec{Layers: 2, LayerSize: 512, Arch: hostArch()})
	dock := testimage.Image(t, testimage.Spec{Layers: 2, LayerSize: 512, Arch: hostArch(), Docker: true})
	host := testimage.Image(t, testimage.Spec{Layers: 1, LayerSize: 512, Arch: hostArch()})
	other := testimage.Image(t, testimage.Spec{Layers: 1, LayerSize: 512, Arch: otherArch()})
	idx := testimage.IndexOf(t, host, other)

	refOCI := parseRef(t, reg.Ref("drovetest/oci-app", ":v1"))
	refDock := parseRef(t, reg.Ref("drovetest/docker-app", ":v2"))
	refIdx := parseRef(t, reg.Ref("team/multi-arch", ":1.0"))
	testimage.Push(t, refOCI.String(), oci)
	testimage.Push(t, refDock.String(), dock)
	testimage.Push(t, refIdx.String(), idx)

	l, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatalf("create layout: %v", err)
	}
	for ref, n := range map[name.Reference]string{refOCI: nameOCI, refDock: nameDock} {
		img, err := remote.Image(ref)
		if err != nil {
			t.Fatalf("pull %s: %v", ref, err)
		}
		if err := l.AppendImage(img, layout.WithAnnotations(map[string]string{ocilayout.ImageNameAnnotation: n})); err != nil {
			t.Fatalf("add %s to layout: %v", n, err)
		}
		f.Images[n] = describe(t, n, img)
	}

	// The index: its own blob and the host child only.
	ri, err := remote.Index(refIdx)
	if err != nil {
		t.Fatalf("pull %s: %v", refIdx, err)
	}
	raw, err := ri.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	idxDigest, err := ri.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if err := l.WriteBlob(idxDigest, io.NopCloser(bytes.NewReader(raw))); err != nil {
		t.Fatalf("write index blob: %v", err)
	}
	hostDigest, otherDigest := digestOf(t, host), digestOf(t, other)
	child, err := ri.Image(hostDigest)
	if err != nil {
		t.Fatalf("pull host child: %v", err)
	}
	if err := l.WriteImage(child); err != nil {
		t.Fatalf("write host child: %v", err)
	}
	if err := l.AppendDescriptor(v1.Descriptor{
		MediaType:   types.OCIImageIndex,
		Digest:      idxDigest,
		Size:        int64(len(raw)),
		Annotations: map[string]string{ocilayout.ImageNameAnnotation: nameIndex},
	}); err != nil {
		t.Fatalf("add index to layout: %v", err)
	}
	fi := describe(t, nameIndex, child)
	fi.Digest, fi.Absent = idxDigest, otherDigest
	f.Images[nameIndex] = fi

	// An unnamed entry, which Import must skip.
	unnamed, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.AppendImage(unnamed); err != nil {
		t.Fatal(err)
	}
	return f
}

// buildImage makes an image of n random 512-byte layers for linux/arch,
// with Docker schema 2 media types when mt is one, else OCI ones.
func buildImage(t *testing.T, mt, cfgMT, layerMT types.MediaType, arch string, n int) v1.Image {
	t.Helper()
	docker := mt == types.DockerManifestSchema2
	if docker != (cfgMT == types.DockerConfigJSON) || docker != (layerMT == types.DockerLayer) {
		t.Fatalf("buildImage: media types %s, %s, %s mix OCI and Docker", mt, cfgMT, layerMT)
	}
	return testimage.Image(t, testimage.Spec{Layers: n, LayerSize: 512, Arch: arch, Docker: docker})
}

// describe records what the test checks of img.
func describe(t *testing.T, n string, img v1.Image) fixtureImage {
	t.Helper()
	d := digestOf(t, img)
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	fi := fixtureImage{Name: n, Digest: d, Manifest: d}
	for _, l := range m.Layers {
		fi.Layers = append(fi.Layers, l.Digest)
	}
	return fi
}

func digestOf(t *testing.T, img v1.Image) v1.Hash {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func parseRef(t *testing.T, s string) name.Reference {
	t.Helper()
	ref, err := name.ParseReference(s, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

// configDigest is the config digest of the manifest m in the layout at dir.
func configDigest(t *testing.T, dir string, m v1.Hash) v1.Hash {
	t.Helper()
	img, err := layout.Path(dir).Image(m)
	if err != nil {
		t.Fatal(err)
	}
	h, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	return h
}
