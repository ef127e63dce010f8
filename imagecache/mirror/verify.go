package mirror

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/singleflight"
)

// verifier checks blob files against their digests, hashing each file once:
// a verdict is kept per path and reused while the file's size and
// modification time stay the same. Concurrent checks of one file share one
// hashing pass.
type verifier struct {
	mu    sync.Mutex
	seen  map[string]verdict
	group singleflight.Group
	// hashed counts the files hashed, for tests.
	hashed atomic.Int64
}

// verdict is the result of hashing one file in one state.
type verdict struct {
	size    int64
	modTime time.Time
	// got is the digest of the file's bytes.
	got v1.Hash
}

// check reports whether the open file f (found at path, in state fi) holds
// exactly the bytes of digest want, and returns the digest it does hold.
func (v *verifier) check(f *os.File, fi os.FileInfo, path string, want v1.Hash) (ok bool, got v1.Hash, err error) {
	v.mu.Lock()
	vd, known := v.seen[path]
	v.mu.Unlock()
	if known && vd.size == fi.Size() && vd.modTime.Equal(fi.ModTime()) {
		return vd.got == want, vd.got, nil
	}
	key := path + "\x00" + strconv.FormatInt(fi.Size(), 10) + "\x00" + strconv.FormatInt(fi.ModTime().UnixNano(), 10)
	res, err, _ := v.group.Do(key, func() (any, error) {
		v.hashed.Add(1)
		h, err := hashFile(f, fi.Size(), want.Algorithm)
		if err != nil {
			return v1.Hash{}, err
		}
		v.mu.Lock()
		if v.seen == nil {
			v.seen = map[string]verdict{}
		}
		v.seen[path] = verdict{size: fi.Size(), modTime: fi.ModTime(), got: h}
		v.mu.Unlock()
		return h, nil
	})
	if err != nil {
		return false, v1.Hash{}, err
	}
	got = res.(v1.Hash)
	return got == want, got, nil
}

// hashFile digests the first size bytes of f with algorithm.
func hashFile(f *os.File, size int64, algorithm string) (v1.Hash, error) {
	hasher, err := v1.Hasher(algorithm)
	if err != nil {
		return v1.Hash{}, err
	}
	if _, err := io.Copy(hasher, io.NewSectionReader(f, 0, size)); err != nil {
		return v1.Hash{}, fmt.Errorf("hash %s: %w", f.Name(), err)
	}
	return v1.Hash{Algorithm: algorithm, Hex: fmt.Sprintf("%x", hasher.Sum(nil))}, nil
}

// forget drops the verdict kept for path, a file that no longer exists, so
// the cache holds no more entries than there are blob files.
func (v *verifier) forget(path string) {
	v.mu.Lock()
	delete(v.seen, path)
	v.mu.Unlock()
}
