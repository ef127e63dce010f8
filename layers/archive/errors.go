package archive

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
)

// Errors matched with errors.Is. Messages built on them name the file or
// blob that is wrong.
var (
	// ErrNotArchive means the input is not a tar of an image archive at all.
	ErrNotArchive = errors.New("not a drove/OCI/docker image archive")
	// ErrTruncated means the input ended before the archive did.
	ErrTruncated = errors.New("archive is truncated")
	// ErrCorrupt means part of the archive is damaged: a blob that does not
	// hash to its name, a bad tar header, an unreadable index.json.
	ErrCorrupt = errors.New("archive is corrupt")
	// ErrIncomplete means the archive is well formed but lacks something an
	// image needs, such as a blob index.json reaches.
	ErrIncomplete = errors.New("archive is incomplete")
	// ErrUnsafePath means an entry's name or link target leaves the archive
	// (an absolute path or "..").
	ErrUnsafePath = errors.New("unsafe path in archive")
	// ErrUnsupported means the archive or the request uses something drove
	// does not handle, such as zstd layers in a docker archive.
	ErrUnsupported = errors.New("unsupported")
)

// readError turns an error met while reading the archive stream into one of
// the sentinels, keeping the original for errors.Is.
func readError(what string, err error) error {
	switch {
	case isClassified(err):
		return err
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: input ended while reading %s", ErrTruncated, what)
	case errors.Is(err, tar.ErrHeader), errors.Is(err, gzip.ErrChecksum), errors.Is(err, gzip.ErrHeader):
		return fmt.Errorf("%w: read %s: %w", ErrCorrupt, what, err)
	default:
		return fmt.Errorf("read %s: %w", what, err)
	}
}

// isClassified reports whether err already carries one of the sentinels.
func isClassified(err error) bool {
	for _, s := range []error{ErrNotArchive, ErrTruncated, ErrCorrupt, ErrIncomplete, ErrUnsafePath, ErrUnsupported} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}
