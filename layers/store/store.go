// Package store is drove's local content store for cluster images.
//
// The store is an OCI image layout directory (oci-layout, index.json,
// blobs/sha256/…), so any OCI tool can read it (skopeo oci:DIR:NAME). We keep
// our own writer instead of go-containerregistry's layout writer or
// containerd's content/local store because we need two properties neither
// gives us together with a plain layout on disk:
//
//   - every blob is written to a temporary file, verified against its digest
//     and renamed into place, so a killed process never leaves a torn blob;
//   - a name is added to index.json (itself replaced atomically, under a file
//     lock) only after every blob it reaches is present, so a killed build,
//     pull or load never leaves a half image under a name.
//
// Reading goes through go-containerregistry's v1 interfaces, so the rest of
// drove (push, save, validate) works on store images like on any other.
package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/drove-project/drove/internal/atomicfile"
)

// Errors matched with errors.Is.
var (
	// ErrNotFound is returned when a name, digest or blob is not in the store.
	ErrNotFound = errors.New("not found")
	// ErrDigestMismatch is returned when content does not hash to the digest
	// it was given under.
	ErrDigestMismatch = errors.New("digest mismatch")
)

const (
	layoutFile    = "oci-layout"
	indexFile     = "index.json"
	lockFile      = ".lock"
	layoutVersion = `{"imageLayoutVersion":"1.0.0"}`
)

// Store is a local content store rooted at a directory. It is safe for use by
// several goroutines and several processes at once.
type Store struct {
	root string
}

// Open opens the store at root, creating an empty one if root does not hold
// one yet.
func Open(root string) (*Store, error) {
	s := &Store{root: root}
	for _, dir := range []string{root, s.blobDir(), s.tmpDir()} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("create store directory %s: %w", dir, err)
		}
	}
	err := s.withLock(unix.LOCK_EX, func() error {
		if _, err := os.Stat(filepath.Join(root, layoutFile)); errors.Is(err, os.ErrNotExist) {
			if err := atomicfile.WriteFile(filepath.Join(root, layoutFile), []byte(layoutVersion), 0o644); err != nil {
				return err
			}
		}
		if _, err := os.Stat(s.indexPath()); errors.Is(err, os.ErrNotExist) {
			return s.writeIndex(emptyIndex())
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", root, err)
	}
	return s, nil
}

// Root is the directory the store lives in.
func (s *Store) Root() string { return s.root }

func (s *Store) blobDir() string   { return filepath.Join(s.root, "blobs", "sha256") }
func (s *Store) tmpDir() string    { return filepath.Join(s.root, "tmp") }
func (s *Store) indexPath() string { return filepath.Join(s.root, indexFile) }

// withLock runs fn holding an flock on the store's lock file: LOCK_EX for
// changes to index.json and for pruning, LOCK_SH for consistent reads.
func (s *Store) withLock(how int, fn func() error) error {
	f, err := os.OpenFile(filepath.Join(s.root, lockFile), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("open lock file: %w", err)
	}
	defer f.Close()
	for {
		err = unix.Flock(int(f.Fd()), how)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("lock store: %w", err)
	}
	defer unix.Flock(int(f.Fd()), unix.LOCK_UN)
	return fn()
}
