package store

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"
)

// PruneResult says what Prune removed.
type PruneResult struct {
	Blobs []v1.Hash
	Bytes int64
}

// tmpGrace keeps temporary files that may belong to a write still running in
// another process.
const tmpGrace = time.Hour

// Prune removes every blob no name reaches, plus keep's extra roots (the
// build cache passes the layers it still points at), and stale temporary
// files. It holds the store's exclusive lock, so no name changes meanwhile.
func (s *Store) Prune(keep func(v1.Hash) bool) (PruneResult, error) {
	var res PruneResult
	err := s.withLock(unix.LOCK_EX, func() error {
		im, err := s.readIndex()
		if err != nil {
			return err
		}
		live := map[v1.Hash]bool{}
		for _, d := range im.Manifests {
			err := s.walk(d, func(d v1.Descriptor) error { live[d.Digest] = true; return nil })
			if err != nil && !IsNotFound(err) {
				return fmt.Errorf("walk %s: %w", d.Digest, err)
			}
		}
		ents, err := os.ReadDir(s.blobDir())
		if err != nil {
			return err
		}
		for _, e := range ents {
			h := v1.Hash{Algorithm: "sha256", Hex: e.Name()}
			if live[h] || (keep != nil && keep(h)) {
				continue
			}
			info, err := e.Info()
			if err != nil {
				continue
			}
			if err := os.Remove(filepath.Join(s.blobDir(), e.Name())); err != nil {
				return fmt.Errorf("remove blob %s: %w", h, err)
			}
			res.Blobs = append(res.Blobs, h)
			res.Bytes += info.Size()
		}
		tmps, _ := os.ReadDir(s.tmpDir())
		for _, e := range tmps {
			if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > tmpGrace {
				os.RemoveAll(filepath.Join(s.tmpDir(), e.Name()))
			}
		}
		return nil
	})
	return res, err
}
