package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"golang.org/x/sync/errgroup"

	"github.com/drove-project/drove/internal/clusterauth"
	"github.com/drove-project/drove/layers/swarm"
	"github.com/drove-project/drove/protocol"
)

// link is a Fetch's connection to one peer's data endpoint, with the
// workers that fetch pieces from it.
type link struct {
	f      *fetch
	peer   protocol.SwarmPeer
	ctx    context.Context
	cancel context.CancelFunc
	nc     *nats.Conn
	units  chan struct{} // unit request slots
	fails  atomic.Int32  // consecutive failed requests

	mu      sync.Mutex
	wake    chan struct{}          // closed (and replaced) when the peer has more pieces
	ready   bool                   // the bitfield is in the picker
	pending []protocol.Have        // Haves that came before it
	refused map[pieceRef]time.Time // pieces the peer said to get elsewhere, until when
}

func newLink(ctx context.Context, f *fetch, p protocol.SwarmPeer) *link {
	l := &link{f: f, peer: p, units: make(chan struct{}, unitsInFlight), wake: make(chan struct{})}
	l.ctx, l.cancel = context.WithCancel(ctx)
	return l
}

// run connects, learns the peer's pieces and runs the workers until the
// link is cancelled or the connection drops.
func (l *link) run() {
	f := l.f
	defer f.wg.Done()
	defer f.dropped(l)
	defer l.cancel()
	log := f.log.With("peer", l.peer.ID, "addr", l.peer.Addr)
	user, pass := clusterauth.NATSData(f.ss.sw.cfg.Token)
	nc, err := nats.Connect("nats://"+l.peer.Addr,
		nats.Name("drove-swarm "+f.ss.sw.cfg.NodeID),
		nats.UserInfo(user, pass),
		nats.NoReconnect(),
		nats.Timeout(2*time.Second),
		nats.PingInterval(dataPingInterval),
		nats.MaxPingsOutstanding(2),
		nats.ClosedHandler(func(*nats.Conn) { l.cancel() }),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { log.Debug("peer connection", "err", err) }),
	)
	if err != nil {
		log.Debug("connect to peer", "err", err)
		return
	}
	l.nc = nc
	defer nc.Close()
	if err := l.learn(); err != nil {
		if l.ctx.Err() == nil {
			log.Debug("read peer's pieces", "err", err)
		}
		return
	}
	var wg sync.WaitGroup
	for range f.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.work(log)
		}()
	}
	wg.Wait()
}

// learn subscribes to the peer's Have messages and feeds its bitfield to
// the picker.
func (l *link) learn() error {
	f := l.f
	id := f.ss.dist.ID
	if _, err := l.nc.Subscribe(protocol.SwarmHaveSubject(id), l.onHave); err != nil {
		return fmt.Errorf("subscribe to haves: %w", err)
	}
	ctx, cancel := context.WithTimeout(l.ctx, 5*time.Second)
	defer cancel()
	reply, err := l.nc.RequestWithContext(ctx, protocol.SwarmBitfieldSubject(id), nil)
	if err != nil {
		return fmt.Errorf("request bitfield: %w", err)
	}
	var bf protocol.Bitfields
	if err := protocol.DecodeAs(reply.Data, &bf); err != nil {
		return fmt.Errorf("decode bitfield: %w", err)
	}
	need := make(map[string]int, len(f.need))
	for d, bs := range f.need {
		need[d] = len(bs.bp.Pieces)
	}
	bits, err := peerBitfields(&bf, need)
	if err != nil {
		return err
	}
	l.mu.Lock()
	if l.peer.Seed {
		f.picker.MarkSeed(l.peer.ID)
	}
	f.picker.SetPeer(l.peer.ID, bits)
	for _, h := range l.pending {
		f.picker.PeerHas(l.peer.ID, h.Blob, h.Piece)
	}
	l.ready, l.pending = true, nil
	l.notifyLocked()
	l.mu.Unlock()
	if !l.peer.Seed {
		f.notify() // may open the seed gate
	}
	return nil
}

// onHave records one more piece at the peer.
func (l *link) onHave(m *nats.Msg) {
	var h protocol.Have
	if protocol.DecodeAs(m.Data, &h) != nil {
		return
	}
	l.mu.Lock()
	if !l.ready {
		if len(l.pending) < 1<<16 {
			l.pending = append(l.pending, h)
		}
		l.mu.Unlock()
		return
	}
	l.f.picker.PeerHas(l.peer.ID, h.Blob, h.Piece)
	if l.f.picker.Wanted(h.Blob, h.Piece) { // else there is nothing new to fetch
		l.notifyLocked()
	}
	l.mu.Unlock()
}

