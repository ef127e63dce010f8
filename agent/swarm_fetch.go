package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/drove-project/drove/layers/swarm"
	"github.com/drove-project/drove/protocol"
)

// Fetching: a Fetch connects to the peers the tracker hands out, learns
// what each holds (its bitfield, then its Have messages), and asks each
// for pieces the Picker chooses, a bounded number of units in flight per
// peer (core NATS has no flow control). All units of a piece come from one
// peer, so a piece that fails verification convicts that peer: it is
// banned from the distribution.

const (
	// unitsInFlight bounds the unit requests out to one peer at once;
	// piece workers keep at least minUnitsInFlight out.
	unitsInFlight    = 8
	minUnitsInFlight = 4
	// unitTimeout bounds one unit request; a serving peer makes a request
	// wait at most maxUploadWait for its upload limit.
	unitTimeout = maxUploadWait + 10*time.Second
	// maxPeerFailures consecutive failed requests drop a peer (it is
	// reconnected if the tracker still names it, after peerRetry).
	maxPeerFailures = 3
	peerRetry       = 2 * time.Second
)

// errBadUnit: a peer answered a unit request with the wrong number of
// bytes. Like a piece that fails verification, it convicts the peer.
var errBadUnit = errors.New("unit of the wrong length")

// Fetch brings every blob of dist into the node's store and unpacks the
// image into <DataDir>/rootfs/<image digest hex>/. Blobs already in the
// store are skipped, pieces verified by an earlier, interrupted Fetch are
// kept. The distribution is served from the moment Fetch starts and goes
// on being served after it returns (see Swarm). Fetch returns when the
// image is unpacked, or when ctx ends (the error then wraps
// context.Cause(ctx)); Stats are filled either way.
func (s *Swarm) Fetch(ctx context.Context, dist *protocol.Distribution) (Stats, error) {
	started := time.Now()
	if err := checkDistribution(dist); err != nil {
		return Stats{}, fmt.Errorf("fetch: %w", err)
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	ss, err := s.acquire(dist)
	if err != nil {
		return Stats{Duration: time.Since(started)}, fmt.Errorf("fetch %s: %w", dist.ID, err)
	}
	defer ss.release()
	select { // one Fetch of a distribution at a time
	case ss.fetching <- struct{}{}:
		defer func() { <-ss.fetching }()
	case <-ctx.Done():
		return ss.stats(started, 0, 0), fmt.Errorf("fetch %s: wait for another fetch of it: %w", dist.ID, context.Cause(ctx))
	}
	f := newFetch(ss)
	err = f.run(ctx)
	st := ss.stats(started, f.downloaded.Load(), int(f.pieces.Load()))
	if err != nil {
		return st, fmt.Errorf("fetch %s: %d pieces still missing: %w", dist.ID, f.picker.Missing(), err)
	}
	// Every piece is verified: the tracker hears it now, not at the next
	// tick or after the commit hashed every blob once more (on a busy
	// node, seconds later).
	ss.kickAnnounce()
	st.Verified = time.Now()
	verified, err := ss.commit(ctx)
	if err != nil {
		return st, fmt.Errorf("fetch %s: %w", dist.ID, err)
	}
	ss.kickAnnounce()
	if err := s.unpack(ctx, dist, verified); err != nil {
		return st, fmt.Errorf("fetch %s: %w", dist.ID, err)
	}
	st.Duration = time.Since(started)
	ss.log.Info("distribution fetched", "digest", dist.ImageDigest, "downloaded", st.Downloaded,
		"pieces", st.Pieces, "banned", st.Banned, "ms", st.Duration.Milliseconds())
	return st, nil
}

// RootFS is where the image with digest imageDigest is unpacked.
func (s *Swarm) RootFS(imageDigest string) string {
	return filepath.Join(s.cfg.DataDir, "rootfs", strings.TrimPrefix(imageDigest, "sha256:"))
}

// unpack extracts the image (atomic and idempotent). The blobs in
// verified were hashed into the store just now and are not hashed again.
func (s *Swarm) unpack(ctx context.Context, dist *protocol.Distribution, verified map[v1.Hash]bool) error {
	h, err := v1.NewHash(dist.ImageDigest)
	if err != nil {
		return fmt.Errorf("unpack image %s: %w", dist.ImageDigest, err)
	}
	dest := s.RootFS(dist.ImageDigest)
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return fmt.Errorf("unpack image %s: %w", dist.ImageDigest, err)
	}
	if err := swarm.UnpackVerified(ctx, s.cfg.Store, h, dest, verified); err != nil {
		return fmt.Errorf("unpack image %s into %s: %w", dist.ImageDigest, dest, err)
	}
	return s.tag(dist, h)
}

