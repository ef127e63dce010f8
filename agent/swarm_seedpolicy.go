package agent

import (
	"sync"
	"time"
)

// Seed offload (distribution-performance.md section 9, goal 2: a seed
// uploads at most 2·S whatever the number of peers). Peers pick the
// rarest pieces, and at the start of a distribution every piece is
// equally rare, so peers starting together ask the seed for the same
// pieces and it would send each of them many times. A seed therefore
// serves each piece to one more peer only when no piece has gone out
// fewer times, or when the last copy went out longer ago than
// seedWindow (the peers that got it have had time to pass it on, or have
// vanished). Other requests get a "try another peer" reply (code
// timeout). All units of one piece to one peer are admitted together.

// seedWindow is how long after sending a piece a seed refuses to send it
// again while other pieces have gone out less often.
const seedWindow = 3 * time.Second

// seedLedger records what a seed sent, per piece. Safe for concurrent use.
type seedLedger struct {
	window time.Duration

	mu      sync.Mutex
	pieces  int                               // in the distribution
	count   map[pieceRef]int                  // copies sent (pieces never sent are absent)
	last    map[pieceRef]time.Time            // when the latest copy started
	takers  map[pieceRef]map[string]time.Time // requester → when admitted
	atCount map[int]int                       // how many pieces were sent that many times (> 0)
}

func newSeedLedger(pieces int, window time.Duration) *seedLedger {
	return &seedLedger{
		window: window, pieces: pieces, count: map[pieceRef]int{}, last: map[pieceRef]time.Time{},
		takers: map[pieceRef]map[string]time.Time{}, atCount: map[int]int{},
	}
}

// min is the fewest copies any piece has had (under mu).
func (l *seedLedger) min() int {
	if len(l.count) < l.pieces {
		return 0
	}
	m := -1
	for c, n := range l.atCount {
		if n > 0 && (m < 0 || c < m) {
			m = c
		}
	}
	return max(m, 0)
}

// admit decides whether requester may have (a unit of) piece ref now.
func (l *seedLedger) admit(requester string, ref pieceRef, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	t := l.takers[ref]
	if _, ok := t[requester]; ok {
		t[requester] = now
		return true
	}
	c := l.count[ref]
	if c > l.min() && now.Sub(l.last[ref]) < l.window {
		return false
	}
	if c > 0 {
		l.atCount[c]--
	}
	l.count[ref] = c + 1
	l.atCount[c+1]++
	l.last[ref] = now
	if t == nil {
		t = map[string]time.Time{}
		l.takers[ref] = t
	}
	for r, at := range t { // a piece's units come within seconds
		if now.Sub(at) > 10*l.window {
			delete(t, r)
		}
	}
	t[requester] = now
	return true
}
