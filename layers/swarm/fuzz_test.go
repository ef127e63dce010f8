package swarm

import (
	"encoding/json"
	"errors"
	"math/bits"
	"testing"

	"github.com/drove-project/drove/protocol"
)

// FuzzBitfieldFrom checks that any bytes a peer sends either fail with
// ErrBadBitfield or give a bitfield whose bits are exactly those bytes.
func FuzzBitfieldFrom(f *testing.F) {
	f.Add([]byte{0xff, 0x80}, 9)
	f.Add([]byte{}, 0)
	f.Add([]byte{0x01}, 7)
	f.Fuzz(func(t *testing.T, b []byte, n int) {
		bf, err := BitfieldFrom(b, n)
		if err != nil {
			if !errors.Is(err, ErrBadBitfield) {
				t.Fatalf("error %v does not wrap ErrBadBitfield", err)
			}
			return
		}
		if bf.Len() != n || len(b) != (n+7)/8 {
			t.Fatalf("accepted %d bytes for %d bits", len(b), n)
		}
		count := 0
		for i, x := range b {
			count += bits.OnesCount8(x)
			for j := range 8 {
				if set := x&(0x80>>j) != 0; set != bf.Has(i*8+j) {
					t.Fatalf("bit %d: byte says %v, Has says %v", i*8+j, set, !set)
				}
			}
		}
		if bf.Count() != count || bf.Full() != (count == n) {
			t.Fatalf("count %d, want %d", bf.Count(), count)
		}
		again, err := BitfieldFrom(bf.Bytes(), n)
		if err != nil || again.Count() != count {
			t.Fatalf("round trip: %v", err)
		}
	})
}

// FuzzValidate checks that a piece manifest from the wire either fails
// with ErrBadManifest or is one whose pieces tile the blob exactly.
func FuzzValidate(f *testing.F) {
	h := hexOf([]byte("x"))
	for _, bp := range []protocol.BlobPieces{
		{Digest: digestOf([]byte("x")), Size: 2*mib + 1, PieceSize: mib, Pieces: []string{h, h, h}},
		{Digest: digestOf(nil), Size: 0, PieceSize: protocol.DefaultPieceSize, Pieces: []string{}},
	} {
		b, err := json.Marshal(bp)
		must(f, err)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var bp protocol.BlobPieces
		if json.Unmarshal(data, &bp) != nil {
			return
		}
		if err := Validate(bp); err != nil {
			if !errors.Is(err, ErrBadManifest) {
				t.Fatalf("error %v does not wrap ErrBadManifest", err)
			}
			return
		}
		var total int64
		for i := range bp.Pieces {
			n := PieceLen(bp, i)
			if n <= 0 || n > bp.PieceSize {
				t.Fatalf("piece %d has length %d", i, n)
			}
			if PieceOffset(bp, i) != total {
				t.Fatalf("piece %d at %d, want %d", i, PieceOffset(bp, i), total)
			}
			total += n
		}
		if total != bp.Size || PieceLen(bp, len(bp.Pieces)) != 0 {
			t.Fatalf("pieces cover %d bytes of %d", total, bp.Size)
		}
	})
}
