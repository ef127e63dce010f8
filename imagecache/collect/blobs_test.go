package collect

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// blobOf returns content and its descriptor.
func blobOf(content string) ([]byte, v1.Descriptor) {
	b := []byte(content)
	sum := sha256.Sum256(b)
	return b, v1.Descriptor{
		MediaType: types.OCILayer,
		Digest:    v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])},
		Size:      int64(len(b)),
	}
}

func newTestStore(t *testing.T, have func(v1.Hash) bool) (*blobStore, string) {
	t.Helper()
	dir := t.TempDir()
	if _, err := prepareLayout(dir); err != nil {
		t.Fatal(err)
	}
	return newBlobStore(dir, have), dir
}

func bytesOpener(b []byte) opener {
	return func(context.Context) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
}

// waitFor polls cond until it holds or a deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestEnsureFetchesSharedBlobOnce(t *testing.T) {
	s, dir := newTestStore(t, nil)
	content, d := blobOf("shared layer bytes")
	release := make(chan struct{})
	var opens atomic.Int32
	open := func(context.Context) (io.ReadCloser, error) {
		opens.Add(1)
		<-release
		return io.NopCloser(bytes.NewReader(content)), nil
	}
	const callers = 6
	var wg sync.WaitGroup
	wrote := make([]bool, callers)
	errs := make([]error, callers)
	for i := range callers {
		wg.Go(func() { wrote[i], errs[i] = s.ensure(context.Background(), d, open, nil) })
	}
	// All but the fetching caller are waiting for it before it finishes.
	waitFor(t, "callers to queue", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.waiting == callers-1
	})
	close(release)
	wg.Wait()
	n := 0
	for i := range callers {
		if errs[i] != nil {
			t.Errorf("caller %d: %v", i, errs[i])
		}
		if wrote[i] {
			n++
		}
	}
	if opens.Load() != 1 || n != 1 {
		t.Errorf("blob opened %d times, written by %d callers; want 1 and 1", opens.Load(), n)
	}
	if !fileEquals(t, filepath.Join(dir, "blobs", "sha256", d.Digest.Hex), content) {
		t.Error("blob not in place")
	}
}

func TestEnsureRetriesAfterAFailedFetch(t *testing.T) {
	s, _ := newTestStore(t, nil)
	content, d := blobOf("retry me")
	release := make(chan struct{})
	failing := func(context.Context) (io.ReadCloser, error) {
		<-release
		return nil, errors.New("registry A is down")
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.ensure(context.Background(), d, failing, nil)
		done <- err
	}()
	waitFor(t, "the first fetch to start", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.inflight[d.Digest] != nil
	})
	second := make(chan error, 1)
	var wrote bool
	go func() {
		var err error
		wrote, err = s.ensure(context.Background(), d, bytesOpener(content), nil)
		second <- err
	}()
	waitFor(t, "the second caller to wait", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.waiting == 1
	})
	close(release)
	if err := <-done; err == nil {
		t.Error("the failing fetch reported success")
	}
	if err := <-second; err != nil || !wrote {
		t.Errorf("second caller: wrote=%v err=%v; want it to fetch from its own source", wrote, err)
	}
	if !s.present(d) {
		t.Error("blob not in place after the retry")
	}
}

func TestEnsureSkipsPresentAndHaveBlobs(t *testing.T) {
	present, dp := blobOf("already here")
	_, dh := blobOf("in a lower layer")
	s, dir := newTestStore(t, func(h v1.Hash) bool { return h == dh.Digest })
	if err := os.WriteFile(filepath.Join(dir, "blobs", "sha256", dp.Digest.Hex), present, 0o644); err != nil {
		t.Fatal(err)
	}
	never := func(context.Context) (io.ReadCloser, error) {
		t.Error("opened a blob that needs no fetch")
		return nil, errors.New("unexpected")
	}
	for _, d := range []v1.Descriptor{dp, dh} {
		wrote, err := s.ensure(context.Background(), d, never, nil)
		if err != nil || wrote {
			t.Errorf("ensure %s: wrote=%v err=%v", d.Digest, wrote, err)
		}
	}
	if _, err := os.Stat(s.path(dh.Digest)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("blob reported by Have was written: %v", err)
	}
}

func TestEnsureRejectsBadBytes(t *testing.T) {
	content, d := blobOf("the real bytes")
	tests := []struct {
		name string
		body []byte
	}{
		{"same size, other bytes", []byte("the fake bytes")},
		{"short", content[:5]},
		{"long", append(append([]byte{}, content...), "tail"...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, dir := newTestStore(t, nil)
			_, err := s.ensure(context.Background(), d, bytesOpener(tt.body), nil)
			if !errors.Is(err, ErrDigestMismatch) {
				t.Fatalf("ensure = %v, want ErrDigestMismatch", err)
			}
			if s.present(d) {
				t.Error("bad bytes were kept")
			}
			assertNoTemps(t, dir)
		})
	}
	t.Run("readLocal re-hashes a same-size file", func(t *testing.T) {
		s, _ := newTestStore(t, nil)
		// present() trusts sizes; readLocal re-hashes before using bytes.
		if err := os.WriteFile(s.path(d.Digest), []byte("the fake bytes"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, ok := s.readLocal(d); ok {
			t.Error("readLocal returned bytes that do not match the digest")
		}
	})
}

func TestEnsureStopsOnCancel(t *testing.T) {
	s, dir := newTestStore(t, nil)
	_, d := blobOf("never finished")
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	go func() {
		_, _ = pw.Write([]byte("never"))
		<-ctx.Done()
		pw.CloseWithError(ctx.Err())
	}()
	done := make(chan error, 1)
	go func() {
		_, err := s.ensure(ctx, d, func(context.Context) (io.ReadCloser, error) { return pr, nil }, nil)
		done <- err
	}()
	waitFor(t, "the temporary file", func() bool { return hasTemp(t, filepath.Join(dir, "blobs", "sha256")) })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("ensure = %v, want context.Canceled", err)
	}
	assertNoTemps(t, dir)
	if s.present(d) {
		t.Error("a cancelled blob was kept")
	}
}

func TestRemoveStaleTemps(t *testing.T) {
	dir := t.TempDir()
	if _, err := prepareLayout(dir); err != nil {
		t.Fatal(err)
	}
	stale := []string{filepath.Join(dir, tempPrefix+"index.json-1"), filepath.Join(dir, "blobs", "sha256", tempPrefix+"abc-2")}
	keep := filepath.Join(dir, "blobs", "sha256", "keepme")
	for _, p := range append(stale, keep) {
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := removeStaleTemps(dir); err != nil {
		t.Fatal(err)
	}
	for _, p := range stale {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s not removed", p)
		}
	}
	if _, err := os.Stat(keep); err != nil {
		t.Errorf("removed a file that is not a temp: %v", err)
	}
}
