package store

import (
	"fmt"
	"os"
)

// CreateTemp creates a new file in the store's temporary directory, which is
// on the same filesystem as the blobs. The caller closes and removes it;
// Prune removes leftovers older than an hour.
func (s *Store) CreateTemp(pattern string) (*os.File, error) {
	f, err := os.CreateTemp(s.tmpDir(), pattern)
	if err != nil {
		return nil, fmt.Errorf("create temporary file in %s: %w", s.tmpDir(), err)
	}
	return f, nil
}
