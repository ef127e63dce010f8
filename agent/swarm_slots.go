package agent

import (
	"sync"
	"time"
)

// Upload slots. A node sends at most uploadSlots pieces at once (to any
// requesters, over all distributions), as BitTorrent unchokes a few peers:
// each piece then crosses the uplink quickly and its receiver can pass it
// on, instead of every requester getting a sliver of the uplink and no
// piece finishing for seconds (with 16 peers asking a seed at once, each
// of its pieces took a whole S/B, requests timed out and were sent again:
// the seed uploaded 7.6·S). A request beyond the slots gets code busy, and
// the requester asks that peer again a little later or another peer now.

const (
	// uploadSlots is how many pieces a node sends at once.
	uploadSlots = 4
	// slotIdle frees a slot whose requester stopped asking for the rest
	// of its piece.
	slotIdle = 5 * time.Second
	// contention is how long after turning a requester away a node keeps
	// its slots to one per requester.
	contention = time.Second
)

type slotKey struct {
	requester string
	ref       pieceRef
}

type slot struct {
	units, served int
	last          time.Time
}

// slotGate tracks the pieces being sent. Safe for concurrent use.
type slotGate struct {
	n         int
	contended time.Time // when a requester holding no slot was last turned away
	mu        sync.Mutex
	active    map[slotKey]*slot
}

func newSlotGate(n int) *slotGate { return &slotGate{n: n, active: map[slotKey]*slot{}} }

// admit reports whether a unit of ref for requester may be sent now: its
// piece already holds a slot, or a slot is free (then it takes it for the
// piece's units).
func (g *slotGate) admit(requester string, ref pieceRef, units int, now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	k := slotKey{requester, ref}
	if s := g.active[k]; s != nil {
		s.last = now
		return true
	}
	for key, s := range g.active {
		if now.Sub(s.last) > slotIdle {
			delete(g.active, key)
		}
	}
	held := 0
	for key := range g.active {
		if key.requester == requester {
			held++
		}
	}
	// While other requesters are being turned away, a requester holding
	// a slot gets no second one: slots are spread over requesters, so
	// pieces spread over the swarm instead of piling up at the fastest
	// asker. Alone, a requester may use every slot.
	if len(g.active) >= g.n || (held > 0 && now.Sub(g.contended) < contention) {
		if held == 0 {
			g.contended = now
		}
		return false
	}
	g.active[k] = &slot{units: units, last: now}
	return true
}

// sent records one unit of ref sent to requester; the piece's last unit
// frees its slot. A unit that was not sent (an error) frees it too.
func (g *slotGate) sent(requester string, ref pieceRef, ok bool, now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	k := slotKey{requester, ref}
	s := g.active[k]
	if s == nil {
		return
	}
	s.served++
	s.last = now
	if !ok || s.served >= s.units {
		delete(g.active, k)
	}
}

// busy reports how many slots are taken.
func (g *slotGate) busy() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.active)
}
