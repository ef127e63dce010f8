// Package swarm is the file and bookkeeping side of peer-to-peer image
// delivery, without any networking: it splits blobs into hashed pieces
// (ComputePieces, PiecesFromStore, ImageBlobs), checks piece manifests that
// arrive from elsewhere (Validate), keeps a blob being received on disk so
// that it survives restarts (Partial), chooses which piece to ask which
// peer for next (Picker: rarest first, random tie-break, endgame), and
// unpacks a complete image into a directory (Unpack).
//
// Every byte this package accepts is verified first: a piece is written
// only when it hashes to its manifest entry, a Partial re-hashes what it
// held when it is reopened, and a blob enters the content store only
// through store.WriteBlob, which checks the blob's digest (DESIGN.md
// invariant 1). Files on disk are replaced by rename, never rewritten in
// place where a crash could tear them (invariant 2).
//
// The wire forms (protocol.BlobPieces, protocol.Bitfields) are defined in
// package protocol; Bitfield here is the checked, in-memory form of one
// blob's bits.
package swarm
