package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/nats-io/nats.go"

	"github.com/drove-project/drove/layers/store"
	"github.com/drove-project/drove/layers/swarm"
	"github.com/drove-project/drove/protocol"
)

// session is one distribution this node takes part in: its blobs, the
// subscriptions that serve them, and the announce loop.
type session struct {
	sw    *Swarm
	dist  protocol.Distribution
	dir   string // <data>/swarm/<id>: partial blobs
	seed  bool   // this node is one of dist.Seeds
	total int64
	blobs map[string]*blobState
	order []*blobState
	log   *slog.Logger
	// ledger, on seeds, spreads the first copies of pieces over the swarm.
	ledger *seedLedger

	uploaded   atomic.Int64
	downloaded atomic.Int64 // by every Fetch of this session
	kick       chan struct{}
	fetching   chan struct{}  // holds a token while a Fetch runs
	active     sync.WaitGroup // Fetch and Seed calls using the session
	gone       chan struct{}  // closed when torn down

	mu        sync.Mutex
	users     int
	lastUse   time.Time
	closing   bool
	peers     []protocol.SwarmPeer // the tracker's latest answer
	answered  time.Time            // when the announce it answered was sent
	done      bool                 // the tracker says every target finished
	copiesOut int
	connected int
	rateBps   int64
	banned    []string      // for the whole distribution
	changed   chan struct{} // closed (and replaced) when the above change
	subs      []*nats.Subscription
}

// blobState is one blob of a session: whole in the store, or a Partial.
type blobState struct {
	bp   protocol.BlobPieces
	hash v1.Hash

	mu      sync.RWMutex // write-locked while the Partial is committed
	partial *swarm.Partial
	file    *os.File // the store's blob, open while it is whole there
}

// acquire returns the session of dist, opening it (partial blobs, serving
// subscriptions, announce loop) if this node does not take part yet. The
// caller must release it.
func (s *Swarm) acquire(dist *protocol.Distribution) (*session, error) {
	for {
		ss, err := s.join(dist)
		if ss != nil || err != nil {
			return ss, err
		}
		// Opening re-hashes kept pieces, which takes a while for big
		// blobs: only other openings wait for it, not running sessions.
		s.opening.Lock()
		s.mu.Lock()
		_, exists := s.sessions[dist.ID]
		s.mu.Unlock()
		if exists {
			s.opening.Unlock()
			continue
		}
		ss, err = s.open(dist)
		if err != nil {
			s.opening.Unlock()
			return nil, err
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			s.opening.Unlock()
			ss.stopServing()
			return nil, ErrSwarmClosed
		}
		ss.users++
		ss.active.Add(1)
		s.sessions[dist.ID] = ss
		s.wg.Add(1)
		s.mu.Unlock()
		s.opening.Unlock()
		go ss.run()
		return ss, nil
	}
}

// join takes a use of dist's running session. It returns nil and no
// error when there is none (any being torn down is waited for).
func (s *Swarm) join(dist *protocol.Distribution) (*session, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrSwarmClosed
	}
	ss := s.sessions[dist.ID]
	if ss == nil {
		s.mu.Unlock()
		return nil, nil
	}
	ss.mu.Lock()
	if ss.closing {
		ss.mu.Unlock()
		s.mu.Unlock()
		<-ss.gone
		return nil, nil
	}
	defer s.mu.Unlock()
	defer ss.mu.Unlock()
	if ss.dist.ImageDigest != dist.ImageDigest {
		return nil, fmt.Errorf("distribution %s is already running here for image %s, not %s", dist.ID, ss.dist.ImageDigest, dist.ImageDigest)
	}
	ss.users++
	ss.active.Add(1)
	ss.lastUse = time.Now()
	ss.kickAnnounce()
	return ss, nil
}

// release ends one use of ss.
func (ss *session) release() {
	ss.mu.Lock()
	ss.users--
	ss.lastUse = time.Now()
	ss.mu.Unlock()
	ss.active.Done()
	ss.kickAnnounce()
}

// open builds a session and starts serving it: blobs the store holds are
// served from it, the others get a Partial that resumes verified pieces.
func (s *Swarm) open(dist *protocol.Distribution) (*session, error) {
	ss := &session{
		sw: s, dist: *dist, dir: filepath.Join(s.cfg.DataDir, "swarm", dist.ID),
		seed: slices.Contains(dist.Seeds, s.cfg.NodeID), blobs: map[string]*blobState{},
		log:  s.log.With("distribution", dist.ID),
		kick: make(chan struct{}, 1), fetching: make(chan struct{}, 1), gone: make(chan struct{}), changed: make(chan struct{}),
		lastUse: time.Now(),
	}
	opened := false
	defer func() {
		if !opened {
			ss.closeBlobs()
		}
	}()
	for _, bp := range dist.Blobs {
		h, err := v1.NewHash(bp.Digest)
		if err != nil {
			return nil, fmt.Errorf("distribution %s: blob %s: %w", dist.ID, bp.Digest, err)
		}
		bs := &blobState{bp: bp, hash: h}
		ss.total += bp.Size
		ss.blobs[bp.Digest] = bs
		ss.order = append(ss.order, bs)
		f, err := s.cfg.Store.OpenBlob(h)
		switch {
		case err == nil:
			bs.file = f
			continue
		case !errors.Is(err, store.ErrNotFound):
			return nil, fmt.Errorf("distribution %s: %w", dist.ID, err)
		}
		if ss.seed {
			// Seed checked first; a blob pruned since is a plain failure.
			return nil, fmt.Errorf("seed %s: blob %s: %w", dist.ID, bp.Digest, ErrNotSeed)
		}
		p, err := swarm.OpenPartial(ss.dir, bp)
		if err != nil {
			return nil, fmt.Errorf("distribution %s: %w", dist.ID, err)
		}
		if d := p.Dropped(); len(d) > 0 {
			ss.log.Warn("pieces kept from an earlier fetch failed verification; fetching them again", "digest", bp.Digest, "pieces", d)
		}
		bs.partial = p
	}
	if ss.seed {
		n := 0
		for _, bp := range dist.Blobs {
			n += len(bp.Pieces)
		}
		ss.ledger = newSeedLedger(n, seedWindow)
	}
	if err := ss.subscribe(); err != nil {
		return nil, err
	}
	opened = true
	return ss, nil
}

