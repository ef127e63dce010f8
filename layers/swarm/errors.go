package swarm

import (
	"errors"

	"github.com/drove-project/drove/layers/store"
)

// Errors callers match with errors.Is.
var (
	// ErrBadPiece: piece data of the wrong length, or that does not hash to
	// its manifest entry, or a piece index out of range. Nothing is written.
	ErrBadPiece = errors.New("bad piece")
	// ErrBadManifest: a piece manifest (protocol.BlobPieces) that is not
	// well formed, or an image manifest this package cannot distribute.
	ErrBadManifest = errors.New("bad piece manifest")
	// ErrBadBitfield: bitfield bytes of the wrong length for their piece
	// count, or with bits set past the last piece.
	ErrBadBitfield = errors.New("bad bitfield")
	// ErrDigestMismatch: content that does not hash to its digest. It is the
	// store's sentinel, so errors.Is matches either name.
	ErrDigestMismatch = store.ErrDigestMismatch
	// ErrIncomplete: committing a blob that still misses pieces.
	ErrIncomplete = errors.New("blob incomplete")
)
