package archive

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/drove-project/drove/layers/store"
)

// mode is what the scan has decided the archive is.
type mode int

const (
	modeUndecided mode = iota
	modeOCI            // blobs are streamed into the store
	modeDocker         // the stream is kept for random access
)

const (
	maxLayoutSize = 64 << 10
	maxEntries    = 1 << 20
	blockSize     = 512
)

// fileEntry is a file or link of the archive, remembered for docker
// archives, which name their files in manifest.json.
type fileEntry struct {
	name   string // of a regular file: its cleaned name
	offset int64  // of the content in the tar stream
	size   int64  // of the content
	target string // for links: the entry they point at
}

// scan is one pass over the tar stream. In OCI mode it streams every
// blobs/sha256/<hex> entry into the store; in every mode it keeps the small
// metadata files and an index of the others.
type scan struct {
	l      *loader
	in     *tarInput
	mode   mode
	forced bool // the mode was fixed before the scan began

	layout, index, dockerManifest []byte
	files                         map[string]fileEntry
	types                         map[string]byte // tar type of each name seen
	entries                       int
	end                           int64 // where the last entry's padded content ends
	last                          string
	buf                           []byte
}

func newScan(l *loader, in *tarInput, m mode) *scan {
	return &scan{l: l, in: in, mode: m, forced: m != modeUndecided, files: map[string]fileEntry{}, types: map[string]byte{}, buf: make([]byte, 1<<20)}
}

// run reads the whole archive. compressed says whether the tar came out of a
// decompressor, which settles whether a short first header is a truncated
// archive or not an archive at all.
func (sc *scan) run(tr *tar.Reader, compressed bool) error {
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return sc.headerError(err, compressed)
		}
		sc.entries++
		if sc.entries > maxEntries {
			return fmt.Errorf("%w: more than %d entries", ErrUnsupported, maxEntries)
		}
		sc.end = sc.in.n
		if hdr.Typeflag == tar.TypeReg {
			sc.end += (hdr.Size + blockSize - 1) / blockSize * blockSize
		}
		if err := sc.entry(tr, hdr); err != nil {
			return err
		}
	}
	switch {
	case sc.entries == 0 && sc.in.n == 0:
		return fmt.Errorf("%w: the input is empty", ErrNotArchive)
	case sc.in.n-sc.end < 2*blockSize:
		return fmt.Errorf("%w: no end-of-archive marker after %s", ErrTruncated, sc.lastName())
	case sc.entries == 0:
		return fmt.Errorf("%w: the tar is empty", ErrNotArchive)
	}
	return nil
}

func (sc *scan) lastName() string {
	if sc.last == "" {
		return "the start"
	}
	return sc.last
}

func (sc *scan) headerError(err error, compressed bool) error {
	if errors.Is(err, tar.ErrInsecurePath) {
		return fmt.Errorf("%w: %w", ErrUnsafePath, err)
	}
	if sc.entries == 0 {
		switch {
		case errors.Is(err, tar.ErrHeader):
			return fmt.Errorf("%w: no tar header at the start", ErrNotArchive)
		case errors.Is(err, io.ErrUnexpectedEOF) && !compressed:
			return fmt.Errorf("%w: %d bytes, shorter than one tar header", ErrNotArchive, sc.in.n)
		}
	}
	return readError("the tar header after "+sc.lastName(), err)
}

