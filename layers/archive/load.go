package archive

import (
	"archive/tar"
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/drove-project/drove/internal/ctxio"
	"github.com/drove-project/drove/layers/store"
)

// LoadOptions tune Load.
type LoadOptions struct {
	// BaseName is the repository for bare tags in an OCI archive's
	// org.opencontainers.image.ref.name ("v1" loads as BaseName:v1). When
	// empty, a bare value is taken as a name under localhost, as podman
	// does ("v1" loads as localhost/v1:latest).
	BaseName string
	// Progress, if set, is called as the input is read: done is bytes read
	// so far, total the input's size, or -1 when unknown (a pipe).
	Progress func(done, total int64)
}

// LoadFile loads the archive at path; see Load.
func LoadFile(ctx context.Context, path string, s *store.Store, opts LoadOptions) ([]store.Entry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	defer f.Close()
	entries, err := Load(ctx, f, s, opts)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	return entries, nil
}

// Load reads an oci-archive or docker-archive (plain, or wrapped in gzip,
// zstd or bzip2) into s and names its images. It returns one entry per name
// loaded, in archive order; an image the archive does not name is returned
// with an empty Name and is reachable only by digest (the store's Prune
// removes it unless it is tagged).
//
// An OCI archive is read in one pass, each blob streamed into the store and
// verified against its name. A docker archive is first copied to the store's
// temporary directory, unless r is an uncompressed *os.File, which is read in
// place.
//
// If Load fails, s is as it was: no name was added or changed and the blobs
// the load wrote are removed.
func Load(ctx context.Context, r io.Reader, s *store.Store, opts LoadOptions) ([]store.Entry, error) {
	l := &loader{ctx: ctx, s: s, opts: opts, added: map[v1.Hash]bool{}}
	entries, err := l.load(r)
	if err != nil {
		if rerr := l.removeAdded(nil); rerr != nil {
			err = errors.Join(err, fmt.Errorf("undo the load: %w", rerr))
		}
		return nil, err
	}
	return entries, nil
}

// loader is one Load.
type loader struct {
	ctx   context.Context
	s     *store.Store
	opts  LoadOptions
	added map[v1.Hash]bool // blobs this load wrote into the store
}

// maxTrailing bounds what may follow a tar's end-of-archive marker: tar pads
// to its record size (10 KiB by default), never to megabytes.
const maxTrailing = 16 << 20

// randomAccess is the archive as a file: the caller's, or the spool.
type randomAccess struct {
	r    io.ReaderAt
	base int64 // where the tar starts in r
	size int64
}

func (l *loader) load(r io.Reader) ([]store.Entry, error) {
	total := int64(-1)
	var ra *randomAccess
	if f, ok := r.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
			if off, err := f.Seek(0, io.SeekCurrent); err == nil {
				total = st.Size() - off
				ra = &randomAccess{r: f, base: off, size: total}
			}
		}
	}
	cr := &countingReader{ctx: l.ctx, r: r, total: total, progress: l.opts.Progress}
	br := bufio.NewReaderSize(cr, 1<<20)
	tarStream, comp, release, err := decompress(br)
	if err != nil {
		return nil, err
	}
	defer release()
	in := &tarInput{r: tarStream}
	var spool *os.File
	if comp != compressNone || ra == nil {
		ra = nil
		if spool, err = l.s.CreateTemp("load-*.tar"); err != nil {
			return nil, fmt.Errorf("spool archive: %w", err)
		}
		defer func() {
			spool.Close()
			os.Remove(spool.Name())
		}()
		in.spool = spool
	}

	sc := newScan(l, in, modeUndecided)
	if err := sc.run(tar.NewReader(in), comp != compressNone); err != nil {
		return nil, err
	}
	// The spool now holds the whole tar, end-of-archive marker included.
	if in.spool != nil {
		ra = &randomAccess{r: spool, size: in.n}
		in.spool = nil
	}
	// Read the padding after the tar too, so a compressed stream's checksum
	// is checked; a decompression bomb past the tar's end stops here.
	n, err := io.CopyN(io.Discard, in, maxTrailing+1)
	switch {
	case err != nil && err != io.EOF:
		return nil, readError("the end of the archive", err)
	case n > maxTrailing:
		return nil, fmt.Errorf("%w: more than %d bytes follow the end-of-archive marker", ErrCorrupt, maxTrailing)
	}

	switch {
	case sc.mode != modeDocker && sc.index != nil:
		return l.finishOCI(sc)
	case sc.mode == modeDocker && sc.dockerManifest != nil:
		return l.finishDocker(ra, sc)
	case sc.mode == modeDocker && sc.index != nil:
		// An OCI archive with other files before its blobs: read it
		// again, now as OCI.
		return l.rescanOCI(ra)
	case sc.mode == modeOCI && sc.dockerManifest != nil && ra != nil:
		return l.finishDocker(ra, sc)
	case sc.mode == modeOCI:
		return nil, fmt.Errorf("%w: the archive has blobs but no index.json", ErrIncomplete)
	}
	return nil, fmt.Errorf("%w: it has neither index.json nor manifest.json", ErrNotArchive)
}

