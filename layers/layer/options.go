package layer

import (
	"errors"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Compression selects how a layer's tar stream is compressed.
type Compression string

// The compressions a layer can be written with. The zero value means Zstd.
const (
	Zstd Compression = "zstd"
	Gzip Compression = "gzip"
	None Compression = "none"
)

// MediaType is the OCI layer media type for tar streams compressed with c.
func (c Compression) MediaType() (types.MediaType, error) {
	switch c {
	case Zstd, "":
		return types.OCILayerZStd, nil
	case Gzip:
		return types.OCILayer, nil
	case None:
		return types.OCIUncompressedLayer, nil
	}
	return "", fmt.Errorf("compression %q: %w", string(c), ErrUnknownCompression)
}

// Options controls how a layer is written.
type Options struct {
	// Compression of the written bytes; the zero value is Zstd.
	Compression Compression
}

// Result describes a written layer.
type Result struct {
	// Digest is the sha256 of the bytes written (the compressed blob).
	Digest v1.Hash
	// DiffID is the sha256 of the uncompressed tar stream.
	DiffID v1.Hash
	// Size is the number of bytes written.
	Size int64
	// MediaType is the OCI media type matching the compression.
	MediaType types.MediaType
	// Files maps the host path of every regular file put into the layer to
	// the sha256 of its content, computed in the same pass that wrote it.
	Files map[string]v1.Hash
}

// Whiteout names, as the OCI image-spec defines them.
const (
	// WhiteoutPrefix marks a deletion: ".wh.NAME" removes NAME.
	WhiteoutPrefix = ".wh."
	// WhiteoutOpaque in a directory hides all its lower-layer contents.
	WhiteoutOpaque = WhiteoutPrefix + WhiteoutPrefix + ".opq"
)

// Errors callers match with errors.Is.
var (
	// ErrUnknownCompression: an Options.Compression this package does not know.
	ErrUnknownCompression = errors.New("unknown layer compression")
	// ErrUnsupportedCompression: a layer compressed with something other
	// than gzip or zstd.
	ErrUnsupportedCompression = errors.New("unsupported layer compression")
	// ErrUnsafePath: a layer entry or hard-link target that would land
	// outside the directory being written.
	ErrUnsafePath = errors.New("path escapes the layer root")
	// ErrNotInContext: a COPY source that does not exist in the build
	// context (or a pattern that matches nothing).
	ErrNotInContext = errors.New("not found in context")
	// ErrOutsideContext: a COPY source that resolves outside the build
	// context, through ".." or a symbolic link.
	ErrOutsideContext = errors.New("is outside context")
	// ErrChangedWhileReading: a file changed size or identity while it was
	// being put into a layer.
	ErrChangedWhileReading = errors.New("file changed while being read")
	// ErrMountOptions: overlay mount options that do not fit the kernel's
	// limit even with shortened paths.
	ErrMountOptions = errors.New("overlay mount options too long")
	// ErrOpaqueRoot: ApplyOverlayLower of a layer that marks its root
	// opaque, which overlayfs does not honour on a lower layer's root.
	ErrOpaqueRoot = errors.New("opaque root cannot be an overlay lower")
)
