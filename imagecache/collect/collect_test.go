package collect

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/drove-project/drove/imagecache/ocilayout"
	"github.com/drove-project/drove/internal/testregistry"
	"github.com/drove-project/drove/layers/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// upstream is a real registry holding the test images.
type upstream struct {
	reg     *testregistry.Registry
	shared  v1.Layer // in both a and b
	a, b    v1.Image // OCI, linux/amd64
	docker  v1.Image // docker schema2 media types, linux/amd64
	armOnly v1.Image // OCI, linux/arm64 only
	idx     v1.ImageIndex
	idxImgs map[string]v1.Image // "amd64" and "arm64"

	refA, refB, refIdx, refDocker, refArm, refMissing string
}

func startUpstream(t *testing.T) *upstream {
	t.Helper()
	reg := testregistry.Start(t, testregistry.Opts{})
	u := &upstream{reg: reg, shared: randomLayer(t, 256<<10, types.OCILayer)}
	u.a = buildImage(t, amd64, false, u.shared, randomLayer(t, 4096, types.OCILayer))
	u.b = buildImage(t, amd64, false, u.shared, randomLayer(t, 4096, types.OCILayer))
	u.docker = buildImage(t, amd64, true, randomLayer(t, 4096, types.DockerLayer), randomLayer(t, 2048, types.DockerLayer))
	u.armOnly = buildImage(t, arm64, false, randomLayer(t, 4096, types.OCILayer))
	u.idxImgs = map[string]v1.Image{
		"amd64": buildImage(t, amd64, false, randomLayer(t, 8192, types.OCILayer)),
		"arm64": buildImage(t, arm64, false, randomLayer(t, 8192, types.OCILayer)),
	}
	u.idx = buildIndex(t, u.idxImgs["amd64"], u.idxImgs["arm64"])

	u.refA = reg.Ref("team/a", ":a-v1")
	u.refB = reg.Ref("team/b", ":b-v1")
	u.refIdx = reg.Ref("multi", ":multi-v1")
	u.refDocker = reg.Ref("legacy", ":docker-v1")
	u.refArm = reg.Ref("armonly", ":arm-v1")
	u.refMissing = reg.Ref("nosuch", ":gone-v1")
	push(t, u.refA, u.a, nil)
	push(t, u.refB, u.b, nil)
	push(t, u.refDocker, u.docker, nil)
	push(t, u.refArm, u.armOnly, nil)
	push(t, u.refIdx, u.idx, nil)
	return u
}

// noAuthFile is a credentials file that does not exist, so that the
// user's own never leaks into a test.
func noAuthFile(t *testing.T) string {
	return filepath.Join(t.TempDir(), "no-config.json")
}