// tag names the delivered image in the node's store as the user named it,
// so `drove images` on the node lists it.
func (s *Swarm) tag(dist *protocol.Distribution, h v1.Hash) error {
	if dist.Image == "" {
		return nil
	}
	desc := v1.Descriptor{Digest: h}
	for _, b := range dist.Blobs {
		if b.Digest == dist.ImageDigest {
			desc.Size, desc.MediaType = b.Size, types.MediaType(b.MediaType)
		}
	}
	if err := s.cfg.Store.Tag(dist.Image, desc); err != nil {
		return fmt.Errorf("name image %s: %w", dist.Image, err)
	}
	return nil
}

// commit moves every complete Partial into the store; from then on the
// blob is served from the store. It returns the blobs it put there, each
// hashed whole on the way.
func (ss *session) commit(ctx context.Context) (map[v1.Hash]bool, error) {
	verified := map[v1.Hash]bool{}
	for _, bs := range ss.order {
		added, err := bs.commit(ctx, ss)
		if err != nil {
			return nil, err
		}
		if added {
			verified[bs.hash] = true
		}
	}
	if err := os.RemoveAll(ss.dir); err != nil {
		ss.log.Warn("remove partial blob directory", "dir", ss.dir, "err", err)
	}
	return verified, nil
}

// commit commits one blob and reports whether it put the blob into the
// store (hashing it whole). The hash runs without bs.mu held for writing:
// every piece is verified and no longer written, so the node goes on
// serving the blob from its partial file meanwhile; only the switch to the
// store's file takes the lock.
func (bs *blobState) commit(ctx context.Context, ss *session) (bool, error) {
	bs.mu.RLock()
	p := bs.partial
	bs.mu.RUnlock()
	if p == nil {
		return false, nil
	}
	st := ss.sw.cfg.Store
	added := !st.HasBlob(bs.hash)
	if err := p.Adopt(ctx, st); err != nil {
		if errors.Is(err, swarm.ErrDigestMismatch) {
			// Every piece verified, yet the blob is wrong: the manifest
			// lied. Start the blob over rather than keep bad bytes.
			ss.log.Error("verified pieces do not make up the blob: bad piece manifest", "digest", bs.bp.Digest)
			bs.mu.Lock()
			p.Remove()
			if np, oerr := swarm.OpenPartial(ss.dir, bs.bp); oerr == nil {
				bs.partial = np
			}
			bs.mu.Unlock()
		}
		return false, err
	}
	f, err := st.OpenBlob(bs.hash)
	if err != nil {
		return false, fmt.Errorf("open committed blob %s: %w", bs.bp.Digest, err)
	}
	bs.mu.Lock()
	bs.partial, bs.file = nil, f
	bs.mu.Unlock()
	// No reader holds p now: readers take it under bs.mu.
	if err := p.Remove(); err != nil {
		return added, fmt.Errorf("commit blob %s: %w", bs.bp.Digest, err)
	}
	return added, nil
}

// fetch is one Fetch's state.
type fetch struct {
	ss      *session
	log     *slog.Logger
	picker  *swarm.Picker
	need    map[string]*blobState // blobs being fetched
	workers int                   // piece workers per peer
	endgame int                   // pieces missing when the endgame begins
	started time.Time

	pieces     atomic.Int64
	downloaded atomic.Int64
	fatal      chan error
	wg         sync.WaitGroup // links

	mu       sync.Mutex
	links    map[string]*link
	retryAt  map[string]time.Time
	wake     chan struct{}                             // closed (and replaced) when pieces or peers change
	inflight map[pieceRef]map[*link]context.CancelFunc // for cancelling endgame duplicates
	verified map[pieceRef]bool                         // pieces this fetch verified
	seedsOK  bool                                      // seed links may fetch (swarm_seedgate.go)
}

