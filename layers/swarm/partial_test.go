package swarm

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/drove-project/drove/layers/store"
	"github.com/drove-project/drove/protocol"
)

// testBlob returns a blob of size bytes in pieces of pieceSize, with its
// manifest.
func testBlob(t *testing.T, size int, pieceSize int64, seed uint64) ([]byte, protocol.BlobPieces) {
	t.Helper()
	data := blobBytes(size, seed)
	bp, err := ComputePieces(context.Background(), bytes.NewReader(data), int64(size), pieceSize, digestOf(data), "application/octet-stream")
	must(t, err)
	return data, bp
}

func piece(data []byte, bp protocol.BlobPieces, i int) []byte {
	off := PieceOffset(bp, i)
	return data[off : off+PieceLen(bp, i)]
}

func bitsOf(b Bitfield) []int {
	var out []int
	for i := range b.Len() {
		if b.Has(i) {
			out = append(out, i)
		}
	}
	return out
}

func TestPartialWriteAndReopen(t *testing.T) {
	dir := t.TempDir()
	data, bp := testBlob(t, 3*mib+mib/2, mib, 1) // 4 pieces, the last half
	p, err := OpenPartial(dir, bp)
	must(t, err)
	hexName := strings.TrimPrefix(bp.Digest, "sha256:")
	st, err := os.Stat(filepath.Join(dir, hexName+".part"))
	must(t, err)
	if st.Size() != bp.Size {
		t.Fatalf(".part has %d bytes, want %d preallocated", st.Size(), bp.Size)
	}
	must(t, p.WritePiece(3, piece(data, bp, 3)))
	must(t, p.WritePiece(0, piece(data, bp, 0)))
	must(t, p.WritePiece(0, piece(data, bp, 0))) // again: a no-op
	if got := bitsOf(p.Have()); !slices.Equal(got, []int{0, 3}) {
		t.Fatalf("have %v, want [0 3]", got)
	}
	if !p.Has(3) || p.Has(1) || p.Has(-1) || p.Has(len(bp.Pieces)) {
		t.Fatalf("Has(3, 1, -1, %d) = %v %v %v %v, want true and then false", len(bp.Pieces), p.Has(3), p.Has(1), p.Has(-1), p.Has(len(bp.Pieces)))
	}
	if p.HaveBytes() != mib+mib/2 || p.Complete() {
		t.Fatalf("have %d bytes, complete %v", p.HaveBytes(), p.Complete())
	}
	buf := make([]byte, PieceLen(bp, 3))
	_, err = p.ReadAt(buf, PieceOffset(bp, 3))
	must(t, err)
	if !bytes.Equal(buf, piece(data, bp, 3)) {
		t.Fatal("ReadAt gave other bytes than were written")
	}
	must(t, p.Close())

	p, err = OpenPartial(dir, bp)
	must(t, err)
	defer p.Close()
	if got := bitsOf(p.Have()); !slices.Equal(got, []int{0, 3}) {
		t.Fatalf("after reopen have %v, want [0 3]", got)
	}
	if len(p.Dropped()) != 0 {
		t.Fatalf("dropped %v", p.Dropped())
	}
}

