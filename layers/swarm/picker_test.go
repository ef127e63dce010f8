package swarm

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/drove-project/drove/protocol"
)

// fakeBlobs returns manifests with the given piece counts (the Picker
// looks only at digests and piece counts).
func fakeBlobs(counts ...int) []protocol.BlobPieces {
	out := make([]protocol.BlobPieces, len(counts))
	for i, n := range counts {
		out[i] = protocol.BlobPieces{Digest: digestOf([]byte{byte(i)}), PieceSize: mib, Size: int64(n) * mib, Pieces: make([]string, n)}
	}
	return out
}

func bitsWith(n int, set ...int) Bitfield {
	b := NewBitfield(n)
	for _, i := range set {
		b.Set(i)
	}
	return b
}

func seeded(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed)) }

func TestPickerRarestFirst(t *testing.T) {
	blobs := fakeBlobs(3)
	d := blobs[0].Digest
	for seed := range uint64(20) { // whatever the tie-break, rarity decides
		p := NewPicker(blobs, nil, seeded(seed))
		p.SetPeer("A", map[string]Bitfield{d: bitsWith(3, 0, 1, 2)})
		p.SetPeer("B", map[string]Bitfield{d: bitsWith(3, 1, 2)})
		p.SetPeer("C", map[string]Bitfield{d: bitsWith(3, 2)})
		var got []int
		for {
			blob, i, ok := p.Next("A")
			if !ok {
				break
			}
			if blob != d {
				t.Fatalf("blob %s", blob)
			}
			got = append(got, i)
		}
		if !slices.Equal(got, []int{0, 1, 2}) {
			t.Fatalf("seed %d: A got %v, want rarest first [0 1 2]", seed, got)
		}
	}
	// B, asking first, gets piece 1 (two holders) before piece 2 (three).
	p := NewPicker(blobs, nil, seeded(1))
	p.SetPeer("A", map[string]Bitfield{d: bitsWith(3, 0, 1, 2)})
	p.SetPeer("B", map[string]Bitfield{d: bitsWith(3, 1, 2)})
	p.SetPeer("C", map[string]Bitfield{d: bitsWith(3, 2)})
	if _, i, ok := p.Next("B"); !ok || i != 1 {
		t.Fatalf("B got %d %v, want 1", i, ok)
	}
}

func TestPickerNoDoubleClaimOutsideEndgame(t *testing.T) {
	blobs := fakeBlobs(12, 9)
	p := NewPicker(blobs, nil, seeded(3))
	peers := []string{"A", "B", "C"}
	for _, peer := range peers {
		p.SetPeer(peer, map[string]Bitfield{blobs[0].Digest: FullBitfield(12), blobs[1].Digest: FullBitfield(9)})
	}
	claimed := map[pieceRef]string{}
	for progress := true; progress; {
		progress = false
		for _, peer := range peers {
			blob, i, ok := p.Next(peer)
			if !ok {
				continue
			}
			progress = true
			if prev, dup := claimed[pieceRef{blob, i}]; dup {
				t.Fatalf("piece %s/%d handed to %s and %s", blob, i, prev, peer)
			}
			claimed[pieceRef{blob, i}] = peer
		}
	}
	if len(claimed) != 21 {
		t.Fatalf("%d pieces handed out, want 21", len(claimed))
	}
	if p.Missing() != 21 {
		t.Fatalf("missing %d, want 21 (nothing done yet)", p.Missing())
	}
}

func TestPickerEndgame(t *testing.T) {
	blobs := fakeBlobs(6)
	d := blobs[0].Digest
	p := NewPicker(blobs, nil, seeded(4))
	p.SetPeer("A", map[string]Bitfield{d: FullBitfield(6)})
	p.SetPeer("B", map[string]Bitfield{d: FullBitfield(6)})
	for range 6 {
		if _, _, ok := p.Next("A"); !ok {
			t.Fatal("A ran out of pieces")
		}
	}
	if _, _, ok := p.Next("B"); ok {
		t.Fatal("duplicate handed out with 6 missing (> threshold 4)")
	}
	p.Done(d, 0)
	p.Done(d, 5)
	if p.Missing() != 4 {
		t.Fatalf("missing %d", p.Missing())
	}
	var dups []int
	for {
		_, i, ok := p.Next("B")
		if !ok {
			break
		}
		dups = append(dups, i)
	}
	slices.Sort(dups)
	if !slices.Equal(dups, []int{1, 2, 3, 4}) {
		t.Fatalf("endgame duplicates %v, want [1 2 3 4] once each", dups)
	}
	if _, _, ok := p.Next("A"); ok {
		t.Fatal("A got a piece it already claims")
	}
	// Done drops every claim: B's release of a done piece changes nothing,
	// and the piece is not handed out again.
	p.Done(d, 1)
	p.Release("B", d, 1)
	p.Release("A", d, 2) // A gives up 2: B still has it, so A may retry it
	if _, i, ok := p.Next("A"); !ok || i != 2 {
		t.Fatalf("A after release got %d %v, want 2", i, ok)
	}
	if !p.Wanted(d, 2) || p.Wanted(d, 1) {
		t.Fatal("Wanted disagrees with Done")
	}

	// Threshold 0: never duplicate.
	q := NewPicker(blobs, nil, seeded(4))
	q.SetEndgameThreshold(0)
	q.SetPeer("A", map[string]Bitfield{d: bitsWith(6, 0)})
	q.SetPeer("B", map[string]Bitfield{d: bitsWith(6, 0)})
	q.Next("A")
	if _, _, ok := q.Next("B"); ok {
		t.Fatal("duplicate handed out with the endgame off")
	}
}

