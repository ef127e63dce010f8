package coordinator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"github.com/nats-io/nats.go"

	"github.com/drove-project/drove/protocol"
)

// Membership is what the coordinator needs of gossip: the members and their
// metadata. The agent's gossip satisfies it; the CLI wires the two.
type Membership interface {
	Members() []protocol.Member
}

// Config configures one coordinator.
type Config struct {
	NodeID          string
	DataDir         string
	RaftBind        string // host:port raft listens on
	RaftAdvertise   string // host:port others dial; default the bind address
	BootstrapExpect int    // coordinators to wait for before bootstrapping a new cluster
	Token           string // cluster join token (raft handshake)
	Fast            bool   // short timers for a lab on one machine
	// RemoveDeadAfter is how long a coordinator must have been dead in
	// gossip before the leader removes it from raft; 0 never removes one.
	RemoveDeadAfter time.Duration
	// Traffic, when set, reports this coordinator's NATS server's bytes in
	// and out (shown in Status: proof that bulk bytes stay off it).
	Traffic func() (in, out int64)
	Log     *slog.Logger
	Members Membership
	NATS    *nats.Conn // connection with coordinator credentials
}

// Coordinator is the raft-replicated control plane of one master node.
type Coordinator struct {
	cfg   Config
	log   *slog.Logger
	raft  *raft.Raft
	trans *raft.NetworkTransport
	fsm   *FSM
	subs  []*nats.Subscription

	tracker *tracker // the swarm tracker; answers only while leader

	mu       sync.Mutex
	dispatch *dispatcher // while leader
}

// Start opens raft and begins serving the API on NATS. Call Run to take part
// in bootstrap, leadership and dispatch.
func Start(cfg Config) (*Coordinator, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if !protocol.ValidID(cfg.NodeID) {
		return nil, fmt.Errorf("node ID %q cannot be used in NATS subjects", cfg.NodeID)
	}
	c := &Coordinator{cfg: cfg, log: cfg.Log.With("node", cfg.NodeID), fsm: NewFSM(cfg.Log), tracker: newTracker()}
	r, trans, err := openRaft(cfg, c.fsm)
	if err != nil {
		return nil, err
	}
	c.raft, c.trans = r, trans
	if err := c.serveAPI(); err != nil {
		c.shutdown()
		return nil, err
	}
	return c, nil
}

// Run bootstraps (once enough coordinators are seen), follows leadership and,
// while leader, reconciles membership and dispatches steps. It returns when
// ctx ends, after shutting raft down.
func (c *Coordinator) Run(ctx context.Context) error {
	defer c.shutdown()
	go c.bootstrapWhenReady(ctx)
	var cancelLeader context.CancelFunc
	var leaderDone chan struct{}
	stopLeading := func() {
		if cancelLeader != nil {
			cancelLeader()
			<-leaderDone
			cancelLeader = nil
		}
	}
	defer stopLeading()
	for {
		select {
		case <-ctx.Done():
			return nil
		case isLeader := <-c.raft.LeaderCh():
			// LeaderCh may drop intermediate transitions; act on the value.
			stopLeading()
			if isLeader {
				lctx, cancel := context.WithCancel(ctx)
				cancelLeader, leaderDone = cancel, make(chan struct{})
				go func() {
					defer close(leaderDone)
					c.leaderLoop(lctx)
				}()
			}
		}
	}
}

func (c *Coordinator) shutdown() {
	for _, s := range c.subs {
		s.Unsubscribe()
	}
	if c.raft != nil {
		if err := c.raft.Shutdown().Error(); err != nil {
			c.log.Warn("raft shutdown", "err", err)
		}
	}
	if c.trans != nil {
		c.trans.Close()
	}
}

// bootstrapWhenReady bootstraps a brand-new cluster once BootstrapExpect
// coordinators are alive in gossip. Every one of them proposes the same
// configuration (sorted by ID), which raft accepts from all of them.
func (c *Coordinator) bootstrapWhenReady(ctx context.Context) {
	if c.cfg.BootstrapExpect <= 0 {
		return
	}
	tick := time.NewTicker(c.pollInterval())
	defer tick.Stop()
	for {
		if c.raft.LastIndex() > 0 {
			return // joined or restored: nothing to bootstrap
		}
		coords := c.aliveCoordinators()
		if len(coords) >= c.cfg.BootstrapExpect {
			var servers []raft.Server
			for _, m := range coords[:c.cfg.BootstrapExpect] {
				servers = append(servers, raft.Server{ID: raft.ServerID(m.ID), Address: raftAddress(m), Suffrage: raft.Voter})
			}
			if !containsServer(servers, c.cfg.NodeID) {
				return // we are not among the first: the leader will add us
			}
			err := c.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error()
			if err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
				c.log.Warn("bootstrap", "err", err)
			} else {
				c.log.Info("bootstrapped raft", "voters", len(servers))
			}
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func containsServer(ss []raft.Server, id string) bool {
	for _, s := range ss {
		if string(s.ID) == id {
			return true
		}
	}
	return false
}

// aliveCoordinators are the coordinators gossip sees alive, sorted by ID.
func (c *Coordinator) aliveCoordinators() []protocol.Member {
	var out []protocol.Member
	for _, m := range c.cfg.Members.Members() {
		if m.Coord && m.RaftPort > 0 && m.State == "alive" {
			out = append(out, m)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func raftAddress(m protocol.Member) raft.ServerAddress {
	return raft.ServerAddress(fmt.Sprintf("%s:%d", m.Address, m.RaftPort))
}

func (c *Coordinator) pollInterval() time.Duration {
	if c.cfg.Fast {
		return 100 * time.Millisecond
	}
	return time.Second
}

// IsLeader reports whether this coordinator leads now.
func (c *Coordinator) IsLeader() bool { return c.raft.State() == raft.Leader }

// Leader returns the leader's node ID, or "".
func (c *Coordinator) Leader() string {
	_, id := c.raft.LeaderWithID()
	return string(id)
}

// Voters lists the raft voters' IDs.
func (c *Coordinator) Voters() []string {
	f := c.raft.GetConfiguration()
	if f.Error() != nil {
		return nil
	}
	var out []string
	for _, s := range f.Configuration().Servers {
		if s.Suffrage == raft.Voter {
			out = append(out, string(s.ID))
		}
	}
	sort.Strings(out)
	return out
}

// raftWarnSize is the entry size above which apply warns: raft holds
// metadata, never bulk bytes.
const raftWarnSize = 256 << 10

// apply is the one way into raft: it encodes, bounds the wait, and unwraps
// both the transport error and an error returned by the FSM.
func (c *Coordinator) apply(ctx context.Context, t CommandType, req any) (any, error) {
	b, err := Encode(t, req)
	if err != nil {
		return nil, err
	}
	if len(b) > raftWarnSize {
		c.log.Warn("large raft entry", "type", t, "bytes", len(b))
	}
	timeout := 10 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	f := c.raft.Apply(b, timeout)
	if err := f.Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
			return nil, &protocol.Error{Code: protocol.CodeNotLeader, Message: err.Error(), Leader: c.Leader()}
		}
		return nil, fmt.Errorf("raft apply %v: %w", t, err)
	}
	if e, ok := f.Response().(error); ok {
		return nil, e
	}
	return f.Response(), nil
}
