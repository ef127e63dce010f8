package collect

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// tempPrefix starts the name of every temporary file Collect writes inside
// the layout; such files are renamed away or removed before Collect returns.
const tempPrefix = ".drove-tmp-"

// opener opens the bytes of one blob; the reader is closed by the caller.
type opener func(ctx context.Context) (io.ReadCloser, error)

// blobStore writes blobs into a layout's blobs/sha256/ and makes sure each
// digest is fetched by one goroutine at a time: a second caller for the
// same digest waits for the first and, if that one failed, fetches itself.
type blobStore struct {
	dir  string // <layout>/blobs/sha256
	have func(v1.Hash) bool

	mu       sync.Mutex
	inflight map[v1.Hash]*fetchCall
	waiting  int // callers waiting for another's fetch; tests poll it
}

// fetchCall is one blob being written; done closes when it ends, with or
// without success.
type fetchCall struct {
	done chan struct{}
}

func newBlobStore(layoutDir string, have func(v1.Hash) bool) *blobStore {
	return &blobStore{
		dir:      filepath.Join(layoutDir, blobsSubdir, sha256Subdir),
		have:     have,
		inflight: make(map[v1.Hash]*fetchCall),
	}
}

// path returns where the blob d lives in the layout.
func (s *blobStore) path(d v1.Hash) string { return filepath.Join(s.dir, d.Hex) }

// present reports whether the blob is in the layout with the expected
// size. Its bytes are not re-hashed: every blob got there verified.
func (s *blobStore) present(d v1.Descriptor) bool {
	fi, err := os.Stat(s.path(d.Digest))
	return err == nil && fi.Mode().IsRegular() && fi.Size() == d.Size
}

// skip reports whether the blob need not be written: it is in the layout
// or carried elsewhere (Options.Have).
func (s *blobStore) skip(d v1.Descriptor) bool {
	return s.present(d) || (s.have != nil && s.have(d.Digest))
}

// readLocal returns the blob's bytes when it is in the layout.
func (s *blobStore) readLocal(d v1.Descriptor) ([]byte, bool) {
	if !s.present(d) {
		return nil, false
	}
	b, err := os.ReadFile(s.path(d.Digest))
	if err != nil || int64(len(b)) != d.Size || !digestMatches(b, d.Digest) {
		return nil, false
	}
	return b, true
}

// ensure makes the blob d present in the layout unless it already is or
// Have reports it. It calls open at most once, only when this caller has to
// write the blob, and reports written bytes to progress. It returns whether
// this caller wrote the blob.
func (s *blobStore) ensure(ctx context.Context, d v1.Descriptor, open opener, progress func(int64)) (bool, error) {
	if d.Digest.Algorithm != "sha256" {
		return false, fmt.Errorf("blob %s: %w: only sha256 digests are supported", d.Digest, ErrUnsupported)
	}
	for {
		if s.skip(d) {
			return false, nil
		}
		s.mu.Lock()
		call, busy := s.inflight[d.Digest]
		if busy {
			s.waiting++
		} else {
			call = &fetchCall{done: make(chan struct{})}
			s.inflight[d.Digest] = call
		}
		s.mu.Unlock()
		if busy {
			var err error
			select {
			case <-call.done:
				// Present now, or the other fetch failed and this caller
				// tries with its own source.
			case <-ctx.Done():
				err = context.Cause(ctx)
			}
			s.mu.Lock()
			s.waiting--
			s.mu.Unlock()
			if err != nil {
				return false, err
			}
			continue
		}
		// Another caller may have finished between skip and taking the slot.
		var err error
		wrote := false
		if !s.present(d) {
			err = s.write(ctx, d, open, progress)
			wrote = err == nil
		}
		s.mu.Lock()
		delete(s.inflight, d.Digest)
		s.mu.Unlock()
		close(call.done)
		return wrote, err
	}
}

// write fetches the blob through open into a temporary file, checks its
// size and digest while copying, and renames it into place.
func (s *blobStore) write(ctx context.Context, d v1.Descriptor, open opener, progress func(int64)) error {
	rc, err := open(ctx)
	if err != nil {
		return err
	}
	defer rc.Close()
	f, err := os.CreateTemp(s.dir, tempPrefix+d.Digest.Hex[:12]+"-*")
	if err != nil {
		return fmt.Errorf("write blob %s: %w", d.Digest, err)
	}
	tmp := f.Name()
	err = copyVerified(ctx, f, rc, d, progress)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("write blob %s: %w", d.Digest, cerr)
	}
	if err == nil {
		if err = os.Chmod(tmp, 0o644); err == nil {
			err = os.Rename(tmp, s.path(d.Digest))
		}
		if err != nil {
			err = fmt.Errorf("write blob %s: %w", d.Digest, err)
		}
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return nil
}

// copyVerified copies exactly d.Size bytes from r to w, stopping when ctx
// ends, and fails unless they hash to d.Digest.
func copyVerified(ctx context.Context, w io.Writer, r io.Reader, d v1.Descriptor, progress func(int64)) error {
	h := sha256.New()
	buf := make([]byte, 128<<10)
	var n int64
	for {
		if err := context.Cause(ctx); err != nil {
			return err
		}
		k, rerr := r.Read(buf)
		if k > 0 {
			n += int64(k)
			if n > d.Size {
				return fmt.Errorf("blob %s: %w: more than the %d bytes its descriptor gives", d.Digest, ErrDigestMismatch, d.Size)
			}
			h.Write(buf[:k])
			if _, err := w.Write(buf[:k]); err != nil {
				return fmt.Errorf("write blob %s: %w", d.Digest, err)
			}
			if progress != nil {
				progress(int64(k))
			}
		}
		if errors.Is(rerr, io.EOF) {
			break
		}
		if rerr != nil {
			if cerr := context.Cause(ctx); cerr != nil {
				return cerr
			}
			// go-containerregistry checks the digest too and fails the
			// last read; say so in drove's terms.
			if n == d.Size && hex.EncodeToString(h.Sum(nil)) != d.Digest.Hex {
				return fmt.Errorf("blob %s: %w: %v", d.Digest, ErrDigestMismatch, rerr)
			}
			return fmt.Errorf("fetch blob %s: %w", d.Digest, rerr)
		}
	}
	if n != d.Size {
		return fmt.Errorf("blob %s: %w: got %d bytes, its descriptor gives %d", d.Digest, ErrDigestMismatch, n, d.Size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != d.Digest.Hex {
		return fmt.Errorf("blob %s: %w: its bytes hash to sha256:%s", d.Digest, ErrDigestMismatch, got)
	}
	return nil
}

// digestMatches reports whether b hashes to d.
func digestMatches(b []byte, d v1.Hash) bool {
	sum := sha256.Sum256(b)
	return d.Algorithm == "sha256" && hex.EncodeToString(sum[:]) == d.Hex
}

// removeStaleTemps deletes temporary files a killed earlier run left in
// the layout.
func removeStaleTemps(layoutDir string) error {
	for _, dir := range []string{layoutDir, filepath.Join(layoutDir, blobsSubdir, sha256Subdir)} {
		entries, err := os.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("clean OCI image layout: %w", err)
		}
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), tempPrefix) {
				if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return fmt.Errorf("clean OCI image layout: %w", err)
				}
			}
		}
	}
	return nil
}