func TestCollectFromRegistry(t *testing.T) {
	u := startUpstream(t)
	dir := filepath.Join(t.TempDir(), "container-images")
	ct := newCountingTransport()
	var events []Event
	opts := Options{
		Platforms:   []v1.Platform{amd64},
		Registry:    registry.Options{Transport: ct, AuthFile: noAuthFile(t)},
		Concurrency: 4,
		Progress:    func(e Event) { events = append(events, e) },
	}
	reqs := []Request{
		{Ref: u.refA, AppName: "app-a"},
		{Ref: u.refB, AppName: "app-b"},
		{Ref: u.refIdx},
		{Ref: u.refDocker},
	}
	got, err := Collect(context.Background(), dir, reqs, opts)
	if err != nil {
		t.Fatalf("Collect: %v", err)
	}

	want := []Collected{
		{Ref: u.refA, AppName: "app-a", Digest: digestOf(t, u.a), MediaType: types.OCIManifestSchema1, Size: int64(len(rawOf(t, u.a))), Platforms: []v1.Platform{amd64}},
		{Ref: u.refB, AppName: "app-b", Digest: digestOf(t, u.b), MediaType: types.OCIManifestSchema1, Size: int64(len(rawOf(t, u.b))), Platforms: []v1.Platform{amd64}},
		{Ref: u.refIdx, Digest: digestOf(t, u.idx), MediaType: types.OCIImageIndex, Size: int64(len(rawOf(t, u.idx))), Platforms: []v1.Platform{amd64}},
		{Ref: u.refDocker, Digest: digestOf(t, u.docker), MediaType: types.DockerManifestSchema2, Size: int64(len(rawOf(t, u.docker))), Platforms: []v1.Platform{amd64}},
	}
	assertCollected(t, got, want)
	assertIndexEntries(t, dir, want)

	// Exactly the amd64 blobs: nothing of the index's arm64 image.
	wantFiles := hexes(imageBlobs(t, u.a), imageBlobs(t, u.b), []v1.Hash{digestOf(t, u.idx)},
		imageBlobs(t, u.idxImgs["amd64"]), imageBlobs(t, u.docker))
	files := blobFiles(t, dir)
	if !slices.Equal(files, wantFiles) {
		t.Errorf("blobs/sha256 holds\n%v\nwant\n%v", files, wantFiles)
	}
	for _, h := range imageBlobs(t, u.idxImgs["arm64"]) {
		if slices.Contains(files, h.Hex) {
			t.Errorf("arm64 blob %s was written", h)
		}
	}
	// The index blob is the upstream bytes, unchanged.
	if !fileEquals(t, filepath.Join(dir, "blobs", "sha256", digestOf(t, u.idx).Hex), rawOf(t, u.idx)) {
		t.Error("the index blob differs from the upstream index")
	}
	if n := ct.gets(digestOf(t, u.shared)); n != 1 {
		t.Errorf("shared layer fetched %d times, want 1", n)
	}
	if !fileEquals(t, filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`)) {
		t.Error("oci-layout missing or wrong")
	}
	assertNoTemps(t, dir)
	assertProgress(t, events, want)

	// A second run into the same layout fetches no blob and changes nothing.
	ct.reset()
	events = nil
	got2, err := Collect(context.Background(), dir, reqs, opts)
	if err != nil {
		t.Fatalf("second Collect: %v", err)
	}
	assertCollected(t, got2, want)
	if n := ct.total(); n != 0 {
		t.Errorf("second Collect fetched %d blobs, want 0", n)
	}
	if files2 := blobFiles(t, dir); !slices.Equal(files2, files) {
		t.Errorf("second Collect changed the blobs: %v", files2)
	}
	assertIndexEntries(t, dir, want)
	assertProgress(t, events, want)
}

func TestCollectedLayoutReadBySkopeo(t *testing.T) {
	skopeo := lookSkopeo(t)
	u := startUpstream(t)
	dir := t.TempDir()
	reqs := []Request{{Ref: u.refA}, {Ref: u.refIdx}, {Ref: u.refDocker}}
	opts := Options{Platforms: []v1.Platform{amd64}, Registry: registry.Options{AuthFile: noAuthFile(t)}}
	if _, err := Collect(context.Background(), dir, reqs, opts); err != nil {
		t.Fatalf("Collect: %v", err)
	}

	// skopeo sees the index exactly as upstream serves it.
	raw := runSkopeo(t, skopeo, "inspect", "--raw", "oci:"+dir+":multi-v1")
	if raw != string(rawOf(t, u.idx)) {
		t.Errorf("skopeo inspect --raw of the index:\n%s\nwant the upstream index\n%s", raw, rawOf(t, u.idx))
	}
	// Copying out verifies every blob skopeo reads against its digest.
	// skopeo's oci: transport skips entries with docker media types, so the
	// docker image is checked with go-containerregistry below instead.
	for tag, img := range map[string]v1.Image{"a-v1": u.a, "multi-v1": u.idxImgs["amd64"]} {
		out := filepath.Join(t.TempDir(), tag)
		runSkopeo(t, skopeo, "--override-os", "linux", "--override-arch", "amd64",
			"copy", "--preserve-digests", "oci:"+dir+":"+tag, "dir:"+out)
		if !fileEquals(t, filepath.Join(out, "manifest.json"), rawOf(t, img)) {
			t.Errorf("skopeo copy of %s: manifest differs from the upstream amd64 manifest", tag)
		}
	}
}

// TestCollectedLayoutValidates reads every collected image back through
// go-containerregistry's layout package and checks each blob and the
// config against the manifests (validate.Image).
func TestCollectedLayoutValidates(t *testing.T) {
	u := startUpstream(t)
	dir := t.TempDir()
	reqs := []Request{{Ref: u.refA}, {Ref: u.refB}, {Ref: u.refIdx}, {Ref: u.refDocker}}
	opts := Options{Platforms: []v1.Platform{amd64}, Registry: registry.Options{AuthFile: noAuthFile(t)}}
	if _, err := Collect(context.Background(), dir, reqs, opts); err != nil {
		t.Fatalf("Collect: %v", err)
	}
	p, err := layout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	images := map[v1.Hash]v1.Image{
		digestOf(t, u.a): u.a, digestOf(t, u.b): u.b, digestOf(t, u.docker): u.docker,
		digestOf(t, u.idxImgs["amd64"]): u.idxImgs["amd64"],
	}
	checked := 0
	for d := range images {
		var img v1.Image
		if d == digestOf(t, u.idxImgs["amd64"]) {
			idx, err := p.ImageIndex()
			if err != nil {
				t.Fatal(err)
			}
			inner, err := idx.ImageIndex(digestOf(t, u.idx))
			if err != nil {
				t.Fatalf("open collected index: %v", err)
			}
			img, err = inner.Image(d)
			if err != nil {
				t.Fatalf("open amd64 image of the index: %v", err)
			}
		} else if img, err = p.Image(d); err != nil {
			t.Fatalf("open collected image %s: %v", d, err)
		}
		if err := validate.Image(img); err != nil {
			t.Errorf("collected image %s is not valid: %v", d, err)
		}
		checked++
	}
	if checked != 4 {
		t.Fatalf("checked %d images", checked)
	}
}

func TestCollectReportsEveryFailure(t *testing.T) {
	u := startUpstream(t)
	dir := t.TempDir()
	reqs := []Request{
		{Ref: u.refA, AppName: "one"},
		{Ref: u.refMissing},
		{Ref: u.refArm},
		{Ref: "Not A Reference"},
		{Ref: u.refA, AppName: "two"},
	}
	opts := Options{Platforms: []v1.Platform{amd64}, Registry: registry.Options{AuthFile: noAuthFile(t)}}
	got, err := Collect(context.Background(), dir, reqs, opts)
	var missing *MissingError
	if !errors.As(err, &missing) {
		t.Fatalf("Collect error = %v, want a *MissingError", err)
	}
	if len(missing.Failures) != 3 {
		t.Fatalf("failures = %+v, want 3", missing.Failures)
	}
	checks := []struct {
		ref      string
		sentinel error
		mention  []string
	}{
		{u.refMissing, registry.ErrNotFound, []string{"not found"}},
		{u.refArm, ErrPlatformNotFound, []string{"linux/arm64", "linux/amd64"}},
		{"Not A Reference", nil, []string{"invalid reference"}},
	}
	for i, c := range checks {
		f := missing.Failures[i]
		if f.Ref != c.ref {
			t.Errorf("failure %d is for %q, want %q", i, f.Ref, c.ref)
		}
		if c.sentinel != nil && !errors.Is(f.Err, c.sentinel) {
			t.Errorf("failure %s: %v, want errors.Is %v", f.Ref, f.Err, c.sentinel)
		}
		for _, m := range c.mention {
			if !strings.Contains(f.Err.Error(), m) {
				t.Errorf("failure %s: %q does not mention %q", f.Ref, f.Err, m)
			}
		}
	}
	t.Logf("the error users see:\n%v", err)
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != 4 || !strings.Contains(lines[0], "3 container images") {
		t.Errorf("error message:\n%s\nwant a heading and one line per failure", err)
	}
	for i, c := range checks {
		if !strings.Contains(lines[i+1], c.ref) {
			t.Errorf("line %q does not name %s", lines[i+1], c.ref)
		}
	}
	if !errors.Is(err, registry.ErrNotFound) || !errors.Is(err, ErrPlatformNotFound) {
		t.Errorf("errors.Is does not see the failures' sentinels through %v", err)
	}

	// The good image is collected for both requests, and only it is written.
	dA := digestOf(t, u.a)
	if len(got) != 2 || got[0].AppName != "one" || got[1].AppName != "two" || got[0].Digest != dA || got[1].Digest != dA {
		t.Errorf("collected %+v, want %s twice (apps one, two)", got, u.refA)
	}
	entries := indexEntries(t, dir)
	if len(entries) != 1 || entries[0].Digest != dA {
		t.Errorf("index.json entries %+v, want only %s", entries, u.refA)
	}
	if files, want := blobFiles(t, dir), hexes(imageBlobs(t, u.a)); !slices.Equal(files, want) {
		t.Errorf("blobs %v, want only image a's %v", files, want)
	}
}

func TestCollectIndexPlatforms(t *testing.T) {
	u := startUpstream(t)
	opts := Options{Registry: registry.Options{AuthFile: noAuthFile(t)}}

	t.Run("a requested platform the index lacks", func(t *testing.T) {
		dir := t.TempDir()
		opts := opts
		opts.Platforms = []v1.Platform{amd64, riscv64}
		_, err := Collect(context.Background(), dir, []Request{{Ref: u.refIdx}}, opts)
		if !errors.Is(err, ErrPlatformNotFound) {
			t.Fatalf("Collect error = %v, want ErrPlatformNotFound", err)
		}
		for _, m := range []string{u.refIdx, "linux/riscv64", "offers linux/amd64, linux/arm64"} {
			if !strings.Contains(err.Error(), m) {
				t.Errorf("error %q does not mention %q", err, m)
			}
		}
		if files := blobFiles(t, dir); len(files) != 0 {
			t.Errorf("blobs written for a failed image: %v", files)
		}
		if entries := indexEntries(t, dir); len(entries) != 0 {
			t.Errorf("index.json entries %v, want none", entries)
		}
	})

	t.Run("both platforms", func(t *testing.T) {
		dir := t.TempDir()
		opts := opts
		// arm64/v8 is how some indexes spell arm64; containerd treats it so.
		opts.Platforms = []v1.Platform{{OS: "linux", Architecture: "arm64", Variant: "v8"}, amd64}
		got, err := Collect(context.Background(), dir, []Request{{Ref: u.refIdx}}, opts)
		if err != nil {
			t.Fatalf("Collect: %v", err)
		}
		if len(got) != 1 || len(got[0].Platforms) != 2 {
			t.Fatalf("collected %+v, want the index with 2 platforms", got)
		}
		want := hexes([]v1.Hash{digestOf(t, u.idx)}, imageBlobs(t, u.idxImgs["amd64"]), imageBlobs(t, u.idxImgs["arm64"]))
		if files := blobFiles(t, dir); !slices.Equal(files, want) {
			t.Errorf("blobs %v, want %v", files, want)
		}
	})
}

func TestCollectSkipsBlobsOfLowerLayers(t *testing.T) {
	u := startUpstream(t)
	dir := t.TempDir()
	ct := newCountingTransport()
	shared := digestOf(t, u.shared)
	var asked []v1.Hash
	opts := Options{
		Platforms: []v1.Platform{amd64},
		Registry:  registry.Options{Transport: ct, AuthFile: noAuthFile(t)},
		// One at a time: Have is called concurrently otherwise.
		Concurrency: 1,
		Have: func(h v1.Hash) bool {
			asked = append(asked, h)
			return h == shared
		},
	}
	got, err := Collect(context.Background(), dir, []Request{{Ref: u.refA}, {Ref: u.refB}}, opts)
	if err != nil {
		t.Fatalf("Collect: %v", err)
	}
	if len(got) != 2 {
		t.Fatalf("collected %+v", got)
	}
	if n := ct.gets(shared); n != 0 {
		t.Errorf("blob reported by Have fetched %d times", n)
	}
	files := blobFiles(t, dir)
	if slices.Contains(files, shared.Hex) {
		t.Error("blob reported by Have was written")
	}
	want := slices.DeleteFunc(hexes(imageBlobs(t, u.a), imageBlobs(t, u.b)), func(s string) bool { return s == shared.Hex })
	if !slices.Equal(files, want) {
		t.Errorf("blobs %v, want %v", files, want)
	}
	if !slices.Contains(asked, shared) {
		t.Error("Have was never asked about the shared layer")
	}
	// The manifests still reference it, and index.json names both images.
	assertIndexEntries(t, dir, got)
}

func assertCollected(t *testing.T, got, want []Collected) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("collected %d images, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Ref != w.Ref || g.AppName != w.AppName || g.Digest != w.Digest || g.MediaType != w.MediaType ||
			g.Size != w.Size || !slices.EqualFunc(g.Platforms, w.Platforms, func(a, b v1.Platform) bool { return a.Equals(b) }) {
			t.Errorf("collected[%d] = %+v\nwant %+v", i, g, w)
		}
	}
}

// assertIndexEntries checks that index.json has exactly one entry per
// image, with the upstream descriptor and both name annotations.
func assertIndexEntries(t *testing.T, dir string, want []Collected) {
	t.Helper()
	entries := indexEntries(t, dir)
	if len(entries) != len(want) {
		t.Fatalf("index.json has %d entries, want %d: %+v", len(entries), len(want), entries)
	}
	for i, w := range want {
		e := entries[i]
		tag := w.Ref[strings.LastIndex(w.Ref, ":")+1:]
		if e.Digest != w.Digest || e.MediaType != w.MediaType || e.Size != w.Size ||
			e.Annotations[ocilayout.ImageNameAnnotation] != w.Ref || e.Annotations[ocilayout.RefNameAnnotation] != tag {
			t.Errorf("index.json entry %d = %+v, want %s %s %d named %s / %s", i, e, w.MediaType, w.Digest, w.Size, w.Ref, tag)
		}
	}
}

// assertProgress checks that every image started, moved forward and
// ended Done with all its bytes.
func assertProgress(t *testing.T, events []Event, want []Collected) {
	t.Helper()
	for _, w := range want {
		var mine []Event
		for _, e := range events {
			if e.Ref == w.Ref {
				mine = append(mine, e)
			}
		}
		if len(mine) < 3 || mine[0].Phase != Started || mine[len(mine)-1].Phase != Done {
			t.Errorf("%s: events %+v, want Started ... Done", w.Ref, mine)
			continue
		}
		last := mine[len(mine)-1]
		if last.Total <= w.Size || last.Done != last.Total {
			t.Errorf("%s: Done event %+v, want all bytes of manifest, config and layers", w.Ref, last)
		}
		var prev int64
		for _, e := range mine[1:] {
			if e.Done < prev || e.Done > e.Total {
				t.Errorf("%s: progress went from %d to %d of %d", w.Ref, prev, e.Done, e.Total)
			}
			prev = e.Done
		}
	}
}
