package layer

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Magic numbers at the start of compressed streams, and where a tar header
// keeps its own.
var (
	gzipMagic = []byte{0x1f, 0x8b}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
	xzMagic   = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}
	tarMagic  = []byte("ustar")
)

const tarMagicOffset = 257

// Decompress returns the uncompressed tar stream of a layer, detecting from
// its first bytes whether r is gzip, zstd or a plain tar. A stream in another
// compression (xz) fails with ErrUnsupportedCompression; anything else
// unrecognised is returned as it is, for the tar reader to judge. Closing the
// result releases the decoder but not r.
func Decompress(r io.Reader) (io.ReadCloser, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, err := br.Peek(tarMagicOffset + len(tarMagic))
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		return nil, fmt.Errorf("read layer header: %w", err)
	}
	switch {
	case len(head) >= tarMagicOffset+len(tarMagic) && bytes.Equal(head[tarMagicOffset:], tarMagic):
		return io.NopCloser(br), nil
	case bytes.HasPrefix(head, gzipMagic):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("open gzip layer: %w", err)
		}
		return zr, nil
	case bytes.HasPrefix(head, zstdMagic):
		zr, err := zstd.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("open zstd layer: %w", err)
		}
		return zr.IOReadCloser(), nil
	case bytes.HasPrefix(head, xzMagic):
		return nil, fmt.Errorf("layer compressed with xz: %w", ErrUnsupportedCompression)
	}
	return io.NopCloser(br), nil
}
