package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sort"
	"strings"
	"testing"

	ggcrcompression "github.com/google/go-containerregistry/pkg/compression"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/drove-project/drove/layers/store"
)

// blobsOf is the config digest and layer digests of an image.
func blobsOf(t testing.TB, img v1.Image) (v1.Hash, []v1.Hash) {
	t.Helper()
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	var layers []v1.Hash
	for _, l := range m.Layers {
		layers = append(layers, l.Digest)
	}
	return m.Config.Digest, layers
}

// platformImage is the image of idx for arch.
func platformImage(t testing.TB, s *store.Store, idx v1.Hash, arch string) v1.Image {
	t.Helper()
	ii, err := s.Index(idx)
	if err != nil {
		t.Fatal(err)
	}
	im, _ := ii.IndexManifest()
	for _, d := range im.Manifests {
		if d.Platform != nil && d.Platform.Architecture == arch {
			img, err := s.Image(d.Digest)
			if err != nil {
				t.Fatal(err)
			}
			return img
		}
	}
	t.Fatalf("no %s image in %s", arch, idx)
	return nil
}

func TestSaveLoadDockerRoundTrip(t *testing.T) {
	if runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
		t.Skip("the fixture's multi-platform image has amd64 and arm64 only")
	}
	f := newOCIFixture(t)
	b := save(t, f.s, SaveOptions{Format: DockerArchive}, f.refs...)

	// What the archive should carry, image by image: the host's platform
	// of multi:1.
	want := map[string]v1.Image{}
	for i, d := range []v1.Descriptor{f.a, f.b} {
		img, err := f.s.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		want[f.wantNames[i]] = img
	}
	want["docker.io/library/multi:1"] = platformImage(t, f.s, f.multi.Digest, runtime.GOARCH)

	// docker save's layout: manifest.json with familiar RepoTags, and the
	// layer the two images share written once.
	var manifest tarball.Manifest
	count := map[string]int{}
	for _, e := range readTar(t, b) {
		count[e.hdr.Name]++
		if e.hdr.Name == "manifest.json" {
			if err := json.Unmarshal(e.body, &manifest); err != nil {
				t.Fatal(err)
			}
		}
	}
	var tags []string
	for _, d := range manifest {
		tags = append(tags, d.RepoTags...)
	}
	sort.Strings(tags)
	if strings.Join(tags, " ") != "app:v1 ghcr.io/acme/tools:2 multi:1" {
		t.Errorf("RepoTags %v", tags)
	}
	if n := count[f.shared.Hex+".tar.gz"]; n != 1 {
		t.Errorf("shared layer written %d times, want once", n)
	}
	for n, c := range count {
		if c != 1 {
			t.Errorf("%s written %d times", n, c)
		}
	}

	// go-containerregistry reads each image back.
	p := writeTemp(t, b)
	for full, img := range want {
		tag, err := name.NewTag(store.FamiliarName(full))
		if err != nil {
			t.Fatal(err)
		}
		got, err := tarball.ImageFromPath(p, &tag)
		if err != nil {
			t.Fatalf("tarball.ImageFromPath %s: %v", tag, err)
		}
		if err := validate.Image(got); err != nil {
			t.Errorf("validate %s: %v", tag, err)
		}
		wc, wl := blobsOf(t, img)
		gc, gl := blobsOf(t, got)
		if wc != gc || !equalHashes(wl, gl) {
			t.Errorf("%s: read back config %s layers %v, want %s %v", tag, gc, gl, wc, wl)
		}
	}

	for _, how := range loadWays {
		t.Run(how.name, func(t *testing.T) {
			dst := newStore(t)
			got, err := how.load(t, b, dst)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("loaded %v, want %d images", got, len(want))
			}
			for _, e := range got {
				img, ok := want[e.Name]
				if !ok {
					t.Errorf("loaded unexpected name %q", e.Name)
					continue
				}
				r, err := dst.Resolve(e.Name)
				if err != nil || r.Descriptor.Digest != e.Descriptor.Digest {
					t.Errorf("resolve %s: %v %v", e.Name, r, err)
				}
				loaded, err := dst.Image(e.Descriptor.Digest)
				if err != nil {
					t.Fatal(err)
				}
				if err := validate.Image(loaded); err != nil {
					t.Errorf("validate %s: %v", e.Name, err)
				}
				// A docker archive has no manifest, so the manifest
				// digest is new, but config and layers are the same
				// bytes.
				wc, wl := blobsOf(t, img)
				gc, gl := blobsOf(t, loaded)
				if wc != gc || !equalHashes(wl, gl) {
					t.Errorf("%s: loaded config %s layers %v, want %s %v", e.Name, gc, gl, wc, wl)
				}
				if err := dst.Verify(e.Descriptor); err != nil {
					t.Errorf("verify %s: %v", e.Name, err)
				}
			}
			if tmp := dirNames(t, dst.Root()+"/tmp"); len(tmp) != 0 {
				t.Errorf("temporary files left: %v", tmp)
			}
		})
	}
}

