package media

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
)

// ErrMismatch: files of the media are missing or differ from the manifest.
var ErrMismatch = errors.New("media do not match their manifest")

// ErrUnknownFormat: the file is not an ISO 9660 image, a raw disk image
// or a tar.
var ErrUnknownFormat = errors.New("not drove media: neither ISO 9660, a disk image nor a tar")

// Report is what Verify found.
type Report struct {
	Format Format // "" for a directory
	// Checked is how many files the manifest lists.
	Checked int
	// Mismatched files differ from their checksum; Missing are listed but
	// absent. Both fail the check.
	Mismatched []string
	Missing    []string
	// Unlisted files are on the media but not in the manifest (a tool
	// that mounted the media may have added some); they do not fail it.
	Unlisted []string
}

// OK reports whether every listed file is there and matches.
func (r *Report) OK() bool { return len(r.Mismatched) == 0 && len(r.Missing) == 0 }

func (r *Report) err() error {
	if r.OK() {
		return nil
	}
	var parts []string
	if len(r.Mismatched) > 0 {
		parts = append(parts, "checksum differs: "+strings.Join(r.Mismatched, ", "))
	}
	if len(r.Missing) > 0 {
		parts = append(parts, "missing: "+strings.Join(r.Missing, ", "))
	}
	return fmt.Errorf("%w: %s", ErrMismatch, strings.Join(parts, "; "))
}

// Detect tells which format the file at p is, by content: ISO 9660 (CD001
// at 32769), tar (ustar at 257) or a disk image (an MBR or GPT's
// protective MBR: 55 AA at 510).
func Detect(p string) (Format, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	head := make([]byte, 32774)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		if errors.Is(err, io.EOF) {
			return "", fmt.Errorf("%s: %w (empty)", p, ErrUnknownFormat)
		}
		return "", fmt.Errorf("read %s: %w", p, err)
	}
	head = head[:n]
	switch {
	case n >= 32774 && string(head[32769:32774]) == "CD001":
		return ISO, nil
	case n >= 262 && string(head[257:262]) == "ustar":
		return Tar, nil
	case n >= 512 && head[510] == 0x55 && head[511] == 0xAA:
		return Raw, nil
	}
	return "", fmt.Errorf("%s: %w", p, ErrUnknownFormat)
}

// Verify checks the media at p (an iso, raw or tar file, or a directory
// such as mounted media) against their manifest. The error matches
// ErrMismatch and names every file that is missing or differs; the report
// is returned either way once the manifest was read.
func Verify(ctx context.Context, p string) (*Report, error) {
	st, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	if st.IsDir() {
		return verifyFS(ctx, os.DirFS(p), "")
	}
	format, err := Detect(p)
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	var r *Report
	switch format {
	case Tar:
		r, err = verifyTar(ctx, p)
	case ISO:
		fsys, closeFn, oerr := openISO(p, st.Size())
		if oerr != nil {
			return nil, fmt.Errorf("verify %s: %w", p, oerr)
		}
		defer closeFn()
		r, err = verifyFS(ctx, fsys, ISO)
	case Raw:
		fsys, closeFn, oerr := openRaw(p)
		if oerr != nil {
			return nil, fmt.Errorf("verify %s: %w", p, oerr)
		}
		defer closeFn()
		r, err = verifyFS(ctx, fsys, Raw)
	}
	if err != nil {
		return r, fmt.Errorf("verify %s: %w", p, err)
	}
	return r, nil
}