type pieceRef struct {
	blob  string
	piece int
}

func newFetch(ss *session) *fetch {
	f := &fetch{
		ss: ss, log: ss.log, need: map[string]*blobState{}, fatal: make(chan error, 1), started: time.Now(),
		links: map[string]*link{}, retryAt: map[string]time.Time{}, wake: make(chan struct{}),
		inflight: map[pieceRef]map[*link]context.CancelFunc{}, verified: map[pieceRef]bool{},
	}
	var blobs []protocol.BlobPieces
	have := map[string]swarm.Bitfield{}
	var biggest int64 = protocol.TransferUnit
	for _, bs := range ss.order {
		bs.mu.RLock()
		if bs.partial != nil {
			blobs = append(blobs, bs.bp)
			have[bs.bp.Digest] = bs.partial.Have()
			f.need[bs.bp.Digest] = bs
			biggest = max(biggest, bs.bp.PieceSize)
		}
		bs.mu.RUnlock()
	}
	f.picker = swarm.NewPicker(blobs, have, nil)
	// Endgame duplicates only for the last few pieces, and for fewer with
	// a small image: each duplicate costs its sender a whole piece.
	pieces := 0
	for _, bp := range blobs {
		pieces += len(bp.Pieces)
	}
	f.endgame = min(swarm.EndgameThreshold, max(1, pieces/16))
	f.picker.SetEndgameThreshold(f.endgame)
	// Pieces in flight per peer: at least two, and enough for
	// minUnitsInFlight units (more, with small pieces, would claim much of
	// a small image from the first peer that answers).
	perPiece := int((biggest + protocol.TransferUnit - 1) / protocol.TransferUnit)
	f.workers = min(max((minUnitsInFlight+perPiece-1)/perPiece, 2), unitsInFlight)
	return f
}

// notify wakes every worker waiting for something to do.
func (f *fetch) notify() {
	f.mu.Lock()
	close(f.wake)
	f.wake = make(chan struct{})
	f.mu.Unlock()
}

// released wakes the links, other than from, whose peer holds a piece
// that a failed fetch handed back: only they can fetch it now.
func (f *fetch) released(from *link, blob string, piece int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, l := range f.links {
		if l != from && f.picker.Holds(l.peer.ID, blob, piece) {
			l.mu.Lock()
			l.notifyLocked()
			l.mu.Unlock()
		}
	}
}

func (f *fetch) waker() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.wake
}

