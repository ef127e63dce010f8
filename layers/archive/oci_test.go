package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/drove-project/drove/layers/store"
)

// ociFixture is a store with two images sharing a layer and a
// multi-platform image.
type ociFixture struct {
	s               *store.Store
	a, b, multi     v1.Descriptor
	shared          v1.Hash
	blobs           map[v1.Hash]bool
	refs, wantNames []string
}

func newOCIFixture(t *testing.T) ociFixture {
	t.Helper()
	s := newStore(t)
	shared := randomLayer(t, 2048)
	f := ociFixture{s: s, blobs: map[v1.Hash]bool{}}
	f.a = putImage(t, s, "app:v1", ociImage(t, "amd64", shared, randomLayer(t, 1024)))
	f.b = putImage(t, s, "ghcr.io/acme/tools:2", ociImage(t, "amd64", shared))
	f.multi = putIndex(t, s, "multi:1", multiPlatform(t, "amd64", "arm64"))
	f.shared, _ = shared.Digest()
	for _, d := range []v1.Descriptor{f.a, f.b, f.multi} {
		if err := walk(s, d, func(d v1.Descriptor) error { f.blobs[d.Digest] = true; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	f.refs = []string{"app:v1", "ghcr.io/acme/tools:2", "multi:1"}
	f.wantNames = []string{"docker.io/library/app:v1", "ghcr.io/acme/tools:2", "docker.io/library/multi:1"}
	return f
}

func TestSaveOCILayout(t *testing.T) {
	f := newOCIFixture(t)
	b := save(t, f.s, SaveOptions{}, f.refs...)
	entries := readTar(t, b)
	if entries[0].hdr.Name != "oci-layout" || string(entries[0].body) != layoutJSON {
		t.Fatalf("first entry %q %q, want oci-layout", entries[0].hdr.Name, entries[0].body)
	}
	last := entries[len(entries)-1]
	if last.hdr.Name != "index.json" {
		t.Fatalf("last entry is %s, want index.json", last.hdr.Name)
	}
	count := map[string]int{}
	for _, e := range entries {
		if e.hdr.Uid != 0 || e.hdr.Gid != 0 || !e.hdr.ModTime.Equal(epoch) || e.hdr.Uname != "" {
			t.Errorf("%s: header not deterministic: uid %d gid %d mtime %v", e.hdr.Name, e.hdr.Uid, e.hdr.Gid, e.hdr.ModTime)
		}
		if strings.HasPrefix(e.hdr.Name, "blobs/sha256/") && e.hdr.Typeflag == tar.TypeReg {
			count[e.hdr.Name]++
			h, _, _ := v1.SHA256(bytes.NewReader(e.body))
			if "blobs/sha256/"+h.Hex != e.hdr.Name {
				t.Errorf("%s holds content hashing to %s", e.hdr.Name, h)
			}
		}
	}
	if len(count) != len(f.blobs) {
		t.Errorf("archive has %d blobs, want %d", len(count), len(f.blobs))
	}
	for n, c := range count {
		if c != 1 {
			t.Errorf("%s written %d times", n, c)
		}
	}
	if count["blobs/sha256/"+f.shared.Hex] != 1 {
		t.Errorf("shared layer %s missing", f.shared)
	}
	var im v1.IndexManifest
	if err := json.Unmarshal(last.body, &im); err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 3 {
		t.Fatalf("index.json has %d entries, want 3", len(im.Manifests))
	}
	for i, d := range im.Manifests {
		if got := d.Annotations[store.RefNameAnnotation]; got != f.wantNames[i] {
			t.Errorf("entry %d named %q, want %q", i, got, f.wantNames[i])
		}
	}
	if im.Manifests[2].Digest != f.multi.Digest || !im.Manifests[2].MediaType.IsIndex() {
		t.Errorf("multi-platform image saved as %v", im.Manifests[2])
	}
	// Deterministic: the same images give the same bytes.
	if again := save(t, f.s, SaveOptions{}, f.refs...); !bytes.Equal(b, again) {
		t.Error("two saves of the same images differ")
	}
}

func TestSaveLoadOCIRoundTrip(t *testing.T) {
	f := newOCIFixture(t)
	b := save(t, f.s, SaveOptions{}, f.refs...)
	for _, tc := range []struct {
		name string
		load func(s *store.Store) ([]store.Entry, error)
	}{
		{"stream", func(s *store.Store) ([]store.Entry, error) {
			return Load(context.Background(), io.MultiReader(bytes.NewReader(b)), s, LoadOptions{})
		}},
		{"file", func(s *store.Store) ([]store.Entry, error) {
			return LoadFile(context.Background(), writeTemp(t, b), s, LoadOptions{})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := newStore(t)
			got, err := tc.load(dst)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 3 {
				t.Fatalf("loaded %v, want 3 entries", got)
			}
			for i, want := range []v1.Descriptor{f.a, f.b, f.multi} {
				if got[i].Name != f.wantNames[i] || got[i].Descriptor.Digest != want.Digest {
					t.Errorf("entry %d: %s %s, want %s %s", i, got[i].Name, got[i].Descriptor.Digest, f.wantNames[i], want.Digest)
				}
				e, err := dst.Resolve(f.refs[i])
				if err != nil || e.Descriptor.Digest != want.Digest {
					t.Errorf("resolve %s: %v %v", f.refs[i], e, err)
				}
			}
			for _, d := range []v1.Descriptor{f.a, f.b} {
				img, err := dst.Image(d.Digest)
				if err != nil {
					t.Fatal(err)
				}
				if err := validate.Image(img); err != nil {
					t.Errorf("validate %s: %v", d.Digest, err)
				}
			}
			idx, err := dst.Index(f.multi.Digest)
			if err != nil {
				t.Fatal(err)
			}
			if err := validate.Index(idx); err != nil {
				t.Errorf("validate index: %v", err)
			}
			if blobs := dirNames(t, dst.Root()+"/blobs/sha256"); len(blobs) != len(f.blobs) {
				t.Errorf("store holds %d blobs, want %d", len(blobs), len(f.blobs))
			}
			if tmp := dirNames(t, dst.Root()+"/tmp"); len(tmp) != 0 {
				t.Errorf("temporary files left: %v", tmp)
			}
		})
	}
}

func TestLoadCompressedInput(t *testing.T) {
	f := newOCIFixture(t)
	b := save(t, f.s, SaveOptions{}, "app:v1")
	for _, c := range compressors {
		t.Run(c.name, func(t *testing.T) {
			z := c.compress(t, b)
			if sniff(z) != c.kind {
				t.Fatalf("sniffed %v, want %v", sniff(z), c.kind)
			}
			dst := newStore(t)
			got, err := Load(context.Background(), bytes.NewReader(z), dst, LoadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0].Descriptor.Digest != f.a.Digest {
				t.Fatalf("loaded %v", got)
			}
			// Compressed files are streamed, not read in place.
			dst2 := newStore(t)
			if _, err := LoadFile(context.Background(), writeTemp(t, z), dst2, LoadOptions{}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestLoadSkipsBlobsAlreadyPresent(t *testing.T) {
	f := newOCIFixture(t)
	b := save(t, f.s, SaveOptions{}, "app:v1", "ghcr.io/acme/tools:2")
	dst := newStore(t)
	// dst already has tools:2, which shares a layer with app:v1.
	img, _ := f.s.Image(f.b.Digest)
	putImage(t, dst, "ghcr.io/acme/tools:2", img)
	before := snapshot(t, dst)
	sharedPath := dst.BlobPath(f.shared)
	st1, err := os.Stat(sharedPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Load(context.Background(), bytes.NewReader(b), dst, LoadOptions{}); err != nil {
		t.Fatal(err)
	}
	st2, err := os.Stat(sharedPath)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(st1, st2) {
		t.Error("a blob the store had was written again")
	}
	after := snapshot(t, dst)
	if len(after.names) != len(before.names)+1 {
		t.Errorf("names %v after load, before %v", after.names, before.names)
	}
}

func TestLoadOCIArchiveWithLeadingExtraFile(t *testing.T) {
	// A file that is neither OCI nor docker metadata first makes the scan
	// spool; with index.json and no manifest.json the spool is read again
	// as OCI.
	f := newOCIFixture(t)
	entries := readTar(t, save(t, f.s, SaveOptions{}, "app:v1"))
	readme := tarEntry{&tar.Header{Name: "README", Typeflag: tar.TypeReg, Mode: 0o644}, []byte("cluster image")}
	b := writeTar(t, append([]tarEntry{readme}, entries...))
	dst := newStore(t)
	got, err := Load(context.Background(), bytes.NewReader(b), dst, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Name != "docker.io/library/app:v1" || got[0].Descriptor.Digest != f.a.Digest {
		t.Fatalf("loaded %v", got)
	}
}

func TestLoadDockerStyleOCIArchive(t *testing.T) {
	// Docker 25+ writes an OCI layout whose ref.name is a bare tag, the full
	// name in io.containerd.image.name, plus manifest.json and
	// repositories.
	f := newOCIFixture(t)
	entries := readTar(t, save(t, f.s, SaveOptions{}, "app:v1"))
	last := &entries[len(entries)-1]
	var im v1.IndexManifest
	if err := json.Unmarshal(last.body, &im); err != nil {
		t.Fatal(err)
	}
	im.Manifests[0].Annotations = map[string]string{store.RefNameAnnotation: "v1", ContainerdNameAnnotation: "docker.io/library/app:v1"}
	last.body, _ = json.Marshal(im)
	extra := []tarEntry{
		{&tar.Header{Name: "manifest.json", Typeflag: tar.TypeReg}, []byte(`[{"Config":"blobs/sha256/x","RepoTags":["app:v1"],"Layers":[]}]`)},
		{&tar.Header{Name: "repositories", Typeflag: tar.TypeReg}, []byte(`{}`)},
	}
	dst := newStore(t)
	got, err := Load(context.Background(), bytes.NewReader(writeTar(t, append(entries, extra...))), dst, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Name != "docker.io/library/app:v1" {
		t.Fatalf("loaded %v", got)
	}
}

func TestLoadUnnamedEntry(t *testing.T) {
	f := newOCIFixture(t)
	b := save(t, f.s, SaveOptions{}, "app@"+f.a.Digest.String(), "ghcr.io/acme/tools:2")
	dst := newStore(t)
	got, err := Load(context.Background(), bytes.NewReader(b), dst, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Name != "" || got[0].Descriptor.Digest != f.a.Digest || got[1].Name != "ghcr.io/acme/tools:2" {
		t.Fatalf("loaded %v", got)
	}
	if err := walk(dst, got[0].Descriptor, func(d v1.Descriptor) error {
		if !dst.HasBlob(d.Digest) {
			return errors.New("missing " + d.Digest.String())
		}
		return nil
	}); err != nil {
		t.Fatalf("unnamed image not kept: %v", err)
	}
	if names, _ := dst.List(); len(names) != 1 {
		t.Fatalf("names %v, want only tools:2", names)
	}
}

func TestProgress(t *testing.T) {
	f := newOCIFixture(t)
	var saveDone, saveTotal int64
	var buf bytes.Buffer
	err := Save(context.Background(), &buf, f.s, []string{"app:v1"}, SaveOptions{Progress: func(d, t int64) { saveDone, saveTotal = d, t }})
	if err != nil {
		t.Fatal(err)
	}
	if saveDone == 0 || saveDone != saveTotal {
		t.Errorf("save progress ended at %d/%d", saveDone, saveTotal)
	}
	p := writeTemp(t, buf.Bytes())
	var done, total int64
	if _, err := LoadFile(context.Background(), p, newStore(t), LoadOptions{Progress: func(d, t int64) { done, total = d, t }}); err != nil {
		t.Fatal(err)
	}
	if total != int64(buf.Len()) || done != total {
		t.Errorf("file load progress ended at %d/%d, want %d/%d", done, total, buf.Len(), buf.Len())
	}
	if _, err := Load(context.Background(), io.MultiReader(bytes.NewReader(buf.Bytes())), newStore(t), LoadOptions{Progress: func(d, t int64) { done, total = d, t }}); err != nil {
		t.Fatal(err)
	}
	if total != -1 || done != int64(buf.Len()) {
		t.Errorf("stream load progress ended at %d/%d, want %d/-1", done, total, buf.Len())
	}
}

func TestSaveErrors(t *testing.T) {
	f := newOCIFixture(t)
	var buf bytes.Buffer
	if err := Save(context.Background(), &buf, f.s, []string{"nope:1"}, SaveOptions{}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("save of a missing image: %v", err)
	}
	if err := Save(context.Background(), &buf, f.s, nil, SaveOptions{}); err == nil {
		t.Error("save of nothing succeeded")
	}
	if err := Save(context.Background(), &buf, f.s, []string{"app:v1"}, SaveOptions{Format: "zip"}); !errors.Is(err, ErrUnsupported) {
		t.Errorf("save as zip: %v", err)
	}
	// A blob damaged in the store is caught while saving.
	m, _ := f.s.Image(f.a.Digest)
	mf, _ := m.Manifest()
	p := f.s.BlobPath(mf.Layers[1].Digest)
	os.Chmod(p, 0o644)
	raw, _ := os.ReadFile(p)
	raw[len(raw)/2] ^= 0xff
	if err := os.WriteFile(p, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	err := Save(context.Background(), io.Discard, f.s, []string{"app:v1"}, SaveOptions{})
	if !errors.Is(err, store.ErrDigestMismatch) || !strings.Contains(err.Error(), mf.Layers[1].Digest.Hex) {
		t.Errorf("save of a damaged image: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Save(ctx, io.Discard, f.s, []string{"ghcr.io/acme/tools:2"}, SaveOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("save with a cancelled context: %v", err)
	}
}

func TestParseFormat(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Format
		ok   bool
	}{
		{"", OCIArchive, true},
		{"oci-archive", OCIArchive, true},
		{"docker-archive", DockerArchive, true},
		{"oci", "", false},
		{"tar", "", false},
	} {
		got, err := ParseFormat(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseFormat(%q) = %q, %v", tc.in, got, err)
		}
	}
}

func TestLoadIndexFirst(t *testing.T) {
	// index.json may come anywhere, here before the blobs it names.
	f := newOCIFixture(t)
	entries := readTar(t, save(t, f.s, SaveOptions{}, f.refs...))
	last := entries[len(entries)-1]
	reordered := append([]tarEntry{last}, entries[:len(entries)-1]...)
	dst := newStore(t)
	got, err := Load(context.Background(), bytes.NewReader(writeTar(t, reordered)), dst, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[2].Name != f.wantNames[2] || got[2].Descriptor.Digest != f.multi.Digest {
		t.Fatalf("loaded %v", got)
	}
	if err := dst.Verify(got[2].Descriptor); err != nil {
		t.Fatal(err)
	}
}

func TestLoadSameNameTwice(t *testing.T) {
	// Two index.json entries giving one image the same name load once.
	f := newOCIFixture(t)
	entries := readTar(t, save(t, f.s, SaveOptions{}, "app:v1"))
	last := &entries[len(entries)-1]
	var im v1.IndexManifest
	if err := json.Unmarshal(last.body, &im); err != nil {
		t.Fatal(err)
	}
	im.Manifests = append(im.Manifests, im.Manifests[0])
	im.Manifests[1].Annotations = map[string]string{store.RefNameAnnotation: "app:v1"}
	last.body, _ = json.Marshal(im)
	got, err := Load(context.Background(), bytes.NewReader(writeTar(t, entries)), newStore(t), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Name != "docker.io/library/app:v1" || got[0].Descriptor.Digest != f.a.Digest {
		t.Fatalf("loaded %v", got)
	}
}
