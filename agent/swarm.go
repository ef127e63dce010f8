package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/nats-io/nats.go"
	"golang.org/x/time/rate"

	"github.com/drove-project/drove/internal/clusterauth"
	"github.com/drove-project/drove/layers/store"
	"github.com/drove-project/drove/layers/swarm"
	"github.com/drove-project/drove/protocol"
)

// Swarm defaults (distribution-performance.md section 9).
const (
	// DefaultAnnounceInterval is how often a peer reports to the tracker
	// (FastAnnounceInterval in labs on one machine).
	DefaultAnnounceInterval = time.Second
	FastAnnounceInterval    = 250 * time.Millisecond
	// DefaultDownloadConcurrency is how many unit requests a node has out
	// at once by default: 32 MiB in flight, a few peers' worth of pieces.
	DefaultDownloadConcurrency = 32
	// DefaultLinger bounds how long a distribution is served after its last
	// step on this node ended, when the tracker never says it is done.
	DefaultLinger = 10 * time.Minute
	// MaxSwarmPeers is how many peers a fetch connects to at once.
	MaxSwarmPeers = 20
)

// ErrSwarmClosed: the swarm was closed while a call used it.
var ErrSwarmClosed = errors.New("swarm closed")

// ErrNotSeed: a seed node lacks a blob it was named seed for.
var ErrNotSeed = errors.New("seed does not hold the image")

// SwarmConfig configures a Swarm.
type SwarmConfig struct {
	NodeID   string
	DataAddr string // host:port other peers reach this node's data endpoint at
	// DataURL is the URL the swarm's own serving connection uses to reach
	// the data endpoint (DataServer.ClientURL).
	DataURL string
	// InProcess, when set, is the data endpoint itself: the serving
	// connection then runs in memory instead of over loopback TCP (every
	// byte this node uploads crosses it).
	InProcess nats.InProcessConnProvider
	Labels    map[string]string
	DataDir   string // partial blobs go to <DataDir>/swarm, images unpack to <DataDir>/rootfs
	Store     *store.Store
	// Control is the agent's connection to the coordinators; announces go
	// to the tracker over it. Nil: no tracker (nothing is announced).
	Control *nats.Conn
	Token   string // cluster token: the data endpoints' credentials
	// UploadLimit caps the bytes per second this node serves to peers, for
	// all distributions together; 0 means no cap.
	UploadLimit int64
	// DownloadConcurrency bounds the unit requests this node has out to
	// all peers together (each a TransferUnit at most), over all
	// distributions; 0 means DefaultDownloadConcurrency.
	DownloadConcurrency int
	// AnnounceInterval is how often each distribution is announced; 0
	// means DefaultAnnounceInterval, or FastAnnounceInterval with Fast.
	AnnounceInterval time.Duration
	Fast             bool
	// Linger bounds serving after the last step ended (0: DefaultLinger).
	Linger time.Duration
	Log    *slog.Logger
}

// Stats is what one Fetch or Seed did.
type Stats struct {
	Downloaded int64         // bytes received from peers, duplicates included
	Uploaded   int64         // bytes served to peers in this distribution so far
	Pieces     int           // pieces verified by this call
	Banned     []string      // peers banned for serving bad pieces (this distribution)
	Duration   time.Duration // of the call
	// Verified is when the node had every piece verified (a Fetch that
	// got that far; zero otherwise): delivery ends there, before the
	// commit and unpack.
	Verified time.Time
}

// Swarm is an agent's peer in peer-to-peer image delivery: it fetches the
// pieces of a distribution from other peers' data endpoints, verifies them
// (DESIGN.md invariant 1), and serves what it holds from its own endpoint.
// One Swarm serves every distribution of the agent; it is safe for
// concurrent use.
type Swarm struct {
	cfg     SwarmConfig
	log     *slog.Logger
	serve   *nats.Conn    // to the own data endpoint
	limiter *rate.Limiter // nil: no upload cap
	// corrupt, when set, damages every unit before it is served: a test
	// fault (fault.go), never set in production builds.
	corrupt func([]byte)
	serving atomic.Int32  // piece requests being served (onPiece)
	upSlots *slotGate     // pieces being sent at once
	down    chan struct{} // unit requests out to peers (DownloadConcurrency)
	// downOut is how many unit requests are out, downPeak the most that
	// ever were (a statistic for tests).
	downOut, downPeak atomic.Int32

	base context.Context // ends on Close
	stop context.CancelFunc
	wg   sync.WaitGroup // session goroutines

	opening  sync.Mutex // one session opens at a time
	mu       sync.Mutex
	closed   bool
	sessions map[string]*session
}

