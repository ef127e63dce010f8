package swarm

import (
	"math/rand/v2"
	"slices"
	"sync"

	"github.com/drove-project/drove/protocol"
)

// EndgameThreshold is the default number of missing pieces at or below which
// the Picker hands out pieces already claimed by other peers, so that the
// last pieces do not wait on the slowest peer.
const EndgameThreshold = 4

// Picker decides which piece to fetch from which peer: among the pieces a
// peer has and we lack, one nobody is fetching, the rarest among connected
// peers (held by the fewest), ties broken at random. Handing a piece out
// claims it for that peer until Release (the fetch failed), Done (the piece
// was verified) or RemovePeer. In the endgame, when no unclaimed piece
// fits and at most the endgame threshold of pieces are missing, a peer gets
// a piece others are already fetching, so that the last pieces come from
// whichever peer answers first. A Picker is safe for concurrent use.
type Picker struct {
	mu       sync.Mutex
	rng      *rand.Rand
	endgame  int
	order    []string // blob digests as given, for a deterministic scan
	blobs    map[string]*blobState
	peers    map[string]map[string]Bitfield // peer → blob → pieces it has
	claimsBy map[string]map[pieceRef]struct{}
	missing  int
	seeds    map[string]bool // peers that are origins: asked only for what no other peer has
}

// blobState is the Picker's view of one blob.
type blobState struct {
	want    Bitfield   // set: not verified yet
	holders []int      // connected peers holding each piece
	claims  [][]string // peers fetching each piece
}

type pieceRef struct {
	blob  string
	piece int
}

// NewPicker starts picking for blobs, of which we already hold the pieces
// have marks (by blob digest; a missing or nil entry, or one of the wrong
// length, means none). rng breaks ties; nil means a randomly seeded one.
// Blobs listed twice count once.
func NewPicker(blobs []protocol.BlobPieces, have map[string]Bitfield, rng *rand.Rand) *Picker {
	if rng == nil {
		rng = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	p := &Picker{
		rng:      rng,
		endgame:  EndgameThreshold,
		blobs:    make(map[string]*blobState, len(blobs)),
		peers:    make(map[string]map[string]Bitfield),
		claimsBy: make(map[string]map[pieceRef]struct{}),
	}
	for _, bp := range blobs {
		if _, dup := p.blobs[bp.Digest]; dup {
			continue
		}
		n := len(bp.Pieces)
		bs := &blobState{want: FullBitfield(n), holders: make([]int, n), claims: make([][]string, n)}
		if h := have[bp.Digest]; h.Len() == n {
			for i := range n {
				if h.Has(i) {
					bs.want.Clear(i)
				}
			}
		}
		p.missing += bs.want.Count()
		p.blobs[bp.Digest] = bs
		p.order = append(p.order, bp.Digest)
	}
	return p
}

// SetEndgameThreshold changes how few missing pieces start the endgame
// (EndgameThreshold by default; 0 turns duplicates off).
func (p *Picker) SetEndgameThreshold(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.endgame = max(n, 0)
}

// SetPeer records the pieces a connected peer has, replacing what was known
// of it. Bitfields of blobs the Picker does not know, or of the wrong
// length, are ignored. The peer's claims stay.
func (p *Picker) SetPeer(peer string, bits map[string]Bitfield) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.forget(peer)
	m := make(map[string]Bitfield, len(bits))
	for d, b := range bits {
		bs := p.blobs[d]
		if bs == nil || b.Len() != len(bs.holders) {
			continue
		}
		m[d] = b.Clone()
		for i := range bs.holders {
			if b.Has(i) {
				bs.holders[i]++
			}
		}
	}
	p.peers[peer] = m
}

// forget takes a peer's pieces out of the holder counts.
func (p *Picker) forget(peer string) {
	for d, b := range p.peers[peer] {
		bs := p.blobs[d]
		for i := range bs.holders {
			if b.Has(i) {
				bs.holders[i]--
			}
		}
	}
	delete(p.peers, peer)
}

// PeerHas records one more piece at a peer (a Have message); a peer not
// seen before becomes connected. Unknown blobs and pieces are ignored.
func (p *Picker) PeerHas(peer, blob string, piece int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	bs := p.blobs[blob]
	if bs == nil || piece < 0 || piece >= len(bs.holders) {
		return
	}
	m := p.peers[peer]
	if m == nil {
		m = make(map[string]Bitfield)
		p.peers[peer] = m
	}
	b, ok := m[blob]
	if !ok {
		b = NewBitfield(len(bs.holders))
		m[blob] = b
	}
	if !b.Has(piece) {
		b.Set(piece)
		bs.holders[piece]++
	}
}

// Holds reports whether peer is known to hold the piece.
func (p *Picker) Holds(peer, blob string, piece int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	b, ok := p.peers[peer][blob]
	return ok && piece >= 0 && piece < b.Len() && b.Has(piece)
}

// RemovePeer forgets a peer that disconnected and releases its claims.
func (p *Picker) RemovePeer(peer string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.forget(peer)
	for ref := range p.claimsBy[peer] {
		p.unclaim(peer, ref)
	}
	delete(p.claimsBy, peer)
}

// maxEndgameClaims bounds how many peers fetch one piece at once in the
// endgame: one more than the original, so a slow peer cannot hold up the
// end, without every connected peer sending the last pieces (each of
// up to 20 links fetching the last piece cost 1.4·S per node at 16 nodes).
const maxEndgameClaims = 2

