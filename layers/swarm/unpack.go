package swarm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/drove-project/drove/internal/atomicfile"
	"github.com/drove-project/drove/layers/layer"
	"github.com/drove-project/drove/layers/store"
)

// Unpack extracts the layers of the image whose manifest (in the store) has
// digest imageDigest into the directory dest, in manifest order, applying
// whiteouts (layer.Decompress and layer.Apply). It works in a temporary
// directory beside dest and renames it to dest at the end, so dest either
// does not exist or holds the whole image. If dest exists already Unpack
// does nothing: its content is not checked.
//
// Each layer blob is re-hashed while it is read and must match its digest
// (ErrDigestMismatch), as must the uncompressed stream match the config's
// diff ID when the config lists one per layer (a layer stored uncompressed,
// its diff ID its digest, is hashed once). Temporary directories of an
// Unpack that crashed stay beside dest, named .<base>.unpack-*.
func Unpack(ctx context.Context, s *store.Store, imageDigest v1.Hash, dest string) error {
	return UnpackVerified(ctx, s, imageDigest, dest, nil)
}

// UnpackVerified is Unpack for a caller that has just hashed some of the
// image's blobs into the store (a fetch verifies each blob as it commits
// it): those, listed in verified, are not hashed again. A node that had
// just received an image hashed every byte four times: each piece, the
// blob at commit, and here the blob and its tar.
func UnpackVerified(ctx context.Context, s *store.Store, imageDigest v1.Hash, dest string, verified map[v1.Hash]bool) (err error) {
	if _, err := os.Lstat(dest); err == nil {
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("unpack image %s: %w", imageDigest, err)
	}
	m, _, err := readManifest(s, imageDigest)
	if err != nil {
		return fmt.Errorf("unpack image %s: %w", imageDigest, err)
	}
	diffIDs, err := readDiffIDs(s, m)
	if err != nil {
		return fmt.Errorf("unpack image %s: %w", imageDigest, err)
	}
	parent := filepath.Dir(dest)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("unpack image %s: %w", imageDigest, err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dest)+".unpack-*")
	if err != nil {
		return fmt.Errorf("unpack image %s: %w", imageDigest, err)
	}
	defer func() {
		if err != nil {
			removeTree(tmp)
		}
	}()
	for i, l := range m.Layers {
		var diffID v1.Hash
		if len(diffIDs) == len(m.Layers) {
			diffID = diffIDs[i]
		}
		if err := applyLayer(ctx, s, l.Digest, diffID, verified[l.Digest], tmp); err != nil {
			return fmt.Errorf("unpack image %s: layer %d: %w", imageDigest, i, err)
		}
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("unpack image %s: %w", imageDigest, err)
	}
	if err := os.Rename(tmp, dest); err != nil {
		if _, serr := os.Lstat(dest); serr == nil {
			removeTree(tmp) // another Unpack finished first
			return nil
		}
		return fmt.Errorf("unpack image %s: %w", imageDigest, err)
	}
	if err := atomicfile.SyncDir(parent); err != nil {
		return fmt.Errorf("unpack image %s: %w", imageDigest, err)
	}
	return nil
}

// readDiffIDs returns the config's diff IDs (nil when it has none).
func readDiffIDs(s *store.Store, m *v1.Manifest) ([]v1.Hash, error) {
	raw, err := s.ReadBlob(m.Config.Digest)
	if err != nil {
		return nil, fmt.Errorf("read config %s: %w", m.Config.Digest, err)
	}
	cf, err := v1.ParseConfigFile(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("decode config %s: %v: %w", m.Config.Digest, err, ErrBadManifest)
	}
	return cf.RootFS.DiffIDs, nil
}

// applyLayer applies one layer blob to dir, checking its digest (unless
// verified says the caller just did) and, when diffID is not zero, the
// digest of its uncompressed tar (which is the blob's when diffID is d).
func applyLayer(ctx context.Context, s *store.Store, d, diffID v1.Hash, verified bool, dir string) error {
	f, err := s.OpenBlob(d)
	if err != nil {
		return fmt.Errorf("open layer: %w", err)
	}
	defer f.Close()
	var blob io.Reader = f
	var blobHash hash.Hash
	if !verified {
		blobHash = sha256.New()
		blob = io.TeeReader(f, blobHash)
	}
	rc, err := layer.Decompress(blob)
	if err != nil {
		return fmt.Errorf("layer %s: %w", d, err)
	}
	defer rc.Close()
	var tr io.Reader = rc
	var tarHash hash.Hash
	if diffID != (v1.Hash{}) && diffID != d {
		tarHash = sha256.New()
		tr = io.TeeReader(rc, tarHash)
	}
	if _, err := layer.Apply(ctx, dir, tr); err != nil {
		return fmt.Errorf("layer %s: %w", d, err)
	}
	// The tar reader stops at the end-of-archive marker: read the rest.
	if _, err := io.Copy(io.Discard, tr); err != nil {
		return fmt.Errorf("layer %s: read to end: %w", d, err)
	}
	if _, err := io.Copy(io.Discard, blob); err != nil {
		return fmt.Errorf("layer %s: read to end: %w", d, err)
	}
	if blobHash != nil {
		if got := hex.EncodeToString(blobHash.Sum(nil)); got != d.Hex {
			return fmt.Errorf("layer %s: blob hashes to sha256:%s: %w", d, got, ErrDigestMismatch)
		}
	}
	if tarHash != nil {
		if got := hex.EncodeToString(tarHash.Sum(nil)); diffID.Algorithm != "sha256" || got != diffID.Hex {
			return fmt.Errorf("layer %s: uncompressed tar hashes to sha256:%s, config says %s: %w", d, got, diffID, ErrDigestMismatch)
		}
	}
	return nil
}

// removeTree removes a partly unpacked tree, first making its directories
// writable (a layer may have made some read-only).
func removeTree(dir string) {
	if os.RemoveAll(dir) == nil {
		return
	}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			os.Chmod(p, 0o700)
		}
		return nil
	})
	os.RemoveAll(dir)
}