func TestPartialDropsCorruptPieceAtOpen(t *testing.T) {
	dir := t.TempDir()
	data, bp := testBlob(t, 3*mib, mib, 2)
	p, err := OpenPartial(dir, bp)
	must(t, err)
	for i := range 3 {
		must(t, p.WritePiece(i, piece(data, bp, i)))
	}
	must(t, p.Close())
	// Flip one byte of piece 1 on disk.
	part := filepath.Join(dir, strings.TrimPrefix(bp.Digest, "sha256:")+".part")
	f, err := os.OpenFile(part, os.O_RDWR, 0)
	must(t, err)
	_, err = f.WriteAt([]byte{data[mib+123] ^ 0xff}, mib+123)
	must(t, err)
	must(t, f.Close())

	p, err = OpenPartial(dir, bp)
	must(t, err)
	if got := bitsOf(p.Have()); !slices.Equal(got, []int{0, 2}) {
		t.Fatalf("have %v, want [0 2]", got)
	}
	if got := p.Dropped(); !slices.Equal(got, []int{1}) {
		t.Fatalf("dropped %v, want [1]", got)
	}
	must(t, p.Close())
	// The drop was saved: the next open has nothing to drop.
	p, err = OpenPartial(dir, bp)
	must(t, err)
	defer p.Close()
	if len(p.Dropped()) != 0 || p.Have().Count() != 2 {
		t.Fatalf("second reopen: dropped %v, have %v", p.Dropped(), bitsOf(p.Have()))
	}
	// The piece can be fetched again.
	must(t, p.WritePiece(1, piece(data, bp, 1)))
	if !p.Complete() {
		t.Fatal("not complete after rewriting the dropped piece")
	}
}

func TestPartialRefusesBadPiece(t *testing.T) {
	dir := t.TempDir()
	data, bp := testBlob(t, 2*mib+10, mib, 3)
	p, err := OpenPartial(dir, bp)
	must(t, err)
	defer p.Close()
	bad := bytes.Clone(piece(data, bp, 0))
	bad[0] ^= 1
	for _, tc := range []struct {
		name string
		i    int
		data []byte
	}{
		{"wrong hash", 0, bad},
		{"other piece's bytes", 1, piece(data, bp, 0)},
		{"short", 2, piece(data, bp, 2)[:9]},
		{"long", 2, data[2*mib-1:]},
		{"index past end", 3, piece(data, bp, 2)},
		{"negative index", -1, piece(data, bp, 0)},
	} {
		if err := p.WritePiece(tc.i, tc.data); !errors.Is(err, ErrBadPiece) {
			t.Errorf("%s: error %v, want ErrBadPiece", tc.name, err)
		}
	}
	if p.Have().Count() != 0 || p.HaveBytes() != 0 {
		t.Fatalf("a bad piece was marked: %v", bitsOf(p.Have()))
	}
	hexName := strings.TrimPrefix(bp.Digest, "sha256:")
	if _, err := os.Stat(filepath.Join(dir, hexName+".have")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf(".have written for bad pieces: %v", err)
	}
	part, err := os.ReadFile(filepath.Join(dir, hexName+".part"))
	must(t, err)
	if !bytes.Equal(part, make([]byte, len(part))) {
		t.Fatal("bad piece bytes reached the .part file")
	}
}

func TestPartialConcurrentWritesAndAdopt(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := store.Open(t.TempDir())
	must(t, err)
	data, bp := testBlob(t, 9*mib+77, mib, 4)
	p, err := OpenPartial(dir, bp)
	must(t, err)
	if err := p.Adopt(ctx, s); !errors.Is(err, ErrIncomplete) {
		t.Fatalf("commit of an empty partial: %v", err)
	}
	var wg sync.WaitGroup
	errs := make([]error, len(bp.Pieces))
	for i := range bp.Pieces {
		wg.Go(func() { errs[i] = p.WritePiece(i, piece(data, bp, i)) })
	}
	wg.Wait()
	must(t, errors.Join(errs...))
	if !p.Complete() {
		t.Fatalf("not complete: %v", bitsOf(p.Have()))
	}
	// The bitfield on disk holds every piece though writers coalesced.
	hexName := strings.TrimPrefix(bp.Digest, "sha256:")
	raw, err := os.ReadFile(filepath.Join(dir, hexName+".have"))
	must(t, err)
	if onDisk, err := BitfieldFrom(raw, len(bp.Pieces)); err != nil || !onDisk.Full() {
		t.Fatalf(".have on disk %x (%v), want full", raw, err)
	}
	must(t, p.Adopt(ctx, s))
	h, _ := v1.NewHash(bp.Digest)
	got, err := s.ReadBlob(h)
	must(t, err)
	if !bytes.Equal(got, data) {
		t.Fatal("committed blob differs from the source")
	}
	// The Partial still reads from the same file, now in the store: a node
	// serves the blob while the store hashes it.
	read := make([]byte, len(data))
	if _, err := p.ReadAt(read, 0); err != nil {
		t.Fatalf("read after adopt: %v", err)
	}
	if !bytes.Equal(read, data) {
		t.Fatal("read after adopt differs from the blob")
	}
	must(t, p.Adopt(ctx, s)) // idempotent
	must(t, p.Remove())
	must(t, s.VerifyBlob(h))
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("files left after commit: %v", ents)
	}
	must(t, p.Adopt(ctx, s)) // idempotent after Remove too
}

