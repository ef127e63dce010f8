package swarm

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/drove-project/drove/layers/store"
	"github.com/drove-project/drove/protocol"
)

const mib = 1 << 20

func TestComputePiecesKnownInputs(t *testing.T) {
	ctx := context.Background()
	// sha256 of "hello" and of nothing, as any sha256 tool prints them.
	const helloHex = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
	const emptyHex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	bp, err := ComputePieces(ctx, strings.NewReader("hello"), 5, mib, "sha256:"+helloHex, "text/plain")
	must(t, err)
	if len(bp.Pieces) != 1 || bp.Pieces[0] != helloHex || bp.Size != 5 || bp.PieceSize != mib || bp.MediaType != "text/plain" {
		t.Fatalf("hello: %+v", bp)
	}
	bp, err = ComputePieces(ctx, strings.NewReader(""), 0, protocol.DefaultPieceSize, "sha256:"+emptyHex, "")
	must(t, err)
	if len(bp.Pieces) != 0 || bp.Pieces == nil {
		t.Fatalf("empty blob: want zero pieces (a non-nil list), got %#v", bp.Pieces)
	}
	must(t, Validate(bp))
}

func TestComputePiecesSlices(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name            string
		size, pieceSize int
		wantPieces      int
	}{
		{"one byte", 1, mib, 1},
		{"exactly one piece", mib, mib, 1},
		{"last piece short", 2*mib + 7, mib, 3},
		{"exact multiple", 4 * mib, 2 * mib, 2},
		{"smaller than a piece", 3*mib + 1, protocol.DefaultPieceSize, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := blobBytes(tc.size, uint64(tc.size))
			// Extra bytes after size must not be read into the blob.
			r := io.MultiReader(bytes.NewReader(data), strings.NewReader("trailing"))
			bp, err := ComputePieces(ctx, r, int64(tc.size), int64(tc.pieceSize), digestOf(data), "m")
			must(t, err)
			if len(bp.Pieces) != tc.wantPieces {
				t.Fatalf("%d pieces, want %d", len(bp.Pieces), tc.wantPieces)
			}
			for i, p := range bp.Pieces {
				lo := i * tc.pieceSize
				hi := min(tc.size, lo+tc.pieceSize)
				if p != hexOf(data[lo:hi]) {
					t.Fatalf("piece %d hash %s is not sha256 of bytes [%d,%d)", i, p, lo, hi)
				}
				if PieceLen(bp, i) != int64(hi-lo) {
					t.Fatalf("PieceLen(%d) = %d, want %d", i, PieceLen(bp, i), hi-lo)
				}
			}
			must(t, Validate(bp))
		})
	}
}