// closeBlobs closes the session's files; partial blobs stay on disk.
func (ss *session) closeBlobs() {
	for _, bs := range ss.order {
		bs.mu.Lock()
		if bs.partial != nil {
			if err := bs.partial.Close(); err != nil {
				ss.log.Warn("close partial blob", "digest", bs.bp.Digest, "err", err)
			}
		}
		if bs.file != nil {
			bs.file.Close()
			bs.file = nil
		}
		bs.mu.Unlock()
	}
}

// While the tracker hands out fewer than formingPeers peers, the next
// announce comes after formingAnnounce, doubled each time, up to the
// announce interval.
const (
	formingPeers    = 8
	formingAnnounce = 100 * time.Millisecond
)

// kickAnnounce asks the announce loop to announce now.
func (ss *session) kickAnnounce() {
	select {
	case ss.kick <- struct{}{}:
	default:
	}
}

// notify wakes everything waiting on the tracker's state (under ss.mu).
func (ss *session) notifyLocked() {
	close(ss.changed)
	ss.changed = make(chan struct{})
}

// run announces until the session ends: the tracker says the
// distribution is done, or it lingered unused too long, or the swarm
// closes. Then it tears the session down.
func (ss *session) run() {
	s := ss.sw
	defer s.wg.Done()
	// While the swarm forms (the tracker knew fewer peers than a node
	// wants), announce again soon: everyone starts together, and a node
	// that heard only of the seed would wait a whole interval to learn of
	// the peers that announced just after it.
	soon := formingAnnounce
	timer := time.NewTimer(s.cfg.AnnounceInterval)
	defer timer.Stop()
	var last announceSample
	ended := false // the distribution is over for this node, not the swarm closed
	for {
		last = ss.announce(s.base, last, false)
		if ss.finished() {
			ended = true
			break
		}
		next := s.cfg.AnnounceInterval
		if peers, _, _, _ := ss.trackerState(); len(peers) < formingPeers && soon < next {
			next, soon = soon, 2*soon
		}
		timer.Reset(next)
		select {
		case <-s.base.Done():
		case <-timer.C:
		case <-ss.kick:
		}
		if s.base.Err() != nil {
			ss.active.Wait() // calls end quickly once the swarm closes
			break
		}
	}
	ss.teardown(ended)
}

// finished decides, and marks under both locks, that the session ends.
func (ss *session) finished() bool {
	s := ss.sw
	s.mu.Lock()
	defer s.mu.Unlock()
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.users > 0 {
		return false
	}
	switch {
	case ss.done:
		ss.log.Info("distribution done; no longer serving it")
	case time.Since(ss.lastUse) > s.cfg.Linger:
		ss.log.Info("distribution lingered unused; no longer serving it", "linger", s.cfg.Linger)
	default:
		return false
	}
	ss.closing = true
	return true
}

// teardown stops serving, tells the tracker, closes files and forgets the
// session. ended says the distribution is over for this node (done, or
// lingered unused): its partial blobs will never be finished, so
// <data>/swarm/<id> goes too. When the swarm merely closes (the agent
// stops) they stay, for a Fetch after the restart to resume.
func (ss *session) teardown(ended bool) {
	s := ss.sw
	ss.mu.Lock()
	ss.closing = true
	ss.mu.Unlock()
	ss.stopServing()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	ss.announce(ctx, announceSample{}, true)
	cancel()
	if ended {
		// Before the session is forgotten: a new session of the same
		// distribution waits for gone, so it cannot reopen the files.
		if err := os.RemoveAll(ss.dir); err != nil {
			ss.log.Warn("remove the distribution's partial blobs", "dir", ss.dir, "err", err)
		}
	}
	s.mu.Lock()
	delete(s.sessions, ss.dist.ID)
	s.mu.Unlock()
	close(ss.gone)
}

// stopServing unsubscribes and closes the session's files.
func (ss *session) stopServing() {
	ss.mu.Lock()
	subs := ss.subs
	ss.subs = nil
	ss.mu.Unlock()
	for _, sub := range subs {
		sub.Unsubscribe()
	}
	ss.closeBlobs()
}
