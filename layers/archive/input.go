package archive

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
)

// compression is how the tar stream is wrapped.
type compression int

const (
	compressNone compression = iota
	compressGzip
	compressZstd
	compressBzip2
	compressXz
)

var magics = []struct {
	c     compression
	magic []byte
}{
	{compressGzip, []byte{0x1f, 0x8b}},
	{compressZstd, []byte{0x28, 0xb5, 0x2f, 0xfd}},
	{compressBzip2, []byte("BZh")},
	{compressXz, []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}},
}

// sniff says how the stream that starts with head is compressed.
func sniff(head []byte) compression {
	for _, m := range magics {
		if bytes.HasPrefix(head, m.magic) {
			return m.c
		}
	}
	return compressNone
}

// zstdMaxWindow bounds the memory a zstd stream may ask for: 128 MiB covers
// every standard level and `zstd --long`.
const zstdMaxWindow = 1 << 27

// decompress returns the tar stream inside br and a function releasing the
// decoder. Errors of the compressed format come back wrapped in ErrCorrupt or
// ErrTruncated.
func decompress(br *bufio.Reader) (io.Reader, compression, func(), error) {
	head, _ := br.Peek(8)
	c := sniff(head)
	switch c {
	case compressGzip:
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, c, nil, readError("gzip header", decodeErr(err))
		}
		return decodeErrReader{zr}, c, func() { zr.Close() }, nil
	case compressZstd:
		zr, err := zstd.NewReader(br, zstd.WithDecoderMaxWindow(zstdMaxWindow))
		if err != nil {
			return nil, c, nil, fmt.Errorf("start zstd decoder: %w", err)
		}
		return decodeErrReader{zr}, c, zr.Close, nil
	case compressBzip2:
		return decodeErrReader{bzip2.NewReader(br)}, c, func() {}, nil
	case compressXz:
		return nil, c, nil, fmt.Errorf("%w: xz-compressed archives (decompress with xz -d first)", ErrUnsupported)
	}
	return br, c, func() {}, nil
}

// sourceError marks an error of the underlying input (a failed read, a
// cancelled context), so that it is not mistaken for bad compressed data.
type sourceError struct{ err error }

func (e sourceError) Error() string { return e.err.Error() }
func (e sourceError) Unwrap() error { return e.err }

// decodeErrReader classifies what a decompressor returns.
type decodeErrReader struct{ r io.Reader }

func (d decodeErrReader) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	return n, decodeErr(err)
}

func decodeErr(err error) error {
	var se sourceError
	switch {
	case err == nil, err == io.EOF:
		return err
	case errors.As(err, &se):
		return se.err
	case errors.Is(err, io.ErrUnexpectedEOF):
		return io.ErrUnexpectedEOF
	default:
		return fmt.Errorf("%w: decompress: %w", ErrCorrupt, err)
	}
}

// countingReader reads the raw input, reports progress and stops when ctx
// ends.
type countingReader struct {
	ctx      context.Context
	r        io.Reader
	n        int64
	total    int64
	progress func(done, total int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, sourceError{err}
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	if n > 0 && c.progress != nil {
		c.progress(c.n, c.total)
	}
	if err != nil && err != io.EOF {
		err = sourceError{fmt.Errorf("read input: %w", err)}
	}
	return n, err
}

// tarInput sits between the tar stream and archive/tar: it counts bytes, so
// the end-of-archive marker can be checked, and copies them to a spool file
// while one is set.
type tarInput struct {
	r     io.Reader
	n     int64
	spool io.Writer
}

func (t *tarInput) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	t.n += int64(n)
	if n > 0 && t.spool != nil {
		if _, werr := t.spool.Write(p[:n]); werr != nil {
			return n, fmt.Errorf("spool archive: %w", werr)
		}
	}
	var se sourceError
	if errors.As(err, &se) {
		err = se.err
	}
	return n, err
}