func TestPartialAdoptWhenStoreHasBlob(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := store.Open(t.TempDir())
	must(t, err)
	data, bp := testBlob(t, mib+1, mib, 5)
	_, err = s.PutBytes(ctx, data)
	must(t, err)
	p, err := OpenPartial(dir, bp)
	must(t, err)
	must(t, p.Adopt(ctx, s))
	must(t, p.Remove())
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("files left after commit: %v", ents)
	}
}

func TestPartialAdoptRefusesLyingManifest(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := store.Open(t.TempDir())
	must(t, err)
	data, bp := testBlob(t, 2*mib, mib, 6)
	other := blobBytes(10, 99)
	bp.Digest = digestOf(other) // pieces of data, digest of something else
	p, err := OpenPartial(dir, bp)
	must(t, err)
	defer p.Remove()
	for i := range bp.Pieces {
		must(t, p.WritePiece(i, piece(data, bp, i)))
	}
	if err := p.Adopt(ctx, s); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("adopt: %v, want ErrDigestMismatch", err)
	}
	h, _ := v1.NewHash(bp.Digest)
	if s.HasBlob(h) {
		t.Fatal("a blob that does not match its digest entered the store")
	}
}

func TestPartialZeroSize(t *testing.T) {
	ctx := context.Background()
	s, err := store.Open(t.TempDir())
	must(t, err)
	_, bp := testBlob(t, 0, protocol.DefaultPieceSize, 0)
	p, err := OpenPartial(t.TempDir(), bp)
	must(t, err)
	if !p.Complete() {
		t.Fatal("an empty blob is complete from the start")
	}
	must(t, p.Adopt(ctx, s))
	h, _ := v1.NewHash(bp.Digest)
	if !s.HasBlob(h) {
		t.Fatal("empty blob not in the store")
	}
}

func TestPartialRejectsBadManifestAndBadHave(t *testing.T) {
	dir := t.TempDir()
	_, bp := testBlob(t, mib, mib, 7)
	bad := bp
	bad.Pieces = nil
	if _, err := OpenPartial(dir, bad); !errors.Is(err, ErrBadManifest) {
		t.Fatalf("open with a bad manifest: %v", err)
	}
	// A .have of the wrong length is not trusted.
	hexName := strings.TrimPrefix(bp.Digest, "sha256:")
	must(t, os.WriteFile(filepath.Join(dir, hexName+".have"), []byte{0xff, 0xff}, 0o644))
	p, err := OpenPartial(dir, bp)
	must(t, err)
	defer p.Close()
	if p.Have().Count() != 0 {
		t.Fatalf("have %v from a malformed .have", bitsOf(p.Have()))
	}
}

func TestPartialRemove(t *testing.T) {
	dir := t.TempDir()
	data, bp := testBlob(t, mib, mib, 8)
	p, err := OpenPartial(dir, bp)
	must(t, err)
	must(t, p.WritePiece(0, data))
	must(t, p.Remove())
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("files left after remove: %v", ents)
	}
	if _, err := p.ReadAt(make([]byte, 1), 0); err == nil {
		t.Fatal("ReadAt after Remove succeeded")
	}
}