// notifyLocked wakes this link's workers (under l.mu): the peer has a
// piece more. Only they can fetch it from this peer, so a Have wakes a
// few goroutines, not every worker of every link (with 20 links that
// was thousands of wake-ups per piece across a swarm).
func (l *link) notifyLocked() {
	close(l.wake)
	l.wake = make(chan struct{})
}

func (l *link) waker() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.wake
}

// work fetches pieces the picker hands out for this peer until the link
// ends.
func (l *link) work(log *slog.Logger) {
	f := l.f
	for {
		wake, mine := f.waker(), l.waker()
		if l.peer.Seed {
			if wait := f.seedWait(); wait > 0 {
				if !l.await(wait, wake, mine) {
					return
				}
				continue
			}
		}
		blob, piece, ok := f.picker.Next(l.peer.ID)
		if !ok {
			select {
			case <-l.ctx.Done():
				return
			case <-wake:
				continue
			case <-mine:
				continue
			}
		}
		ref := pieceRef{blob, piece}
		if l.isRefused(ref) {
			// Ask for another piece (the picker breaks ties at random);
			// the pause keeps this from spinning when none is left.
			f.picker.Release(l.peer.ID, blob, piece)
			if !l.pause(50 * time.Millisecond) {
				return
			}
			continue
		}
		err := l.fetchPiece(ref)
		if err == nil {
			l.fails.Store(0)
			continue
		}
		f.picker.Release(l.peer.ID, blob, piece)
		f.released(l, blob, piece)
		var perr *protocol.Error
		switch {
		case l.ctx.Err() != nil:
			return
		case !f.picker.Wanted(blob, piece):
			// Another peer delivered it first (endgame).
		case errors.Is(err, swarm.ErrBadPiece), errors.Is(err, errBadUnit):
			log.Warn("peer served a bad piece: banned from this distribution", "digest", blob, "piece", piece, "err", err)
			f.ss.ban(l.peer.ID)
			l.cancel()
			return
		case errors.Is(err, errLocal):
			f.fail(err)
			return
		case errors.As(err, &perr) && perr.Code == protocol.CodeBusy:
			// The peer is sending all it can: leave it alone briefly, so
			// the picker turns to other peers.
			if !l.pause(busyPause) {
				return
			}
		case errors.As(err, &perr) && perr.Code == protocol.CodeTimeout:
			// Busy (over its upload limit, or a seed spreading its
			// pieces): get this piece elsewhere for a while.
			l.refuse(ref, time.Now().Add(refusedFor))
		default:
			log.Debug("fetch piece", "digest", blob, "piece", piece, "err", err)
			if l.fails.Add(1) >= maxPeerFailures {
				log.Warn("peer keeps failing requests; dropping it for now", "err", err)
				l.cancel()
				return
			}
			if !l.pause(200 * time.Millisecond) {
				return
			}
		}
	}
}

// busyPause is how long a link waits after its peer said busy.
const busyPause = 150 * time.Millisecond

// refusedFor is how long a piece a peer said to get elsewhere is not
// asked of it again.
const refusedFor = time.Second

func (l *link) refuse(ref pieceRef, until time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.refused == nil {
		l.refused = map[pieceRef]time.Time{}
	}
	l.refused[ref] = until
}

func (l *link) isRefused(ref pieceRef) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	until, ok := l.refused[ref]
	if ok && time.Now().After(until) {
		delete(l.refused, ref)
		return false
	}
	return ok
}

// pause waits d unless the link ends first (then it reports false).
func (l *link) pause(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-l.ctx.Done():
		return false
	}
}

// errLocal marks an error of this node (its disk), not of the peer.
var errLocal = errors.New("local")