func equalHashes(a, b []v1.Hash) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestSaveDockerPlatform(t *testing.T) {
	f := newOCIFixture(t)
	arm := platformImage(t, f.s, f.multi.Digest, "arm64")
	armCfg, _ := blobsOf(t, arm)
	b := save(t, f.s, SaveOptions{Format: DockerArchive, Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}, "multi:1")
	tag, _ := name.NewTag("multi:1")
	got, err := tarball.ImageFromPath(writeTemp(t, b), &tag)
	if err != nil {
		t.Fatal(err)
	}
	if gc, _ := blobsOf(t, got); gc != armCfg {
		t.Errorf("saved config %s, want the arm64 image's %s", gc, armCfg)
	}

	var buf bytes.Buffer
	err = Save(context.Background(), &buf, f.s, []string{"multi:1"}, SaveOptions{Format: DockerArchive, Platform: &v1.Platform{OS: "linux", Architecture: "s390x"}})
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("save of a missing platform: %v", err)
	}
	for _, s := range []string{"linux/s390x", "linux/amd64", "linux/arm64", "multi:1", string(OCIArchive)} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %s", err, s)
		}
	}
}

func TestSaveDockerRefusesZstd(t *testing.T) {
	s := newStore(t)
	var tarBuf bytes.Buffer
	tw := tar.NewWriter(&tarBuf)
	tw.WriteHeader(&tar.Header{Name: "f", Typeflag: tar.TypeReg, Size: 5, Mode: 0o644})
	tw.Write([]byte("hello"))
	tw.Close()
	raw := tarBuf.Bytes()
	zl, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil },
		tarball.WithCompression(ggcrcompression.ZStd), tarball.WithMediaType(types.OCILayerZStd))
	if err != nil {
		t.Fatal(err)
	}
	img := ociImage(t, "amd64", zl)
	putImage(t, s, "zimg:1", img)
	zd, _ := zl.Digest()

	var buf bytes.Buffer
	err = Save(context.Background(), &buf, s, []string{"zimg:1"}, SaveOptions{Format: DockerArchive})
	if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), zd.String()) || !strings.Contains(err.Error(), string(OCIArchive)) {
		t.Fatalf("docker-archive of a zstd image: %v", err)
	}
	// The same image goes through oci-archive unchanged.
	b := save(t, s, SaveOptions{}, "zimg:1")
	dst := newStore(t)
	got, err := Load(context.Background(), bytes.NewReader(b), dst, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()
	if len(got) != 1 || got[0].Descriptor.Digest != want {
		t.Fatalf("loaded %v, want %s", got, want)
	}
	// validate.Image reads layers as gzip only; check the blobs instead.
	if err := dst.Verify(got[0].Descriptor); err != nil {
		t.Error(err)
	}
	loaded, _ := dst.Image(want)
	if _, ll := blobsOf(t, loaded); len(ll) != 1 || ll[0] != zd {
		t.Errorf("loaded layers %v, want %s", ll, zd)
	}
}