func TestComputePiecesErrors(t *testing.T) {
	data := blobBytes(mib+10, 1)
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name      string
		ctx       context.Context
		r         io.Reader
		size      int64
		pieceSize int64
		digest    string
		want      error
	}{
		{"digest mismatch", context.Background(), bytes.NewReader(data), int64(len(data)), mib, digestOf([]byte("other")), ErrDigestMismatch},
		{"short reader", context.Background(), bytes.NewReader(data[:100]), int64(len(data)), mib, digestOf(data), io.ErrUnexpectedEOF},
		{"bad digest", context.Background(), bytes.NewReader(data), int64(len(data)), mib, "md5:abc", ErrBadManifest},
		{"bad piece size", context.Background(), bytes.NewReader(data), int64(len(data)), mib + 1, digestOf(data), ErrBadManifest},
		{"negative size", context.Background(), bytes.NewReader(data), -1, mib, digestOf(data), ErrBadManifest},
		{"canceled", canceled, bytes.NewReader(data), int64(len(data)), mib, digestOf(data), context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ComputePieces(tc.ctx, tc.r, tc.size, tc.pieceSize, tc.digest, "")
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	d := digestOf([]byte("x"))
	h := hexOf([]byte("x"))
	for _, tc := range []struct {
		name string
		bp   protocol.BlobPieces
		ok   bool
	}{
		{"one piece", protocol.BlobPieces{Digest: d, Size: 1, PieceSize: mib, Pieces: []string{h}}, true},
		{"empty", protocol.BlobPieces{Digest: d, Size: 0, PieceSize: mib}, true},
		{"last short", protocol.BlobPieces{Digest: d, Size: 2*mib + 1, PieceSize: mib, Pieces: []string{h, h, h}}, true},
		{"exact", protocol.BlobPieces{Digest: d, Size: 2 * mib, PieceSize: mib, Pieces: []string{h, h}}, true},
		{"largest piece size", protocol.BlobPieces{Digest: d, Size: 1, PieceSize: MaxPieceSize, Pieces: []string{h}}, true},
		{"too many pieces", protocol.BlobPieces{Digest: d, Size: 2 * mib, PieceSize: mib, Pieces: []string{h, h, h}}, false},
		{"too few pieces", protocol.BlobPieces{Digest: d, Size: 2*mib + 1, PieceSize: mib, Pieces: []string{h, h}}, false},
		{"empty with a piece", protocol.BlobPieces{Digest: d, Size: 0, PieceSize: mib, Pieces: []string{h}}, false},
		{"negative size", protocol.BlobPieces{Digest: d, Size: -1, PieceSize: mib}, false},
		{"piece size zero", protocol.BlobPieces{Digest: d, Size: 1, Pieces: []string{h}}, false},
		{"piece size below unit", protocol.BlobPieces{Digest: d, Size: 1, PieceSize: mib / 2, Pieces: []string{h}}, false},
		{"piece size not a multiple", protocol.BlobPieces{Digest: d, Size: 1, PieceSize: mib + 1, Pieces: []string{h}}, false},
		{"piece size too big", protocol.BlobPieces{Digest: d, Size: 1, PieceSize: MaxPieceSize + mib, Pieces: []string{h}}, false},
		{"uppercase digest", protocol.BlobPieces{Digest: strings.ToUpper(d), Size: 1, PieceSize: mib, Pieces: []string{h}}, false},
		{"no digest", protocol.BlobPieces{Size: 1, PieceSize: mib, Pieces: []string{h}}, false},
		{"uppercase piece", protocol.BlobPieces{Digest: d, Size: 1, PieceSize: mib, Pieces: []string{strings.ToUpper(h)}}, false},
		{"short piece hash", protocol.BlobPieces{Digest: d, Size: 1, PieceSize: mib, Pieces: []string{h[:63]}}, false},
		{"huge size", protocol.BlobPieces{Digest: d, Size: 1 << 62, PieceSize: mib}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Validate(tc.bp)
			if tc.ok && err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if !tc.ok && !errors.Is(err, ErrBadManifest) {
				t.Fatalf("error %v, want ErrBadManifest", err)
			}
		})
	}
}

func TestPieceLen(t *testing.T) {
	bp := protocol.BlobPieces{Size: 2*mib + 5, PieceSize: mib, Pieces: make([]string, 3)}
	for _, tc := range []struct {
		i    int
		want int64
	}{{0, mib}, {1, mib}, {2, 5}, {3, 0}, {-1, 0}} {
		if got := PieceLen(bp, tc.i); got != tc.want {
			t.Errorf("PieceLen(%d) = %d, want %d", tc.i, got, tc.want)
		}
	}
	if got := PieceLen(protocol.BlobPieces{}, 0); got != 0 {
		t.Errorf("PieceLen of a zero manifest = %d", got)
	}
}

func TestPiecesFromStore(t *testing.T) {
	ctx := context.Background()
	s, err := store.Open(t.TempDir())
	must(t, err)
	data := blobBytes(3*mib+3, 7)
	h, err := s.PutBytes(ctx, data)
	must(t, err)
	bp, err := PiecesFromStore(ctx, s, h, "application/octet-stream", mib)
	must(t, err)
	want, err := ComputePieces(ctx, bytes.NewReader(data), int64(len(data)), mib, h.String(), "application/octet-stream")
	must(t, err)
	if bp.Digest != h.String() || bp.Size != int64(len(data)) || strings.Join(bp.Pieces, ",") != strings.Join(want.Pieces, ",") {
		t.Fatalf("store pieces %+v differ from %+v", bp, want)
	}
	missing := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("0", 64)}
	if _, err := PiecesFromStore(ctx, s, missing, "", mib); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing blob: %v", err)
	}
}

func TestPieceSizeFor(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		size, want int64
	}{
		{0, mib},
		{1, mib},
		{21 * mib, mib},
		{64 * mib, mib},
		{64*mib + 1, mib},
		{128*mib - 1, mib},
		{128 * mib, 2 * mib},
		{200 * mib, 3 * mib},
		{256 * mib, 4 * mib},
		{10 << 30, 4 * mib},
	} {
		got := PieceSizeFor(tc.size)
		if got != tc.want {
			t.Errorf("PieceSizeFor(%d) = %d, want %d", tc.size, got, tc.want)
		}
		if got%protocol.TransferUnit != 0 || got > protocol.DefaultPieceSize {
			t.Errorf("PieceSizeFor(%d) = %d: not whole units up to the default", tc.size, got)
		}
	}
}