func (l *loader) rescanOCI(ra *randomAccess) ([]store.Entry, error) {
	in := &tarInput{r: ctxio.Reader(l.ctx, io.NewSectionReader(ra.r, ra.base, ra.size))}
	sc := newScan(l, in, modeOCI)
	if err := sc.run(tar.NewReader(in), false); err != nil {
		return nil, err
	}
	return l.finishOCI(sc)
}

// tagAll names the loaded images. If a Tag fails, the names set so far are
// put back as they were.
func (l *loader) tagAll(entries []store.Entry) ([]store.Entry, error) {
	seen := map[string]v1.Hash{}
	unique := entries[:0:0]
	for _, e := range entries {
		if e.Name != "" {
			if h, ok := seen[e.Name]; ok {
				if h == e.Descriptor.Digest {
					continue // the same name twice for the same image
				}
				return nil, fmt.Errorf("%w: the archive gives the name %s to two images, %s and %s", ErrCorrupt, e.Name, h, e.Descriptor.Digest)
			}
			seen[e.Name] = e.Descriptor.Digest
		}
		unique = append(unique, e)
	}
	entries = unique
	before, err := l.s.List()
	if err != nil {
		return nil, fmt.Errorf("list names: %w", err)
	}
	old := map[string]v1.Descriptor{}
	for _, e := range before {
		old[e.Name] = e.Descriptor
	}
	var done []string
	for _, e := range entries {
		if e.Name == "" {
			continue
		}
		if err := l.s.Tag(e.Name, e.Descriptor); err != nil {
			return nil, errors.Join(fmt.Errorf("tag %s: %w", e.Name, err), l.restoreNames(done, old))
		}
		done = append(done, e.Name)
	}
	// Blobs the archive carried that no loaded image reaches are dropped.
	// Failing to drop them is harmless: Prune removes them later.
	reach := map[v1.Hash]bool{}
	for _, e := range entries {
		_ = walk(l.s, e.Descriptor, func(d v1.Descriptor) error { reach[d.Digest] = true; return nil })
	}
	_ = l.removeAdded(reach)
	return entries, nil
}

func (l *loader) restoreNames(done []string, old map[string]v1.Descriptor) error {
	var errs []error
	for i := len(done) - 1; i >= 0; i-- {
		n := done[i]
		if d, ok := old[n]; ok {
			errs = append(errs, l.s.Tag(n, d))
		} else {
			errs = append(errs, l.s.Untag(n))
		}
	}
	return errors.Join(errs...)
}

// removeAdded removes the blobs this load wrote, except those in keep and
// those a name in the store reaches (another load or pull may have named
// them meanwhile).
func (l *loader) removeAdded(keep map[v1.Hash]bool) error {
	stray := false
	for h := range l.added {
		if !keep[h] {
			stray = true
			break
		}
	}
	if !stray {
		return nil
	}
	_, err := l.s.Prune(func(h v1.Hash) bool { return !l.added[h] || keep[h] })
	return err
}