// MarkSeed says peer is an origin. A seed is asked only for pieces no
// other connected peer holds, so that its uplink goes to pieces the swarm
// lacks (each about once) and the swarm spreads the rest. That holds in
// the endgame too: asked for endgame duplicates, a seed sent pieces peers
// already held (in CI, under -race, an origin sent 20 MiB where the swarm
// lacked only a 16 MiB layer).
func (p *Picker) MarkSeed(peer string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.seeds == nil {
		p.seeds = map[string]bool{}
	}
	p.seeds[peer] = true
}

// othersHold reports whether a connected peer that is not a seed holds a
// piece (call with p.mu held).
func (p *Picker) othersHold(ref pieceRef) bool {
	for peer, bits := range p.peers {
		if !p.seeds[peer] {
			if b, ok := bits[ref.blob]; ok && b.Has(ref.piece) {
				return true
			}
		}
	}
	return false
}

// Next picks a piece to fetch from peer and claims it for that peer. ok is
// false when the peer has nothing we may ask it for now.
func (p *Picker) Next(peer string) (blob string, piece int, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	have := p.peers[peer]
	if len(have) == 0 || p.missing == 0 {
		return "", 0, false
	}
	ref, found := p.pick(peer, have, false)
	if !found && p.missing <= p.endgame {
		ref, found = p.pick(peer, have, true)
	}
	if !found {
		return "", 0, false
	}
	bs := p.blobs[ref.blob]
	bs.claims[ref.piece] = append(bs.claims[ref.piece], peer)
	c := p.claimsBy[peer]
	if c == nil {
		c = make(map[pieceRef]struct{})
		p.claimsBy[peer] = c
	}
	c[ref] = struct{}{}
	return ref.blob, ref.piece, true
}

// pick scans the wanted pieces the peer has. Outside the endgame it takes
// unclaimed ones, rarest first; in the endgame, ones other peers claim and
// this one does not, fewest claims first, then rarest. Ties go to the rng
// (reservoir sampling over the scan, which runs in a fixed order).
func (p *Picker) pick(peer string, have map[string]Bitfield, endgame bool) (pieceRef, bool) {
	var best pieceRef
	bestClaims, bestHolders, ties := 0, 0, 0
	for _, d := range p.order {
		b, ok := have[d]
		if !ok {
			continue
		}
		bs := p.blobs[d]
		for j, w := range bs.want.b {
			if w&b.b[j] == 0 {
				continue
			}
			for i := j * 8; i < min(j*8+8, len(bs.holders)); i++ {
				if !bs.want.Has(i) || !b.Has(i) {
					continue
				}
				claims := len(bs.claims[i])
				if endgame != (claims > 0) || (endgame && (claims >= maxEndgameClaims || slices.Contains(bs.claims[i], peer))) {
					continue
				}
				if p.seeds[peer] && bs.holders[i] > 1 && p.othersHold(pieceRef{d, i}) {
					continue
				}
				holders := bs.holders[i]
				switch {
				case ties == 0 || claims < bestClaims || (claims == bestClaims && holders < bestHolders):
					best, bestClaims, bestHolders, ties = pieceRef{d, i}, claims, holders, 1
				case claims == bestClaims && holders == bestHolders:
					ties++
					if p.rng.IntN(ties) == 0 {
						best = pieceRef{d, i}
					}
				}
			}
		}
	}
	return best, ties > 0
}

// Release drops peer's claim on a piece whose fetch failed, so that it can
// be handed out again.
func (p *Picker) Release(peer, blob string, piece int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ref := pieceRef{blob, piece}
	if _, ok := p.claimsBy[peer][ref]; !ok {
		return
	}
	p.unclaim(peer, ref)
	delete(p.claimsBy[peer], ref)
}

// unclaim removes peer from the claimers of ref (not from claimsBy).
func (p *Picker) unclaim(peer string, ref pieceRef) {
	bs := p.blobs[ref.blob]
	if bs == nil || ref.piece < 0 || ref.piece >= len(bs.claims) {
		return
	}
	bs.claims[ref.piece] = slices.DeleteFunc(bs.claims[ref.piece], func(s string) bool { return s == peer })
}

// Done records a verified piece: it is no longer wanted and every claim on
// it is dropped (endgame duplicates still in flight can be cancelled).
func (p *Picker) Done(blob string, piece int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	bs := p.blobs[blob]
	if bs == nil || !bs.want.Has(piece) {
		return
	}
	bs.want.Clear(piece)
	p.missing--
	ref := pieceRef{blob, piece}
	for _, peer := range bs.claims[piece] {
		delete(p.claimsBy[peer], ref)
	}
	bs.claims[piece] = nil
}

// Wanted reports whether a piece is still missing.
func (p *Picker) Wanted(blob string, piece int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	bs := p.blobs[blob]
	return bs != nil && bs.want.Has(piece)
}

// Interesting reports whether peer has any piece still missing, claimed or
// not: whether it is worth staying connected to.
func (p *Picker) Interesting(peer string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for d, b := range p.peers[peer] {
		for j, w := range p.blobs[d].want.b {
			if w&b.b[j] != 0 {
				return true
			}
		}
	}
	return false
}

// Missing is the number of pieces still wanted.
func (p *Picker) Missing() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.missing
}

// Complete reports whether no piece is wanted any more.
func (p *Picker) Complete() bool { return p.Missing() == 0 }