func TestPickerRemovePeerReleasesClaims(t *testing.T) {
	blobs := fakeBlobs(10)
	d := blobs[0].Digest
	p := NewPicker(blobs, nil, seeded(5))
	p.SetPeer("A", map[string]Bitfield{d: FullBitfield(10)})
	p.SetPeer("B", map[string]Bitfield{d: FullBitfield(10)})
	for range 7 {
		p.Next("A")
	}
	p.RemovePeer("A")
	seen := map[int]bool{}
	for {
		_, i, ok := p.Next("B")
		if !ok {
			break
		}
		seen[i] = true
	}
	if len(seen) != 10 {
		t.Fatalf("B got %d pieces after A left, want all 10", len(seen))
	}
	if _, _, ok := p.Next("A"); ok {
		t.Fatal("a removed peer got a piece")
	}
}

func TestPickerReleaseAndRarityUpdates(t *testing.T) {
	blobs := fakeBlobs(2)
	d := blobs[0].Digest
	p := NewPicker(blobs, nil, seeded(6))
	p.SetPeer("A", map[string]Bitfield{d: FullBitfield(2)})
	p.SetPeer("B", map[string]Bitfield{d: bitsWith(2, 0)})
	p.SetPeer("C", map[string]Bitfield{d: bitsWith(2, 0)})
	_, i, _ := p.Next("A")
	if i != 1 {
		t.Fatalf("A got %d, want the rarer 1", i)
	}
	p.Release("A", d, 1)
	// B and C leave piece 0's holders; then a Have makes piece 1 common.
	p.SetPeer("B", nil)
	p.SetPeer("C", map[string]Bitfield{d: NewBitfield(2)})
	p.PeerHas("B", d, 1)
	p.PeerHas("C", d, 1)
	p.PeerHas("C", d, 7)          // out of range: ignored
	p.PeerHas("C", "sha256:x", 0) // unknown blob: ignored
	if _, i, _ := p.Next("A"); i != 0 {
		t.Fatalf("A got %d, want 0 (now the rarer)", i)
	}
	if _, i, ok := p.Next("B"); !ok || i != 1 {
		t.Fatalf("B got %d %v, want released piece 1", i, ok)
	}
}

func TestPickerHaveDoneAndBadInput(t *testing.T) {
	blobs := fakeBlobs(4, 3)
	d0, d1 := blobs[0].Digest, blobs[1].Digest
	have := map[string]Bitfield{d0: bitsWith(4, 0, 2), d1: bitsWith(5, 0)} // d1's is the wrong length
	p := NewPicker(blobs, have, seeded(7))
	if p.Missing() != 5 {
		t.Fatalf("missing %d, want 5", p.Missing())
	}
	if p.Interesting("A") {
		t.Fatal("an unknown peer is interesting")
	}
	p.SetPeer("A", map[string]Bitfield{d0: bitsWith(4, 0, 2), d1: bitsWith(2, 0), "sha256:unknown": FullBitfield(1)})
	if _, _, ok := p.Next("A"); ok || p.Interesting("A") {
		t.Fatal("A has only pieces we hold (its d1 bitfield is malformed)")
	}
	p.SetPeer("A", map[string]Bitfield{d0: FullBitfield(4), d1: FullBitfield(3)})
	got := map[pieceRef]bool{}
	for {
		b, i, ok := p.Next("A")
		if !ok {
			break
		}
		got[pieceRef{b, i}] = true
		p.Done(b, i)
	}
	if got[pieceRef{d0, 0}] || got[pieceRef{d0, 2}] || len(got) != 5 {
		t.Fatalf("handed out %v: want the 5 missing pieces only", got)
	}
	if !p.Complete() || p.Missing() != 0 {
		t.Fatalf("missing %d after all done", p.Missing())
	}
	p.Done(d0, 1) // twice: no effect
	if p.Missing() != 0 {
		t.Fatal("Done twice counted twice")
	}
}

