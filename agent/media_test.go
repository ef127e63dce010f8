package agent

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/drove-project/drove/internal/testimage"
	"github.com/drove-project/drove/layers/archive"
	"github.com/drove-project/drove/layers/store"
	"github.com/drove-project/drove/protocol"
)

const (
	mediaImage = "docker.io/library/media-test:v1"
	mediaMulti = "docker.io/library/media-multi:v1"
)

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func jsonLog() (*slog.Logger, *syncBuffer) {
	var buf syncBuffer
	return slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), &buf
}

// mediaFixture is a media tree as the media carry it: `drove save`'s OCI
// archive of a one-platform image (three layers) and a two-platform
// index, untarred with tar(1).
type mediaFixture struct {
	dir    string
	src    *store.Store // where the images were built
	image  v1.Descriptor
	multi  v1.Descriptor
	layers []v1.Hash // of the one-platform image
}

func newMediaFixture(t *testing.T) *mediaFixture {
	t.Helper()
	tarBin, err := exec.LookPath("tar")
	if err != nil {
		t.Skipf("media tests untar with tar(1): %v", err)
	}
	src, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f := &mediaFixture{dir: t.TempDir(), src: src}
	img := testimage.Image(t, testimage.Spec{Layers: 3, LayerSize: 64 << 10, Arch: "amd64"})
	if f.image, err = src.WriteImage(t.Context(), img, store.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := src.Tag(mediaImage, f.image); err != nil {
		t.Fatal(err)
	}
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		d, _ := l.Digest()
		f.layers = append(f.layers, d)
	}
	idx := testimage.Index(t, testimage.Spec{Layers: 1, LayerSize: 64 << 10}, "amd64", "arm64")
	if f.multi, err = src.WriteIndex(t.Context(), idx, store.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := src.Tag(mediaMulti, f.multi); err != nil {
		t.Fatal(err)
	}
	archivePath := filepath.Join(t.TempDir(), "image.tar")
	out, err := os.Create(archivePath)
	if err != nil {
		t.Fatal(err)
	}
	if err := archive.Save(t.Context(), out, src, []string{mediaImage, mediaMulti}, archive.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command(tarBin, "-xf", archivePath, "-C", f.dir).CombinedOutput(); err != nil {
		t.Fatalf("untar the media image: %v\n%s", err, b)
	}
	return f
}

// blobs lists every blob the media image and index reach.
func (f *mediaFixture) blobs(t *testing.T) []v1.Hash {
	t.Helper()
	var out []v1.Hash
	for _, d := range []v1.Descriptor{f.image, f.multi} {
		err := walkForTest(t, f.src, d, func(h v1.Hash) {
			if !slices.Contains(out, h) {
				out = append(out, h)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func walkForTest(t *testing.T, s *store.Store, d v1.Descriptor, fn func(v1.Hash)) error {
	fn(d.Digest)
	b, err := s.ReadBlob(d.Digest)
	if err != nil {
		return err
	}
	children, err := manifestChildren(d, b)
	if err != nil {
		return err
	}
	for _, c := range children {
		if c.MediaType.IsImage() || c.MediaType.IsIndex() {
			if err := walkForTest(t, s, c, fn); err != nil {
				return err
			}
			continue
		}
		fn(c.Digest)
	}
	return nil
}

// tamper flips one byte in the middle of blob h on the media.
func (f *mediaFixture) tamper(t *testing.T, h v1.Hash) string {
	t.Helper()
	path := filepath.Join(f.dir, "blobs", "sha256", h.Hex)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func openStore(t *testing.T) *store.Store {
	t.Helper()
	s, err := store.Open(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Every blob of complete media reaches the store verified and each image
// is named; a second import reads nothing again.
func TestImportMediaCompleteIsIdempotent(t *testing.T) {
	f := newMediaFixture(t)
	st := openStore(t)
	want := f.blobs(t)
	rep, err := ImportMedia(t.Context(), f.dir, st, MediaOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Refused) != 0 || rep.Blobs != len(want) || rep.Imported != len(want) || rep.Present != 0 || rep.Bytes <= 0 {
		t.Fatalf("first import: %+v, want all %d blobs imported", rep, len(want))
	}
	for _, h := range want {
		if err := st.VerifyBlob(h); err != nil {
			t.Errorf("blob %s after the import: %v", h, err)
		}
	}
	for name, d := range map[string]v1.Descriptor{mediaImage: f.image, mediaMulti: f.multi} {
		e, err := st.Resolve(name)
		if err != nil || e.Descriptor.Digest != d.Digest {
			t.Errorf("%s in the store: %+v %v, want %s", name, e, err, d.Digest)
		}
	}
	if !slices.Equal(rep.Named, []string{mediaImage, mediaMulti}) {
		t.Errorf("named %v", rep.Named)
	}

	again, err := ImportMedia(t.Context(), f.dir, st, MediaOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if again.Imported != 0 || again.Bytes != 0 || again.Present != len(want) || len(again.Refused) != 0 {
		t.Fatalf("second import: %+v, want every blob found present", again)
	}
	tmp, _ := os.ReadDir(filepath.Join(st.Root(), "tmp"))
	if len(tmp) != 0 {
		t.Errorf("the store's tmp holds %d files after the imports", len(tmp))
	}
}

// A tampered layer is refused and named, in the report and at error level
// in the log; every other blob is imported; the image that needs the
// layer stays unnamed, the other is named.
func TestImportMediaRefusesTamperedBlob(t *testing.T) {
	f := newMediaFixture(t)
	bad := f.layers[1]
	path := f.tamper(t, bad)
	st := openStore(t)
	log, buf := jsonLog()
	rep, err := ImportMedia(t.Context(), f.dir, st, MediaOptions{Log: log})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Refused) != 1 || rep.Refused[0].Digest != bad || rep.Refused[0].Path != path ||
		!errors.Is(rep.Refused[0].Err, store.ErrDigestMismatch) {
		t.Fatalf("refused %+v, want only %s (%s) with a digest mismatch", rep.Refused, bad, path)
	}
	for _, h := range f.blobs(t) {
		if got := st.HasBlob(h); got == (h == bad) {
			t.Errorf("blob %s in the store: %v", h, got)
		}
	}
	if _, err := st.Resolve(mediaImage); !store.IsNotFound(err) {
		t.Errorf("the image with the refused layer is named: %v", err)
	}
	if !slices.Equal(rep.Named, []string{mediaMulti}) || !slices.Equal(rep.Unnamed, []string{mediaImage}) {
		t.Errorf("named %v, unnamed %v", rep.Named, rep.Unnamed)
	}
	var refusal string
	for line := range strings.Lines(buf.String()) {
		if strings.Contains(line, `"level":"ERROR"`) && strings.Contains(line, "refused") {
			refusal = line
		}
	}
	if !strings.Contains(refusal, bad.String()) || !strings.Contains(refusal, path) {
		t.Fatalf("no error-level log line names %s and %s:\n%s", bad, path, buf.String())
	}
	tmp, _ := os.ReadDir(filepath.Join(st.Root(), "tmp"))
	if len(tmp) != 0 {
		t.Errorf("the refused blob left %d files in the store's tmp", len(tmp))
	}
}

// A missing, a truncated and a tampered manifest: each refused with its
// reason; the image behind the tampered manifest is not imported at all
// (nothing unverified says what it holds).
func TestImportMediaRefusesMissingTruncatedAndBadManifest(t *testing.T) {
	f := newMediaFixture(t)
	if err := os.Remove(filepath.Join(f.dir, "blobs", "sha256", f.layers[0].Hex)); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(filepath.Join(f.dir, "blobs", "sha256", f.layers[2].Hex), 100); err != nil {
		t.Fatal(err)
	}
	f.tamper(t, f.multi.Digest)
	st := openStore(t)
	rep, err := ImportMedia(t.Context(), f.dir, st, MediaOptions{})
	if err != nil {
		t.Fatal(err)
	}
	why := map[v1.Hash]error{}
	for _, r := range rep.Refused {
		why[r.Digest] = r.Err
	}
	if len(why) != 3 || !errors.Is(why[f.layers[0]], fs.ErrNotExist) || !errors.Is(why[f.layers[2]], store.ErrDigestMismatch) ||
		!errors.Is(why[f.multi.Digest], store.ErrDigestMismatch) {
		t.Fatalf("refused %+v", rep.Refused)
	}
	if !st.HasBlob(f.layers[1]) || !st.HasBlob(f.image.Digest) {
		t.Errorf("the blobs that verified were not imported")
	}
	if len(rep.Named) != 0 {
		t.Errorf("named %v although both images lack blobs", rep.Named)
	}
}

// A directory that is no layout, or is gone, fails the import with an
// error naming it.
func TestImportMediaNotALayout(t *testing.T) {
	st := openStore(t)
	empty := t.TempDir()
	if _, err := ImportMedia(t.Context(), empty, st, MediaOptions{}); !errors.Is(err, ErrMediaLayout) || !strings.Contains(err.Error(), empty) {
		t.Errorf("empty directory: %v", err)
	}
	gone := filepath.Join(empty, "gone")
	if _, err := ImportMedia(t.Context(), gone, st, MediaOptions{}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing directory: %v", err)
	}
	if err := os.WriteFile(filepath.Join(empty, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(empty, "index.json"), []byte(`{"schemaVersion":1}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ImportMedia(t.Context(), empty, st, MediaOptions{}); !errors.Is(err, ErrMediaLayout) || !strings.Contains(err.Error(), "index.json") {
		t.Errorf("bad index.json: %v", err)
	}
}

// An import whose context ends stops with the context's cause.
func TestImportMediaStopsWithContext(t *testing.T) {
	f := newMediaFixture(t)
	ctx, cancel := context.WithCancelCause(t.Context())
	stopped := errors.New("agent stopping")
	cancel(stopped)
	if _, err := ImportMedia(ctx, f.dir, openStore(t), MediaOptions{}); !errors.Is(err, stopped) {
		t.Fatalf("import under an ended context: %v", err)
	}
}

// Progress lines report the bytes copied so far.
func TestImportMediaLogsProgress(t *testing.T) {
	log, buf := jsonLog()
	m := &mediaImport{dir: "/media", log: log, opts: MediaOptions{ProgressEvery: time.Millisecond}}
	m.done.Store(3 << 20)
	stop := m.reportProgress(4 << 20)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(buf.String(), `"copied":3145728,"of":4194304,"percent":75`) {
		if time.Now().After(deadline) {
			stop()
			t.Fatalf("no progress line:\n%s", buf.String())
		}
		time.Sleep(time.Millisecond) // polling interval
	}
	stop()
}

// An agent with media imports them when it runs, then gossips how many
// blobs it refused; a distribute step waits for the import.
func TestAgentImportsMediaAndReportsRefusals(t *testing.T) {
	f := newMediaFixture(t)
	f.tamper(t, f.layers[0])
	log, buf := jsonLog()
	dataDir := t.TempDir()
	a := newTestAgent(t, Config{DataDir: dataDir, Media: f.dir, Log: log})
	if _, ok := a.member().Labels[MediaRefusedLabel]; ok {
		t.Fatalf("refusals gossiped before the import: %v", a.member().Labels)
	}
	ran := false
	gated := a.afterMedia(ActionFunc(func(context.Context, protocol.Action, io.Writer) (int, map[string]string, error) {
		ran = true
		return 0, nil, nil
	}))
	ended, cancel := context.WithCancel(t.Context())
	cancel()
	if _, _, err := gated.Run(ended, protocol.Action{}, io.Discard); err == nil || ran {
		t.Fatalf("a step before the import ended ran (%v) or did not fail: %v", ran, err)
	}
	a.importMedia(t.Context())
	if _, _, err := gated.Run(t.Context(), protocol.Action{}, io.Discard); err != nil || !ran {
		t.Fatalf("a step after the import: ran %v, %v", ran, err)
	}
	if got := a.member().Labels[MediaRefusedLabel]; got != "1" {
		t.Errorf("gossiped %s=%q, want 1", MediaRefusedLabel, got)
	}
	var self protocol.Member
	for _, m := range a.gossip.Members() {
		if m.ID == a.ID() {
			self = m
		}
	}
	if self.Labels[MediaRefusedLabel] != "1" {
		t.Errorf("gossip meta of the node: %+v", self)
	}
	st, err := store.Open(filepath.Join(dataDir, "store"))
	if err != nil {
		t.Fatal(err)
	}
	if !st.HasBlob(f.layers[1]) || st.HasBlob(f.layers[0]) {
		t.Errorf("the agent's store after the import: layer 1 %v, tampered layer 0 %v", st.HasBlob(f.layers[1]), st.HasBlob(f.layers[0]))
	}
	if !strings.Contains(buf.String(), f.layers[0].String()) {
		t.Errorf("the agent's log does not name the refused blob %s", f.layers[0])
	}
}

// Media that are gone (removed after the install) are no error: the agent
// logs it and reports nothing.
func TestAgentMediaGone(t *testing.T) {
	log, buf := jsonLog()
	a := newTestAgent(t, Config{DataDir: t.TempDir(), Media: filepath.Join(t.TempDir(), "unmounted"), Log: log})
	a.importMedia(t.Context())
	select {
	case <-a.mediaDone:
	default:
		t.Fatal("media import not marked done")
	}
	if _, ok := a.member().Labels[MediaRefusedLabel]; ok || !strings.Contains(buf.String(), "media not found") {
		t.Errorf("labels %v; log:\n%s", a.member().Labels, buf.String())
	}
}
