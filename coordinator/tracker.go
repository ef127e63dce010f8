package coordinator

import (
	"math/rand/v2"
	"sort"
	"sync"
	"time"

	"github.com/drove-project/drove/protocol"
)

// The tracker lives on the leader, in memory only: which peers take part in
// each distribution and how far they are. Peers announce every second or
// so, so a new leader learns the swarm again within one announce interval;
// nothing of it goes to raft (DESIGN.md invariant 5), except what the
// distribute steps' results record: which nodes finished.

// Tracker tuning.
const (
	// trackerPeers is how many peers an announce gets back (8–20 is the
	// range that keeps every link busy without spreading pieces thin).
	trackerPeers = 12
	// peerTTL drops a peer that stopped announcing.
	peerTTL = 10 * time.Second
	// swarmTTL forgets a distribution nobody announced for that long.
	swarmTTL = 10 * time.Minute
)

// localityLabels are the node labels that say two peers are close.
var localityLabels = []string{"zone", "rack"}

type tracker struct {
	mu      sync.Mutex
	swarms  map[string]*swarm
	rng     *rand.Rand
	expired time.Time // last sweep of expire
}

type swarm struct {
	peers map[string]*protocol.PeerProgress
	seen  time.Time
}

func newTracker() *tracker {
	return &tracker{swarms: map[string]*swarm{}, rng: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0x5eed))}
}

// announce records a peer's report and picks its peers: up to trackerPeers
// live ones, those sharing its zone or rack label first, in random order
// otherwise. done says whether the distribution's plan has settled.
//
// Peers are not checked against the gossip members: an origin (the CLI
// serving an image from its own store, listed in Distribution.Seeds) is
// no node, and is handed out like any peer. Every announcer has the
// cluster token already (the coordinators' NATS requires it), and a peer
// that serves bad pieces is banned by the receivers' verification.
func (t *tracker) announce(a *protocol.SwarmAnnounce, now time.Time, done bool) *protocol.SwarmPeers {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.expire(now)
	s := t.swarms[a.Distribution]
	if s == nil {
		s = &swarm{peers: map[string]*protocol.PeerProgress{}}
		t.swarms[a.Distribution] = s
	}
	s.seen = now
	// A peer that leaves keeps its last report (status shows what it
	// did) but is handed to no one.
	s.peers[a.Peer.ID] = &protocol.PeerProgress{SwarmAnnounce: *a, SeenMs: now.UnixMilli()}
	out := &protocol.SwarmPeers{Done: done}
	var near, far []protocol.SwarmPeer
	for id, p := range s.peers {
		if p.Complete && !p.Peer.Seed {
			out.CopiesOut++
		}
		if id == a.Peer.ID || p.Leaving || (a.SeedsOnly && !p.Peer.Seed) {
			continue
		}
		if nearby(a.Peer.Labels, p.Peer.Labels) {
			near = append(near, p.Peer)
		} else {
			far = append(far, p.Peer)
		}
	}
	// Map order is not random enough to rely on; sort, then shuffle.
	for _, group := range [][]protocol.SwarmPeer{near, far} {
		sort.Slice(group, func(i, j int) bool { return group[i].ID < group[j].ID })
		t.rng.Shuffle(len(group), func(i, j int) { group[i], group[j] = group[j], group[i] })
	}
	out.Peers = append(near, far...)
	if len(out.Peers) > trackerPeers {
		out.Peers = out.Peers[:trackerPeers]
	}
	return out
}

// nearby reports whether two label sets share a locality label value.
func nearby(a, b map[string]string) bool {
	for _, k := range localityLabels {
		if v, ok := a[k]; ok && v != "" && b[k] == v {
			return true
		}
	}
	return false
}

// expireEvery spaces the sweeps: every peer announces about once a
// second, and walking every swarm on each announce would cost O(peers²)
// per second in a large cluster.
const expireEvery = time.Second

// expire drops peers that stopped announcing and swarms nobody announced
// to for swarmTTL, at most once per expireEvery (call with t.mu held).
func (t *tracker) expire(now time.Time) {
	if now.Sub(t.expired) < expireEvery {
		return
	}
	t.expired = now
	for id, s := range t.swarms {
		if now.Sub(s.seen) > swarmTTL {
			delete(t.swarms, id)
			continue
		}
		for pid, p := range s.peers {
			if now.Sub(time.UnixMilli(p.SeenMs)) > peerTTL {
				delete(s.peers, pid)
			}
		}
	}
}

// status reports one distribution (id non-empty) or all, peers by ID.
func (t *tracker) status(id string, done func(string) bool) *protocol.DistributionStatus {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := &protocol.DistributionStatus{Distributions: []protocol.DistributionProgress{}}
	ids := make([]string, 0, len(t.swarms))
	for d := range t.swarms {
		if id == "" || d == id {
			ids = append(ids, d)
		}
	}
	sort.Strings(ids)
	for _, d := range ids {
		dp := protocol.DistributionProgress{ID: d, Done: done(d), Peers: []protocol.PeerProgress{}}
		for _, p := range t.swarms[d].peers {
			dp.Peers = append(dp.Peers, *p)
		}
		sort.Slice(dp.Peers, func(i, j int) bool { return dp.Peers[i].Peer.ID < dp.Peers[j].Peer.ID })
		out.Distributions = append(out.Distributions, dp)
	}
	return out
}