// run fetches until every piece is verified, ctx ends or a local error
// (a disk that fails) stops it. It follows the tracker's peer list.
func (f *fetch) run(ctx context.Context) error {
	if f.picker.Complete() {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer func() {
		cancel()
		f.wg.Wait()
		f.ss.setConnected(0)
	}()
	f.ss.kickAnnounce()
	tick := time.NewTicker(peerRetry / 2)
	defer tick.Stop()
	// The announce that shows who else takes part (swarm_seedgate.go).
	settle := time.NewTimer(seedSettle)
	defer settle.Stop()
	gated := true
	for {
		wake := f.waker()
		if f.picker.Complete() {
			return nil
		}
		peers, _, _, changed := f.ss.trackerState()
		f.syncPeers(ctx, peers)
		if gated && f.seedWait() == 0 {
			gated = false
			f.notify() // the seed links' workers
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case err := <-f.fatal:
			return err
		case <-changed:
		case <-wake:
		case <-tick.C:
		case <-settle.C:
			f.ss.kickAnnounce()
		}
	}
}

// syncPeers adds links to the tracker's peers (never this node or a
// banned peer) while fewer than MaxSwarmPeers are open. The tracker hands
// out a random subset each time, so a peer missing from it is not gone:
// links are kept until they fail by themselves (a peer that left stops
// answering) or the peer's address changes. Dropping them at each
// announce cut transfers in the middle every second.
func (f *fetch) syncPeers(ctx context.Context, peers []protocol.SwarmPeer) {
	self := f.ss.sw.cfg.NodeID
	var want []protocol.SwarmPeer
	for _, p := range peers {
		if p.ID == self || p.Addr == "" || !protocol.ValidID(p.ID) || f.ss.isBanned(p.ID) {
			continue
		}
		want = append(want, p)
	}
	now := time.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range want {
		if l := f.links[p.ID]; l != nil && p.Addr != l.peer.Addr {
			l.cancel()
			delete(f.links, p.ID)
		}
	}
	for _, p := range want {
		id := p.ID
		if len(f.links) >= MaxSwarmPeers {
			break
		}
		if f.links[id] != nil || now.Before(f.retryAt[id]) {
			continue
		}
		l := newLink(ctx, f, p)
		f.links[id] = l
		f.wg.Add(1)
		go l.run()
	}
	f.ss.setConnected(len(f.links))
}

// dropped forgets a link that ended by itself; it may be reconnected
// after peerRetry.
func (f *fetch) dropped(l *link) {
	f.mu.Lock()
	switch f.links[l.peer.ID] {
	case l:
		delete(f.links, l.peer.ID)
		f.retryAt[l.peer.ID] = time.Now().Add(peerRetry)
		fallthrough
	case nil:
		// Under f.mu: a new link to the peer (a new address) is made under
		// it too, so its pieces go into the picker after this.
		f.picker.RemovePeer(l.peer.ID)
	}
	f.mu.Unlock()
	f.notify()
}

// track records an in-flight fetch of a piece from l, so that it can be
// cancelled once another peer delivered the piece.
func (f *fetch) track(ref pieceRef, l *link, cancel context.CancelFunc) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := f.inflight[ref]
	if m == nil {
		m = map[*link]context.CancelFunc{}
		f.inflight[ref] = m
	}
	m[l] = cancel
}

func (f *fetch) untrack(ref pieceRef, l *link) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if m := f.inflight[ref]; m != nil {
		delete(m, l)
		if len(m) == 0 {
			delete(f.inflight, ref)
		}
	}
}

// completed records a verified piece: the picker stops wanting it, fetches
// of it from other peers are cancelled and the swarm hears about it.
func (f *fetch) completed(ref pieceRef, by *link) {
	f.mu.Lock()
	if f.verified[ref] { // an endgame duplicate verified at the same time
		f.mu.Unlock()
		return
	}
	f.verified[ref] = true
	f.picker.Done(ref.blob, ref.piece)
	f.pieces.Add(1)
	for l, cancel := range f.inflight[ref] {
		if l != by {
			cancel()
		}
	}
	f.mu.Unlock()
	f.ss.publishHave(ref.blob, ref.piece)
	// A verified piece gives no worker anything new to fetch, until the
	// endgame (idle workers may then fetch claimed pieces too) and the
	// end (run returns). Waking every worker of every link on each piece
	// woke dozens of goroutines to find nothing to do.
	if f.picker.Missing() <= f.endgame {
		f.notify()
	}
}

// fail stops the fetch with a local error.
func (f *fetch) fail(err error) {
	select {
	case f.fatal <- err:
	default:
	}
}

// peerBitfields turns a peer's Bitfields into checked bitfields of the
// blobs wanted (need maps digest to its piece count). Entries for other
// blobs are ignored; a malformed entry is an error.
func peerBitfields(bf *protocol.Bitfields, need map[string]int) (map[string]swarm.Bitfield, error) {
	out := make(map[string]swarm.Bitfield, len(need))
	for d, raw := range bf.Blobs {
		n, ok := need[d]
		if !ok {
			continue
		}
		b, err := swarm.BitfieldFrom(raw, n)
		if err != nil {
			return nil, fmt.Errorf("blob %s: %w", d, err)
		}
		out[d] = b
	}
	return out, nil
}