// verifyFS checks a filesystem read through io/fs. Files are read through
// io.LimitReader at their size: go-diskfs v1.9.4 can return whole
// clusters past the end of a file on large FAT32 volumes.
func verifyFS(ctx context.Context, fsys fs.FS, format Format) (*Report, error) {
	mb, err := readAllFS(fsys, ManifestPath)
	if err != nil {
		return nil, fmt.Errorf("no readable %s (are these drove media?): %w", ManifestPath, err)
	}
	m, err := ParseManifest(bytes.NewReader(mb))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ManifestPath, err)
	}
	r := &Report{Format: format, Checked: len(m)}
	listed := map[string]bool{ManifestPath: true}
	buf := make([]byte, copyChunk)
	for _, e := range m {
		if err := ctx.Err(); err != nil {
			return r, err
		}
		listed[e.Path] = true
		sum, err := sumFS(fsys, e.Path, buf)
		switch {
		case errors.Is(err, errNotThere):
			r.Missing = append(r.Missing, e.Path)
		case err != nil:
			return r, fmt.Errorf("read %s: %w", e.Path, err)
		case sum != e.Sum:
			r.Mismatched = append(r.Mismatched, e.Path)
		}
	}
	err = fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && !listed[p] {
			r.Unlisted = append(r.Unlisted, p)
		}
		return nil
	})
	if err != nil {
		return r, fmt.Errorf("list the media's files: %w", err)
	}
	return r, r.err()
}

// errNotThere: a listed file could not be found.
var errNotThere = errors.New("not on the media")

func openSized(fsys fs.FS, p string) (fs.File, int64, error) {
	info, err := fs.Stat(fsys, p)
	if err != nil {
		// go-diskfs reports a missing file with its own error text.
		return nil, 0, fmt.Errorf("%w: %v", errNotThere, err)
	}
	if info.IsDir() {
		return nil, 0, fmt.Errorf("%w: %s is a directory", errNotThere, p)
	}
	f, err := fsys.Open(p)
	if err != nil {
		return nil, 0, err
	}
	return f, info.Size(), nil
}

func readAllFS(fsys fs.FS, p string) ([]byte, error) {
	f, size, err := openSized(fsys, p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if size > maxManifestSize {
		return nil, fmt.Errorf("%s is %d bytes, more than a manifest can be", p, size)
	}
	return io.ReadAll(io.LimitReader(f, size))
}

func sumFS(fsys fs.FS, p string, buf []byte) ([32]byte, error) {
	var sum [32]byte
	f, size, err := openSized(fsys, p)
	if err != nil {
		return sum, err
	}
	defer f.Close()
	h := sha256.New()
	// Large reads: go-diskfs walks a FAT file's cluster chain on every
	// Read, so 32 KiB reads of a big file take minutes.
	if _, err := io.CopyBuffer(h, io.LimitReader(f, size), buf); err != nil {
		return sum, err
	}
	copy(sum[:], h.Sum(nil))
	return sum, nil
}

// verifyTar checks a tar in one pass: every regular file is hashed as it
// streams by, and the sums are compared with the manifest at the end.
func verifyTar(ctx context.Context, p string) (*Report, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sums := map[string][32]byte{}
	var manifest []byte
	tr := tar.NewReader(f)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read tar: %w", err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		name := path.Clean(strings.TrimPrefix(h.Name, "./"))
		if name == ManifestPath {
			if h.Size > maxManifestSize {
				return nil, fmt.Errorf("%s is %d bytes, more than a manifest can be", name, h.Size)
			}
			if manifest, err = io.ReadAll(tr); err != nil {
				return nil, fmt.Errorf("read %s: %w", name, err)
			}
			continue
		}
		hs := sha256.New()
		if _, err := io.Copy(hs, tr); err != nil {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
		var s [32]byte
		copy(s[:], hs.Sum(nil))
		sums[name] = s
	}
	if manifest == nil {
		return nil, fmt.Errorf("no %s in the tar (is it drove media?)", ManifestPath)
	}
	m, err := ParseManifest(bytes.NewReader(manifest))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ManifestPath, err)
	}
	r := &Report{Format: Tar, Checked: len(m)}
	for _, e := range m {
		sum, ok := sums[e.Path]
		switch {
		case !ok:
			r.Missing = append(r.Missing, e.Path)
		case sum != e.Sum:
			r.Mismatched = append(r.Mismatched, e.Path)
		}
		delete(sums, e.Path)
	}
	for name := range sums {
		r.Unlisted = append(r.Unlisted, name)
	}
	slices.Sort(r.Unlisted)
	return r, r.err()
}