func TestLoadDockerUntagged(t *testing.T) {
	f := newOCIFixture(t)
	b := save(t, f.s, SaveOptions{Format: DockerArchive}, "app@"+f.a.Digest.String())
	var manifest tarball.Manifest
	for _, e := range readTar(t, b) {
		if e.hdr.Name == "manifest.json" {
			json.Unmarshal(e.body, &manifest)
		}
	}
	if len(manifest) != 1 || len(manifest[0].RepoTags) != 0 {
		t.Fatalf("manifest.json %+v, want one image without tags", manifest)
	}
	dst := newStore(t)
	got, err := Load(context.Background(), bytes.NewReader(b), dst, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Name != "" {
		t.Fatalf("loaded %v, want one unnamed image", got)
	}
	if err := dst.Verify(got[0].Descriptor); err != nil {
		t.Errorf("unnamed image not whole: %v", err)
	}
	if names, _ := dst.List(); len(names) != 0 {
		t.Errorf("names %v after loading an untagged image", names)
	}
}

func TestLoadDockerUncompressedLayers(t *testing.T) {
	// docker save and skopeo write plain layer tars; drove stores them
	// gzip-compressed by go-containerregistry, checked against the config's
	// diff_ids.
	f := newOCIFixture(t)
	src, _ := f.s.Image(f.a.Digest)
	layers, _ := src.Layers()
	cfg, _ := src.RawConfigFile()
	entries := []tarEntry{{&tar.Header{Name: "config.json", Typeflag: tar.TypeReg, Mode: 0o644}, cfg}}
	var files []string
	for i, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(rc)
		rc.Close()
		n := fmt.Sprintf("layer%d/layer.tar", i)
		files = append(files, n)
		entries = append(entries, tarEntry{&tar.Header{Name: n, Typeflag: tar.TypeReg, Mode: 0o644}, body})
	}
	// The first layer is reached through a symlink, as docker save does for
	// layers shared by several images.
	entries = append(entries, tarEntry{&tar.Header{Name: "other/layer.tar", Linkname: "../layer0/layer.tar", Typeflag: tar.TypeSymlink}, nil})
	files[0] = "other/layer.tar"
	m, _ := json.Marshal(tarball.Manifest{
		{Config: "config.json", RepoTags: []string{"plain:1"}, Layers: files},
	})
	entries = append(entries, tarEntry{&tar.Header{Name: "manifest.json", Typeflag: tar.TypeReg, Mode: 0o644}, m})
	dst := newStore(t)
	got, err := LoadFile(context.Background(), writeTemp(t, writeTar(t, entries)), dst, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Name != "docker.io/library/plain:1" {
		t.Fatalf("loaded %v", got)
	}
	img, _ := dst.Image(got[0].Descriptor.Digest)
	if err := validate.Image(img); err != nil {
		t.Fatal(err)
	}
	want, _ := src.ConfigFile()
	have, _ := img.ConfigFile()
	if !equalHashes(want.RootFS.DiffIDs, have.RootFS.DiffIDs) {
		t.Errorf("diff_ids %v, want %v", have.RootFS.DiffIDs, want.RootFS.DiffIDs)
	}

	// A plain layer that does not unpack to its diff_id is refused.
	entries[1].body = bytes.Clone(entries[1].body)
	entries[1].body[len(entries[1].body)/2] ^= 1
	dst2 := newStore(t)
	before := snapshot(t, dst2)
	if _, err := LoadFile(context.Background(), writeTemp(t, writeTar(t, entries)), dst2, LoadOptions{}); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "other/layer.tar") {
		t.Fatalf("load of a damaged plain layer: %v", err)
	}
	assertUnchanged(t, dst2, before)
}
