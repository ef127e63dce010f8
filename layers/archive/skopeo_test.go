package archive

import (
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/drove-project/drove/layers/store"
)

// skopeo runs skopeo, skipping the test when it is not installed.
func skopeo(t *testing.T, args ...string) []byte {
	t.Helper()
	if _, err := exec.LookPath("skopeo"); err != nil {
		t.Skip("skopeo not installed (apt-get install skopeo): skipping the cross-check")
	}
	args = append([]string{"--insecure-policy"}, args...)
	out, err := exec.Command("skopeo", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("skopeo %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func TestSkopeoReadsSavedOCIArchive(t *testing.T) {
	f := newOCIFixture(t)
	p := writeTemp(t, save(t, f.s, SaveOptions{}, f.refs...))
	for i, d := range []v1.Descriptor{f.a, f.b, f.multi} {
		raw := skopeo(t, "inspect", "--raw", "oci-archive:"+p+":"+f.wantNames[i])
		if h, _, _ := v1.SHA256(strings.NewReader(string(raw))); h != d.Digest {
			t.Errorf("skopeo read %s as %s, want %s", f.wantNames[i], h, d.Digest)
		}
	}
	// Not only the manifest: skopeo copies every blob, verifying each.
	out := filepath.Join(t.TempDir(), "layout")
	skopeo(t, "copy", "--all", "oci-archive:"+p+":"+f.wantNames[2], "oci:"+out+":copied")
	var inspect struct{ Digest string }
	if err := json.Unmarshal(skopeo(t, "inspect", "oci-archive:"+p+":"+f.wantNames[0]), &inspect); err != nil {
		t.Fatal(err)
	}
	if inspect.Digest != f.a.Digest.String() {
		t.Errorf("skopeo inspect gave digest %s, want %s", inspect.Digest, f.a.Digest)
	}
	// An archive of one image needs no name.
	one := writeTemp(t, save(t, f.s, SaveOptions{}, "ghcr.io/acme/tools:2"))
	raw := skopeo(t, "inspect", "--raw", "oci-archive:"+one)
	if h, _, _ := v1.SHA256(strings.NewReader(string(raw))); h != f.b.Digest {
		t.Errorf("skopeo read the one image as %s, want %s", h, f.b.Digest)
	}
}

func TestLoadSkopeoOCIArchive(t *testing.T) {
	f := newOCIFixture(t)
	dir := t.TempDir()
	for _, tc := range []struct {
		src, ref string // in the store, in the archive
		opts     LoadOptions
		want     string // name loaded
		digest   v1.Hash
	}{
		{f.wantNames[0], f.wantNames[0], LoadOptions{}, "docker.io/library/app:v1", f.a.Digest},
		// skopeo copy --all writes the index anew (its digest changes),
		// but the images under it stay.
		{f.wantNames[2], f.wantNames[2], LoadOptions{}, "docker.io/library/multi:1", v1.Hash{}},
		// skopeo oci-archive:FILE:v1 records a bare tag: podman's
		// convention names it under localhost, BaseName under a repository.
		{f.wantNames[1], "v1", LoadOptions{}, "localhost/v1:latest", f.b.Digest},
		{f.wantNames[1], "v1", LoadOptions{BaseName: "registry.local/tools"}, "registry.local/tools:v1", f.b.Digest},
	} {
		t.Run(tc.want, func(t *testing.T) {
			p := filepath.Join(dir, strings.NewReplacer("/", "_", ":", "_").Replace(tc.want)+".tar")
			skopeo(t, "copy", "--all", "oci:"+f.s.Root()+":"+tc.src, "oci-archive:"+p+":"+tc.ref)
			dst := newStore(t)
			got, err := LoadFile(context.Background(), p, dst, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0].Name != tc.want || (tc.digest != v1.Hash{} && got[0].Descriptor.Digest != tc.digest) {
				t.Fatalf("loaded %v, want %s %s", got, tc.want, tc.digest)
			}
			if tc.digest == (v1.Hash{}) {
				tc.digest = got[0].Descriptor.Digest
				if !sameChildren(t, f.s, f.multi.Digest, dst, tc.digest) {
					t.Errorf("the index skopeo wrote holds other images than %s", f.multi.Digest)
				}
			}
			if err := dst.Verify(got[0].Descriptor); err != nil {
				t.Fatal(err)
			}
			if got[0].Descriptor.MediaType.IsIndex() {
				idx, _ := dst.Index(tc.digest)
				if err := validate.Index(idx); err != nil {
					t.Error(err)
				}
			} else {
				img, _ := dst.Image(tc.digest)
				if err := validate.Image(img); err != nil {
					t.Error(err)
				}
			}
		})
	}
}

func TestSkopeoDockerArchive(t *testing.T) {
	f := newOCIFixture(t)
	src, _ := f.s.Image(f.a.Digest)
	wantCfg, _ := src.ConfigFile()

	// skopeo reads what Save writes.
	p := writeTemp(t, save(t, f.s, SaveOptions{Format: DockerArchive}, "app:v1"))
	// skopeo lists a docker archive's layers by their diff_ids.
	var inspect struct{ Layers []string }
	if err := json.Unmarshal(skopeo(t, "inspect", "docker-archive:"+p+":app:v1"), &inspect); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, d := range wantCfg.RootFS.DiffIDs {
		want = append(want, d.String())
	}
	if strings.Join(inspect.Layers, " ") != strings.Join(want, " ") {
		t.Errorf("skopeo sees layers %v, want %v", inspect.Layers, want)
	}

	// drove loads what skopeo writes: plain layer tars, docker's layout.
	sk := filepath.Join(t.TempDir(), "skopeo-docker.tar")
	skopeo(t, "copy", "oci:"+f.s.Root()+":"+f.wantNames[0], "docker-archive:"+sk+":app:v1")
	dst := newStore(t)
	got, err := LoadFile(context.Background(), sk, dst, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Name != "docker.io/library/app:v1" {
		t.Fatalf("loaded %v", got)
	}
	img, _ := dst.Image(got[0].Descriptor.Digest)
	if err := validate.Image(img); err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	if !equalHashes(cf.RootFS.DiffIDs, wantCfg.RootFS.DiffIDs) {
		t.Errorf("diff_ids %v, want %v", cf.RootFS.DiffIDs, wantCfg.RootFS.DiffIDs)
	}
}

// sameChildren reports whether two indexes list the same manifests.
func sameChildren(t *testing.T, a *store.Store, ah v1.Hash, b *store.Store, bh v1.Hash) bool {
	t.Helper()
	var children [2][]v1.Hash
	for i, x := range []struct {
		s *store.Store
		h v1.Hash
	}{{a, ah}, {b, bh}} {
		idx, err := x.s.Index(x.h)
		if err != nil {
			t.Fatal(err)
		}
		im, err := idx.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range im.Manifests {
			children[i] = append(children[i], d.Digest)
		}
	}
	return len(children[0]) > 0 && equalHashes(children[0], children[1])
}