func TestPickerDeterministicWithSeed(t *testing.T) {
	run := func(seed uint64) string {
		blobs := fakeBlobs(40, 25)
		p := NewPicker(blobs, nil, seeded(seed))
		for k, peer := range []string{"A", "B", "C", "D"} {
			bits := map[string]Bitfield{}
			for bi, bp := range blobs {
				b := NewBitfield(len(bp.Pieces))
				for i := range len(bp.Pieces) {
					if (i+k+bi)%3 != 0 {
						b.Set(i)
					}
				}
				bits[bp.Digest] = b
			}
			p.SetPeer(peer, bits)
		}
		var order []string
		for p.Missing() > 0 {
			progress := false
			for _, peer := range []string{"A", "B", "C", "D"} {
				if b, i, ok := p.Next(peer); ok {
					order = append(order, fmt.Sprintf("%s:%s/%d", peer, b[7:9], i))
					p.Done(b, i)
					progress = true
				}
			}
			if !progress {
				break
			}
		}
		if !p.Complete() {
			t.Fatalf("seed %d: %d pieces never handed out", seed, p.Missing())
		}
		return fmt.Sprint(order)
	}
	if run(42) != run(42) {
		t.Fatal("same seed, different picks")
	}
	distinct := map[string]bool{}
	for seed := range uint64(5) {
		distinct[run(seed)] = true
	}
	if len(distinct) < 2 {
		t.Fatal("five seeds gave one order: ties are not broken at random")
	}
}

func TestPickerConcurrent(t *testing.T) {
	blobs := fakeBlobs(200)
	d := blobs[0].Digest
	p := NewPicker(blobs, nil, nil)
	var wg sync.WaitGroup
	for k := range 8 {
		peer := fmt.Sprint("peer", k)
		p.SetPeer(peer, map[string]Bitfield{d: FullBitfield(200)})
		wg.Go(func() {
			for n := 0; ; n++ {
				b, i, ok := p.Next(peer)
				if !ok {
					if p.Complete() {
						return
					}
					continue
				}
				if n%5 == 0 {
					p.Release(peer, b, i) // a failed fetch
				} else {
					p.Done(b, i)
				}
			}
		})
	}
	wg.Wait()
	if !p.Complete() {
		t.Fatalf("missing %d", p.Missing())
	}
}

// A seed is asked only for what no other peer holds, in the endgame too.
func TestPickerSparesSeeds(t *testing.T) {
	blobs := fakeBlobs(8)
	d := blobs[0].Digest
	p := NewPicker(blobs, nil, seeded(1))
	p.MarkSeed("seed")
	p.SetPeer("seed", map[string]Bitfield{d: FullBitfield(8)})
	p.SetPeer("a", map[string]Bitfield{d: bitsWith(8, 0, 1)})
	got := map[int]bool{}
	for {
		_, i, ok := p.Next("seed")
		if !ok {
			break
		}
		got[i] = true
	}
	if len(got) != 6 || got[0] || got[1] {
		t.Fatalf("the seed was asked for %v, want pieces 2-7 only (a holds 0 and 1)", got)
	}
	if _, i, ok := p.Next("a"); !ok || (i != 0 && i != 1) {
		t.Fatalf("a: %d %v", i, ok)
	}
	// In the endgame too: the seed gets no duplicate of the piece a
	// fetches, nor the other one left, since a holds both.
	for i := 2; i < 8; i++ {
		p.Done(d, i)
	}
	p.Release("a", d, 0)
	p.Release("a", d, 1)
	if _, i, ok := p.Next("a"); !ok || i != 0 && i != 1 {
		t.Fatalf("a in the endgame: %d %v", i, ok)
	}
	if _, i, ok := p.Next("seed"); ok {
		t.Fatalf("in the endgame the seed was asked for piece %d, which a holds", i)
	}
}

// The endgame sends the last pieces to one more peer each, not to all.
func TestPickerEndgameBoundsDuplicates(t *testing.T) {
	blobs := fakeBlobs(1)
	d := blobs[0].Digest
	p := NewPicker(blobs, nil, seeded(3))
	for _, peer := range []string{"a", "b", "c", "d"} {
		p.SetPeer(peer, map[string]Bitfield{d: FullBitfield(1)})
	}
	got := 0
	for _, peer := range []string{"a", "b", "c", "d"} {
		if _, _, ok := p.Next(peer); ok {
			got++
		}
	}
	if got != maxEndgameClaims {
		t.Fatalf("the last piece went to %d peers at once, want %d", got, maxEndgameClaims)
	}
}

func TestPickerHolds(t *testing.T) {
	blobs := fakeBlobs(3)
	bp := blobs[0]
	p := NewPicker(blobs, nil, nil)
	p.PeerHas("n1", bp.Digest, 1)
	for _, tc := range []struct {
		peer  string
		piece int
		want  bool
	}{{"n1", 1, true}, {"n1", 0, false}, {"n2", 1, false}, {"n1", 3, false}, {"n1", -1, false}} {
		if got := p.Holds(tc.peer, bp.Digest, tc.piece); got != tc.want {
			t.Errorf("Holds(%s, %d) = %v, want %v", tc.peer, tc.piece, got, tc.want)
		}
	}
	if p.Holds("n1", "sha256:other", 1) {
		t.Error("a blob outside the distribution is held")
	}
}
