package agent

import "time"

// Seed gate: a fetch asks seeds (the CLI's origin, or nodes named with
// --seed-node) for pieces only once it has seen the swarm it starts into.
// The picker already spares a seed the pieces a connected peer holds, but
// at the start of a distribution a receiver knows only the peers that
// announced before it, and its links to them have not told their pieces
// yet: it then took from the seed, over a fast link within a tenth of a
// second, much of what a peer next to it held all along (a node installed
// from media holds most of the image; the origin served it up to 1.4×
// the image instead of the one blob the media lacked). So a fetch holds
// its seed links back until the tracker has answered an announce sent
// seedSettle after the fetch began (every receiver of the plan has
// announced by then) and every non-seed peer it links to has told its
// pieces; seedHold bounds the wait (no tracker, a peer that never
// answers). Outside the gate nothing changes: a distribution whose only
// source is a seed starts about seedSettle later.
const (
	seedSettle = formingAnnounce
	seedHold   = 2 * time.Second
)

// seedWait is how long this fetch's seed links must still wait, at most:
// 0 once the gate is open (it then stays open).
func (f *fetch) seedWait() time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.seedsOK {
		return 0
	}
	left := seedHold - time.Since(f.started)
	open := left <= 0
	if !open && f.ss.answeredSince(f.started.Add(seedSettle)) {
		open = true
		for _, l := range f.links {
			if !l.peer.Seed && !l.isReady() {
				open = false
				break
			}
		}
	}
	if open {
		f.seedsOK = true
		return 0
	}
	return left
}

// isReady reports whether the peer's pieces are in the picker.
func (l *link) isReady() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ready
}

// answeredSince reports whether the tracker answered an announce sent at
// or after t.
func (ss *session) answeredSince(t time.Time) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return !ss.answered.Before(t)
}

// await waits up to d for either channel, and reports false when the link
// ended first.
func (l *link) await(d time.Duration, a, b <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-l.ctx.Done():
		return false
	case <-a:
	case <-b:
	case <-t.C:
	}
	return true
}