// fetchPiece fetches one piece unit by unit from the peer, verifies and
// stores it.
func (l *link) fetchPiece(ref pieceRef) error {
	f := l.f
	bs := f.need[ref.blob]
	plen := swarm.PieceLen(bs.bp, ref.piece)
	ctx, cancel := context.WithCancel(l.ctx)
	defer cancel()
	f.track(ref, l, cancel)
	defer f.untrack(ref, l)
	// The units as they came: each reply's payload is its own buffer, so
	// they are hashed and written where they lie, not copied into one.
	parts := make([][]byte, (plen+protocol.TransferUnit-1)/protocol.TransferUnit)
	// The first unit alone: the peer admits a piece (an upload slot, a
	// seed's spreading rule) on its first unit, and a refusal then costs
	// no bytes. Units fetched in parallel with a refused one would be
	// thrown away with it.
	first := min(protocol.TransferUnit, plen)
	select {
	case l.units <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	var err error
	parts[0], err = l.fetchUnit(ctx, protocol.PieceRequest{Blob: ref.blob, Piece: ref.piece, Length: int(first)})
	<-l.units
	var perr *protocol.Error
	if !errors.As(err, &perr) {
		// The peer gave this piece an upload slot (or may have: the
		// reply was lost): free it once every unit is here or the piece
		// is given up. A refusal took no slot.
		defer l.done(ref)
	}
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	for i := 1; i < len(parts); i++ {
		select {
		case l.units <- struct{}{}:
		case <-gctx.Done():
		}
		if gctx.Err() != nil {
			break
		}
		off := int64(i) * protocol.TransferUnit
		n := int(min(protocol.TransferUnit, plen-off))
		g.Go(func() error {
			defer func() { <-l.units }()
			var err error
			parts[i], err = l.fetchUnit(gctx, protocol.PieceRequest{Blob: ref.blob, Piece: ref.piece, Offset: off, Length: n})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if !f.picker.Wanted(ref.blob, ref.piece) {
		return nil // an endgame duplicate that arrived second
	}
	bs.mu.RLock()
	p := bs.partial
	bs.mu.RUnlock()
	if p == nil {
		return nil
	}
	if err := p.WritePieceParts(ref.piece, parts); err != nil {
		if errors.Is(err, swarm.ErrBadPiece) {
			return err
		}
		return fmt.Errorf("%w: store piece: %w", errLocal, err)
	}
	f.completed(ref, l)
	return nil
}

// done tells the peer this node has every unit of ref it will ask for,
// so the peer frees the upload slot ref held (protocol.SwarmDoneSubject).
func (l *link) done(ref pieceRef) {
	m := nats.NewMsg(protocol.SwarmDoneSubject(l.f.ss.dist.ID))
	m.Reply = l.nc.NewRespInbox() // names this connection, as its requests' inboxes do
	for k, v := range (protocol.PieceDone{Blob: ref.blob, Piece: ref.piece}).Headers() {
		m.Header.Set(k, v)
	}
	if err := l.nc.PublishMsg(m); err != nil && l.ctx.Err() == nil {
		l.f.log.Debug("tell peer a piece is done", "peer", l.peer.ID, "err", err)
	}
}

// fetchUnit requests one unit and returns its bytes (exactly r.Length).
// It waits for one of the node's DownloadConcurrency request slots.
func (l *link) fetchUnit(ctx context.Context, r protocol.PieceRequest) ([]byte, error) {
	sw := l.f.ss.sw
	select {
	case sw.down <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	for n := sw.downOut.Add(1); ; {
		if p := sw.downPeak.Load(); n <= p || sw.downPeak.CompareAndSwap(p, n) {
			break
		}
	}
	defer func() {
		sw.downOut.Add(-1)
		<-sw.down
	}()
	m := nats.NewMsg(protocol.SwarmPieceSubject(l.f.ss.dist.ID))
	for k, v := range r.Headers() {
		m.Header.Set(k, v)
	}
	ctx, cancel := context.WithTimeout(ctx, unitTimeout)
	defer cancel()
	reply, err := l.nc.RequestMsgWithContext(ctx, m)
	if err != nil {
		return nil, fmt.Errorf("request piece %d of %s at %d: %w", r.Piece, r.Blob, r.Offset, err)
	}
	n := int64(len(reply.Data))
	l.f.downloaded.Add(n)
	l.f.ss.downloaded.Add(n)
	data, err := unitData(reply.Header.Get, reply.Data, r.Length)
	if err != nil {
		return nil, fmt.Errorf("piece %d of %s at %d: %w", r.Piece, r.Blob, r.Offset, err)
	}
	return data, nil
}

// unitData reads a piece reply: its error headers as a *protocol.Error,
// or its bytes, which must be exactly want long (else errBadUnit).
func unitData(header func(string) string, data []byte, want int) ([]byte, error) {
	if code, msg := header(protocol.HeaderCode), header(protocol.HeaderError); code != "" || msg != "" {
		if code == "" {
			code = string(protocol.CodeInternal)
		}
		return nil, &protocol.Error{Code: protocol.ErrorCode(code), Message: msg}
	}
	if len(data) != want {
		return nil, fmt.Errorf("%d bytes, want %d: %w", len(data), want, errBadUnit)
	}
	return data, nil
}
