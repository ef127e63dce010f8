package agent

import (
	"context"
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
//
// A slot is held until the requester says it has the whole piece (its
// done message, protocol.SwarmDoneSubject), not merely until the last
// unit is handed to the data endpoint: the endpoint queues replies
// without bound, so a slot freed at hand-off let a node queue seconds of
// data behind its uplink (1 MiB units took 1 s at p50, 5 s at worst, and
// pieces spread through the swarm that much slower). Held until done,
// the bytes a node has queued are at most its slots' pieces.

const (
	// uploadSlots is how many pieces a node sends at once.
	uploadSlots = 2
	// slotIdle frees a slot whose requester stopped asking for the rest
	// of its piece, or never said it had it all.
	slotIdle = 3 * time.Second
	// contention is how long after turning a requester away a node keeps
	// its slots to one per requester.
	contention = time.Second
)

type slotKey struct {
	requester string
	ref       pieceRef
}

// slotGate tracks the pieces being sent. Safe for concurrent use.
type slotGate struct {
	n         int
	contended time.Time // when a requester holding no slot was last turned away
	mu        sync.Mutex
	active    map[slotKey]time.Time // → the latest unit admitted or sent
	freed     chan struct{}         // closed (and replaced) when a slot frees
}

func newSlotGate(n int) *slotGate {
	return &slotGate{n: n, active: map[slotKey]time.Time{}, freed: make(chan struct{})}
}

// slotRecheck is how often a waiting request looks again without being
// woken (a slot can also free by going idle).
const slotRecheck = 100 * time.Millisecond

// wait is admit for up to d: a request that finds every slot taken waits
// for one to free rather than being sent away, so a freed slot is taken
// at once and the uplink does not idle while turned-away requesters back
// off. It reports false when d passes (or ctx ends) first.
func (g *slotGate) wait(ctx context.Context, requester string, ref pieceRef, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		g.mu.Lock()
		freed := g.freed
		g.mu.Unlock()
		if g.admit(requester, ref, time.Now()) {
			return true
		}
		left := time.Until(deadline)
		if left <= 0 {
			return false
		}
		t := time.NewTimer(min(left, slotRecheck))
		select {
		case <-freed:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return false
		}
		t.Stop()
	}
}

// freeLocked deletes a slot and wakes the waiting requests (under mu).
func (g *slotGate) freeLocked(k slotKey) {
	if _, ok := g.active[k]; !ok {
		return
	}
	delete(g.active, k)
	close(g.freed)
	g.freed = make(chan struct{})
}

// admit reports whether a unit of ref for requester may be sent now: its
// piece already holds a slot, or a slot is free (then it takes it until
// the requester's done).
func (g *slotGate) admit(requester string, ref pieceRef, now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	k := slotKey{requester, ref}
	if _, ok := g.active[k]; ok {
		g.active[k] = now
		return true
	}
	for key, last := range g.active {
		if now.Sub(last) > slotIdle {
			g.freeLocked(key)
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
	g.active[k] = now
	return true
}

// sent records one unit of ref handed to the endpoint for requester. A
// unit that was not sent (an error) frees the slot; otherwise the slot
// waits for the requester's done (or slotIdle).
func (g *slotGate) sent(requester string, ref pieceRef, ok bool, now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	k := slotKey{requester, ref}
	if _, held := g.active[k]; !held {
		return
	}
	if ok {
		g.active[k] = now
	} else {
		g.freeLocked(k)
	}
}

// done frees the slot of ref for requester: it has every unit (or gave
// the piece up).
func (g *slotGate) done(requester string, ref pieceRef) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.freeLocked(slotKey{requester, ref})
}

// busy reports how many slots are taken.
func (g *slotGate) busy() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.active)
}