// NewSwarm connects to the node's own data endpoint (cfg.DataURL) and
// returns a Swarm ready for Fetch and Seed. Close releases it.
func NewSwarm(cfg SwarmConfig) (*Swarm, error) {
	if !protocol.ValidID(cfg.NodeID) {
		return nil, fmt.Errorf("new swarm: invalid node ID %q", cfg.NodeID)
	}
	if cfg.Store == nil || cfg.DataDir == "" || cfg.DataAddr == "" || cfg.DataURL == "" {
		return nil, errors.New("new swarm: store, data directory and data addresses are required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.AnnounceInterval <= 0 {
		cfg.AnnounceInterval = DefaultAnnounceInterval
		if cfg.Fast {
			cfg.AnnounceInterval = FastAnnounceInterval
		}
	}
	if cfg.DownloadConcurrency <= 0 {
		cfg.DownloadConcurrency = DefaultDownloadConcurrency
	}
	if cfg.Linger <= 0 {
		cfg.Linger = DefaultLinger
	}
	log := cfg.Log.With("component", "swarm") // the agent's logger names the node
	user, pass := clusterauth.NATSData(cfg.Token)
	opts := []nats.Option{}
	if cfg.InProcess != nil {
		opts = append(opts, nats.InProcessServer(cfg.InProcess))
	}
	nc, err := nats.Connect(cfg.DataURL, append(opts,
		nats.Name("drove-swarm "+cfg.NodeID),
		nats.UserInfo(user, pass),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(100*time.Millisecond),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { log.Warn("data endpoint", "err", err) }),
	)...)
	if err != nil {
		return nil, fmt.Errorf("new swarm: connect to own data endpoint %s: %w", cfg.DataURL, err)
	}
	s := &Swarm{
		cfg: cfg, log: log, serve: nc, sessions: map[string]*session{},
		upSlots: newSlotGate(uploadSlots), down: make(chan struct{}, cfg.DownloadConcurrency),
	}
	if cfg.UploadLimit > 0 {
		s.limiter = rate.NewLimiter(rate.Limit(cfg.UploadLimit), protocol.TransferUnit)
	}
	if faultCorruptUploads() {
		log.Warn("test fault: corrupting every unit served (DROVE_TEST_CORRUPT_UPLOADS)")
		s.corrupt = flipByte
	}
	s.base, s.stop = context.WithCancel(context.Background())
	return s, nil
}

// Close stops serving every distribution, waits for the swarm's
// goroutines (calls to Fetch and Seed end with ErrSwarmClosed) and closes
// the connection to the own data endpoint. Partial blobs stay on disk for
// a later Fetch.
func (s *Swarm) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.stop()
	s.wg.Wait()
	s.serve.Close()
	return nil
}

// Serving reports whether the swarm still serves distribution id.
func (s *Swarm) Serving(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.sessions[id]
	return ok
}

// bound returns ctx that also ends when the swarm closes.
func (s *Swarm) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(s.base, func() { cancel(ErrSwarmClosed) })
	return ctx, func() { stop(); cancel(nil) }
}

// checkDistribution checks what a step carries before anything touches
// the disk.
func checkDistribution(d *protocol.Distribution) error {
	if d == nil {
		return errors.New("no distribution")
	}
	if !protocol.ValidID(d.ID) {
		return fmt.Errorf("distribution ID %q is not a valid subject token", d.ID)
	}
	if _, err := v1.NewHash(d.ImageDigest); err != nil || !protocol.ValidDigest(d.ImageDigest) {
		return fmt.Errorf("distribution %s: image digest %q is not sha256:<64 hex>", d.ID, d.ImageDigest)
	}
	if len(d.Blobs) == 0 {
		return fmt.Errorf("distribution %s: no blobs", d.ID)
	}
	seen := map[string]bool{}
	for _, bp := range d.Blobs {
		if err := swarm.Validate(bp); err != nil {
			return fmt.Errorf("distribution %s: %w", d.ID, err)
		}
		if seen[bp.Digest] {
			return fmt.Errorf("distribution %s: blob %s listed twice", d.ID, bp.Digest)
		}
		seen[bp.Digest] = true
	}
	if !seen[d.ImageDigest] {
		return fmt.Errorf("distribution %s: the image manifest %s is not among its blobs", d.ID, d.ImageDigest)
	}
	return nil
}
