package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/drove-project/drove/internal/atomicfile"
	"github.com/drove-project/drove/internal/ctxio"
	"github.com/drove-project/drove/protocol"
)

// BlobPath is where the blob with digest h lives (whether or not it exists).
func (s *Store) BlobPath(h v1.Hash) string { return filepath.Join(s.blobDir(), h.Hex) }

// HasBlob reports whether the blob with digest h is in the store.
func (s *Store) HasBlob(h v1.Hash) bool {
	if !protocol.ValidDigest(h.String()) {
		return false
	}
	_, err := os.Stat(s.BlobPath(h))
	return err == nil
}

// OpenBlob opens the blob with digest h for reading.
func (s *Store) OpenBlob(h v1.Hash) (*os.File, error) {
	if !protocol.ValidDigest(h.String()) {
		return nil, fmt.Errorf("blob %s: %w", h, ErrNotFound)
	}
	f, err := os.Open(s.BlobPath(h))
	if os.IsNotExist(err) {
		return nil, fmt.Errorf("blob %s: %w", h, ErrNotFound)
	}
	return f, err
}

// ReadBlob returns the whole content of a small blob (a manifest or config).
func (s *Store) ReadBlob(h v1.Hash) ([]byte, error) {
	f, err := s.OpenBlob(h)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// BlobWriter streams a new blob into the store. Nothing is visible under a
// digest until Commit has verified and renamed it.
type BlobWriter struct {
	s    *Store
	f    *os.File
	h    hash.Hash
	n    int64
	done bool
}

// NewBlobWriter starts a new blob in the store's temporary directory.
func (s *Store) NewBlobWriter() (*BlobWriter, error) {
	f, err := os.CreateTemp(s.tmpDir(), "blob-*")
	if err != nil {
		return nil, fmt.Errorf("create temporary blob: %w", err)
	}
	return &BlobWriter{s: s, f: f, h: sha256.New()}, nil
}

// Write adds p to the blob.
func (w *BlobWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.h.Write(p[:n])
	w.n += int64(n)
	return n, err
}

// Size is the number of bytes written so far.
func (w *BlobWriter) Size() int64 { return w.n }

// Digest is the digest of the bytes written so far.
func (w *BlobWriter) Digest() v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(w.h.Sum(nil))}
}

// Commit syncs the blob and renames it into place. If want is not zero the
// content must hash to it, else the blob is discarded with ErrDigestMismatch.
func (w *BlobWriter) Commit(want v1.Hash) (v1.Hash, error) {
	defer w.Cancel()
	got := w.Digest()
	if want != (v1.Hash{}) && want != got {
		return got, fmt.Errorf("blob %s: content hashes to %s: %w", want, got, ErrDigestMismatch)
	}
	if err := w.f.Sync(); err != nil {
		return got, fmt.Errorf("sync blob %s: %w", got, err)
	}
	if err := w.f.Chmod(0o444); err != nil {
		return got, fmt.Errorf("chmod blob %s: %w", got, err)
	}
	if err := w.f.Close(); err != nil {
		return got, fmt.Errorf("close blob %s: %w", got, err)
	}
	if err := os.Rename(w.f.Name(), w.s.BlobPath(got)); err != nil {
		return got, fmt.Errorf("store blob %s: %w", got, err)
	}
	w.done = true
	return got, atomicfile.SyncDir(w.s.blobDir())
}

// Cancel discards an uncommitted blob. It is safe to call after Commit.
func (w *BlobWriter) Cancel() {
	if w.done {
		return
	}
	w.done = true
	w.f.Close()
	os.Remove(w.f.Name())
}

// WriteBlob copies r into the store, verifying it against want when want is
// not zero. A blob already present is not written again (r is not read).
func (s *Store) WriteBlob(ctx context.Context, r io.Reader, want v1.Hash) (v1.Hash, int64, error) {
	if want != (v1.Hash{}) && s.HasBlob(want) {
		st, err := os.Stat(s.BlobPath(want))
		if err == nil {
			return want, st.Size(), nil
		}
	}
	w, err := s.NewBlobWriter()
	if err != nil {
		return v1.Hash{}, 0, err
	}
	defer w.Cancel()
	if _, err := io.CopyBuffer(w, ctxio.Reader(ctx, r), make([]byte, 1<<20)); err != nil {
		return v1.Hash{}, 0, fmt.Errorf("write blob %s: %w", want, err)
	}
	h, err := w.Commit(want)
	return h, w.n, err
}

// AdoptBlob moves the file at path into the store as blob want, without
// copying it: the file is hashed (it must hash to want, else
// ErrDigestMismatch and the file stays), synced and renamed into place, so
// path must be on the store's filesystem (else the rename fails and the
// caller copies with WriteBlob). A blob already present is kept and path
// removed.
func (s *Store) AdoptBlob(ctx context.Context, path string, want v1.Hash) error {
	if s.HasBlob(want) {
		return os.Remove(path)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("adopt blob %s: %w", want, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyBuffer(h, ctxio.Reader(ctx, f), make([]byte, 1<<20)); err != nil {
		return fmt.Errorf("adopt blob %s: %w", want, err)
	}
	if got := (v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}); got != want {
		return fmt.Errorf("adopt blob %s: content hashes to %s: %w", want, got, ErrDigestMismatch)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("adopt blob %s: %w", want, err)
	}
	if err := f.Chmod(0o444); err != nil {
		return fmt.Errorf("adopt blob %s: %w", want, err)
	}
	if err := os.Rename(path, s.BlobPath(want)); err != nil {
		return fmt.Errorf("adopt blob %s: %w", want, err)
	}
	return atomicfile.SyncDir(s.blobDir())
}

// PutBytes stores a small blob held in memory.
func (s *Store) PutBytes(ctx context.Context, b []byte) (v1.Hash, error) {
	h, _, err := s.WriteBlob(ctx, bytes.NewReader(b), v1.Hash{})
	return h, err
}

// VerifyBlob re-reads a blob and checks that it still hashes to its name.
func (s *Store) VerifyBlob(h v1.Hash) error {
	f, err := s.OpenBlob(h)
	if err != nil {
		return err
	}
	defer f.Close()
	d := sha256.New()
	if _, err := io.CopyBuffer(d, f, make([]byte, 1<<20)); err != nil {
		return fmt.Errorf("read blob %s: %w", h, err)
	}
	if got := hex.EncodeToString(d.Sum(nil)); got != h.Hex {
		return fmt.Errorf("blob %s: content hashes to sha256:%s: %w", h, got, ErrDigestMismatch)
	}
	return nil
}