// entry handles one tar entry.
func (sc *scan) entry(tr *tar.Reader, hdr *tar.Header) error {
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		return nil // global PAX records (git archive writes them); nothing to load
	}
	name, err := entryName(hdr.Name)
	if err != nil {
		return err
	}
	sc.last = name
	// go-containerregistry reads the first entry of a name and drove the
	// last, so a docker archive naming a file twice could be checked in one
	// copy and loaded from the other. Only directories and blobs, which
	// are checked against their names, may repeat.
	if prev, dup := sc.types[name]; dup && !(prev == tar.TypeDir && hdr.Typeflag == tar.TypeDir) && !strings.HasPrefix(name, "blobs/") {
		return fmt.Errorf("%w: two entries named %s", ErrCorrupt, name)
	}
	sc.types[name] = hdr.Typeflag
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return fmt.Errorf("%w: %s is a sparse file", ErrUnsupported, name)
		}
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		return nil
	case tar.TypeSymlink, tar.TypeLink:
		target, err := linkTarget(name, hdr.Linkname, hdr.Typeflag == tar.TypeSymlink)
		if err != nil {
			return err
		}
		if sc.mode == modeOCI && strings.HasPrefix(name, "blobs/") {
			return fmt.Errorf("%w: %s is a link; drove reads blobs only as regular files", ErrUnsupported, name)
		}
		sc.files[name] = fileEntry{target: target}
		return nil
	case tar.TypeReg:
	default:
		return fmt.Errorf("%w: %s has tar type %q, which image archives do not hold", ErrUnsupported, name, hdr.Typeflag)
	}
	sc.files[name] = fileEntry{name: name, offset: sc.in.n, size: hdr.Size}

	switch {
	case name == "oci-layout":
		sc.decide(modeOCI)
		sc.layout, err = readSmall(tr, hdr, name, maxLayoutSize)
		return err
	case name == "index.json":
		if sc.index != nil {
			return fmt.Errorf("%w: two index.json entries", ErrCorrupt)
		}
		sc.decide(modeOCI)
		sc.index, err = readSmall(tr, hdr, name, maxManifestSize)
		return err
	case name == "manifest.json":
		if sc.dockerManifest != nil {
			return fmt.Errorf("%w: two manifest.json entries", ErrCorrupt)
		}
		sc.dockerManifest, err = readSmall(tr, hdr, name, maxManifestSize)
		return err
	case name == "repositories":
		return nil // docker's legacy name list; manifest.json has the same
	case strings.HasPrefix(name, "blobs/"):
		if sc.mode == modeDocker {
			return nil
		}
		h, err := blobDigest(name)
		if err != nil {
			return err
		}
		sc.decide(modeOCI)
		return sc.blob(tr, name, h)
	default:
		// A docker archive's layer or config. An OCI archive may carry
		// other files too; they are ignored.
		sc.decide(modeDocker)
		return nil
	}
}

// decide fixes the mode the first time a file settles it. Once OCI is
// decided the stream is no longer spooled.
func (sc *scan) decide(m mode) {
	if sc.mode != modeUndecided {
		return
	}
	sc.mode = m
	if m == modeOCI {
		sc.in.spool = nil
	}
}

// blobDigest checks that name is blobs/sha256/<64 hex digits>.
func blobDigest(name string) (v1.Hash, error) {
	rest := strings.TrimPrefix(name, "blobs/")
	alg, hexPart, ok := strings.Cut(rest, "/")
	if !ok || strings.Contains(hexPart, "/") {
		return v1.Hash{}, fmt.Errorf("%w: %s is not named blobs/<algorithm>/<digest>", ErrCorrupt, name)
	}
	if alg != "sha256" {
		return v1.Hash{}, fmt.Errorf("%w: %s uses digest algorithm %q; drove stores sha256 blobs only", ErrUnsupported, name, alg)
	}
	h, err := v1.NewHash("sha256:" + hexPart)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("%w: %s is not named by a sha256 digest: %w", ErrCorrupt, name, err)
	}
	return h, nil
}

// blob streams one blob entry into the store, committing it only if it
// hashes to its name. A blob the store already has is skipped.
func (sc *scan) blob(tr *tar.Reader, name string, h v1.Hash) error {
	s := sc.l.s
	if s.HasBlob(h) {
		return nil
	}
	w, err := s.NewBlobWriter()
	if err != nil {
		return fmt.Errorf("load %s: %w", name, err)
	}
	defer w.Cancel()
	if _, err := io.CopyBuffer(w, tr, sc.buf); err != nil {
		return readError(name, err)
	}
	_, err = w.Commit(h)
	if err == nil || s.HasBlob(h) {
		sc.l.added[h] = true
	}
	switch {
	case errors.Is(err, store.ErrDigestMismatch):
		return fmt.Errorf("%w: %s does not match its name: %w", ErrCorrupt, name, err)
	case err != nil:
		return fmt.Errorf("load %s: %w", name, err)
	}
	return nil
}

// readSmall reads an entry that is held in memory.
func readSmall(r io.Reader, hdr *tar.Header, name string, limit int64) ([]byte, error) {
	if hdr.Size > limit {
		return nil, fmt.Errorf("%w: %s is %d bytes, more than the %d drove reads", ErrUnsupported, name, hdr.Size, limit)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, readError(name, err)
	}
	return b, nil
}
