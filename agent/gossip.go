package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/drove-project/drove/internal/clusterauth"
	"github.com/drove-project/drove/protocol"
)

// Member states as Members and MemberEvent report them (protocol.Member's
// State field).
//
// MemberSuspect is part of the vocabulary but never reported yet:
// memberlist v0.6.0 keeps a node's real state in an unexported field and
// hands out Node values whose State is always alive (hashicorp/memberlist
// issue #293), so a suspected node shows as alive until it is declared dead.
const (
	MemberAlive   = "alive"
	MemberSuspect = "suspect"
	MemberDead    = "dead"
	MemberLeft    = "left"
)

// Gossip errors, matched with errors.Is.
var (
	// ErrMetaTooLarge: the node's encoded meta does not fit memberlist's
	// 512-byte limit (memberlist.MetaMaxSize).
	ErrMetaTooLarge = errors.New("gossip meta too large")
	// ErrNoSeedAnswered: Join gave up before any seed accepted it.
	ErrNoSeedAnswered = errors.New("no gossip seed answered")
	// ErrGossipClosed: the Gossip was shut down.
	ErrGossipClosed = errors.New("gossip shut down")
)

// EventBuffer is how many member events Events holds for a slow reader.
// When it is full the oldest event is dropped to make room: memberlist's
// delegate must never block, and Members is always the current truth, so a
// reader that falls behind loses history, never the present.
const EventBuffer = 256

// GossipConfig configures a Gossip.
type GossipConfig struct {
	NodeID        string // memberlist node name; must be protocol.ValidID
	BindAddr      string // default 0.0.0.0
	BindPort      int    // 0: the kernel picks one (both UDP and TCP)
	AdvertiseAddr string // "" : memberlist picks one from BindAddr
	AdvertisePort int    // 0: the bound port
	// Token is the cluster token. Its derived key (clusterauth.GossipKey)
	// encrypts and authenticates all gossip, and unencrypted or foreign
	// messages are refused, so a node without the token cannot join.
	Token string
	// Meta is this node as others see it, gossiped as compact JSON. Its ID
	// must be NodeID or empty (then NodeID is used); State is ignored.
	Meta protocol.Member
	// Fast selects lab/test timers: a node that stops answering is declared
	// dead in about one to two seconds (three at worst) instead of about
	// ten. Off, memberlist's LAN defaults apply.
	Fast bool
}

// MemberEventType says what happened to a member.
type MemberEventType string

// Member event types.
const (
	MemberJoin   MemberEventType = "join"   // a node appeared or came back
	MemberUpdate MemberEventType = "update" // its meta changed
	MemberLeave  MemberEventType = "leave"  // it left on purpose
	MemberFail   MemberEventType = "fail"   // it stopped answering: dead
)

// MemberEvent is one change of membership, with the member as it was then.
type MemberEvent struct {
	Type   MemberEventType
	Member protocol.Member
}

// Gossip is this node's membership in the cluster's gossip pool.
type Gossip struct {
	log  *slog.Logger
	ml   *memberlist.Memberlist
	id   string
	addr string // host:port we gossip on, fixed at start
	fast bool

	lifeMu sync.Mutex // serialises Leave and Shutdown (memberlist panics on leave after shutdown)

	mu       sync.Mutex
	meta     []byte                     // our encoded meta, handed to memberlist
	members  map[string]protocol.Member // every node seen, by ID
	events   chan MemberEvent
	closed   bool
	dropped  uint64
	shutdown bool
}

// leavingMarker is the State a node puts in its own meta just before it
// leaves, so that others can tell a graceful leave from a failure (the
// Node memberlist passes to NotifyLeave does not say which, see
// MemberSuspect).
const leavingMarker = MemberLeft

// NewGossip starts the memberlist on cfg's address. It does not contact
// anyone; call Join.
func NewGossip(cfg GossipConfig, logger *slog.Logger) (*Gossip, error) {
	if !protocol.ValidID(cfg.NodeID) {
		return nil, fmt.Errorf("start gossip: invalid node ID %q", cfg.NodeID)
	}
	if err := clusterauth.ValidateToken(cfg.Token); err != nil {
		return nil, fmt.Errorf("start gossip for %s: %w", cfg.NodeID, err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	g := &Gossip{
		log:     logger, // the agent's logger names the node
		id:      cfg.NodeID,
		fast:    cfg.Fast,
		members: map[string]protocol.Member{},
		events:  make(chan MemberEvent, EventBuffer),
	}
	meta, err := g.encodeMeta(cfg.Meta, "")
	if err != nil {
		return nil, fmt.Errorf("start gossip: %w", err)
	}
	g.meta = meta

	mc := memberlist.DefaultLANConfig()
	if cfg.Fast {
		fastTimers(mc)
	}
	mc.Name = cfg.NodeID
	mc.BindAddr = cfg.BindAddr
	if mc.BindAddr == "" {
		mc.BindAddr = "0.0.0.0"
	}
	mc.BindPort = cfg.BindPort
	mc.AdvertiseAddr = cfg.AdvertiseAddr
	mc.AdvertisePort = cfg.AdvertisePort
	mc.SecretKey = clusterauth.GossipKey(cfg.Token)
	mc.GossipVerifyIncoming = true
	mc.GossipVerifyOutgoing = true
	// Gossip packets are a few hundred bytes; memberlist's LZW allocated
	// a 64 KB table for each one. Compressed packets from other nodes are
	// still read.
	mc.EnableCompression = false
	mc.Delegate = (*gossipDelegate)(g)
	mc.Events = (*gossipDelegate)(g)
	mc.Logger = log.New(&memberlistLog{log: g.log}, "", 0)

	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("start gossip for %s on %s:%d: %w", cfg.NodeID, mc.BindAddr, cfg.BindPort, err)
	}
	g.ml = ml
	g.addr = ml.LocalNode().Address()
	g.log.Info("gossip started", "addr", g.addr)
	return g, nil
}

// fastTimers tunes memberlist for labs and tests on one machine. A node
// that stops answering is found like this: each live node probes one peer
// every ProbeInterval (200ms), round robin, so in a three-node cluster the
// two survivors between them probe the dead node about every 200ms; a
// probe fails after ProbeTimeout (100ms) plus
// indirect and TCP checks within the interval; the node is then suspect for
// SuspicionMult × ProbeInterval = 400ms (the minimum timeout, used at
// once because SuspicionMult−2 = 0 confirmations are wanted) before it is
// declared dead and that is gossiped every GossipInterval (50ms). That adds
// up to about 1s, well under 3s even with Lifeguard's awareness multiplier
// (capped at 4 here) lengthening probe timeouts.
func fastTimers(c *memberlist.Config) {
	c.ProbeInterval = 200 * time.Millisecond
	c.ProbeTimeout = 100 * time.Millisecond
	c.SuspicionMult = 2
	c.SuspicionMaxTimeoutMult = 3
	c.AwarenessMaxMultiplier = 4
	c.GossipInterval = 50 * time.Millisecond
	c.GossipNodes = 3
	c.PushPullInterval = 2 * time.Second
	c.TCPTimeout = time.Second
	c.GossipToTheDeadTime = 2 * time.Second
	c.IndirectChecks = 2
	c.RetransmitMult = 3
}

// Addr is the host:port this node gossips on, for others' seed lists.
func (g *Gossip) Addr() string { return g.addr }

// Join contacts seeds (host:port) and retries with backoff until at least
// one answers or ctx ends. It returns how many seeds it joined. One attempt
// that is already under way finishes before ctx is noticed; memberlist
// bounds it by its TCP timeout (10s, or 1s with Fast).
func (g *Gossip) Join(ctx context.Context, seeds []string) (int, error) {
	if len(seeds) == 0 {
		return 0, fmt.Errorf("join gossip: no seeds given")
	}
	backoff, maxBackoff := 100*time.Millisecond, 5*time.Second
	if g.fast {
		backoff, maxBackoff = 50*time.Millisecond, time.Second
	}
	var last error
	for attempt := 1; ; attempt++ {
		if g.isShutdown() {
			return 0, fmt.Errorf("join gossip via %v: %w", seeds, ErrGossipClosed)
		}
		n, err := g.ml.Join(seeds)
		if n > 0 {
			g.log.Info("joined gossip", "seeds", seeds, "answered", n, "attempts", attempt)
			return n, nil
		}
		last = err
		level := slog.LevelDebug
		if attempt == 1 || attempt%10 == 0 {
			level = slog.LevelWarn // say why without flooding the log
		}
		g.log.Log(ctx, level, "gossip join attempt failed", "seeds", seeds, "attempt", attempt, "err", flatten(err), "hint", joinHint(err))
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			hint := joinHint(last)
			g.log.Warn("gossip join failed", "seeds", seeds, "attempts", attempt, "err", flatten(last), "hint", hint)
			return 0, fmt.Errorf("join gossip via %v after %d attempts: %w: %w (last error: %s; %s)",
				seeds, attempt, ErrNoSeedAnswered, ctx.Err(), flatten(last), hint)
		case <-t.C:
		}
		backoff = min(backoff*2, maxBackoff)
	}
}

// flatten renders memberlist's multi-error (one per seed) on one line.
func flatten(err error) string {
	if err == nil {
		return "none"
	}
	if m, ok := err.(interface{ WrappedErrors() []error }); ok {
		parts := make([]string, 0, len(m.WrappedErrors()))
		for _, e := range m.WrappedErrors() {
			parts = append(parts, e.Error())
		}
		return strings.Join(parts, "; ")
	}
	return err.Error()
}

// joinHint explains a failed join in operator's terms. With a wrong key,
// the seed cannot decrypt our push/pull; it answers with an error message
// encrypted under its own key, which we cannot decrypt either, or it just
// drops the connection.
func joinHint(err error) string {
	if err == nil {
		return ""
	}
	s := strings.ToLower(err.Error())
	switch {
	case strings.Contains(s, "decrypt"), strings.Contains(s, "not encrypted"), strings.Contains(s, "encryption"):
		return "the seed uses a different cluster token (gossip could not be decrypted)"
	case strings.Contains(s, "eof"), strings.Contains(s, "connection reset"):
		return "the seed dropped the connection; it may use a different cluster token"
	case strings.Contains(s, "connection refused"), strings.Contains(s, "i/o timeout"):
		return "no gossip listener at the seed address"
	}
	return "see the debug log"
}

// Members returns every node this node has known since it started: live
// ones as alive (see MemberSuspect), and those it saw die (dead) or leave
// (left), sorted by ID. The table is kept from memberlist's events (under
// memberlist's lock) rather than read from memberlist.Members, whose Node
// values memberlist keeps mutating.
func (g *Gossip) Members() []protocol.Member {
	g.mu.Lock()
	out := make([]protocol.Member, 0, len(g.members))
	for _, m := range g.members {
		out = append(out, m)
	}
	g.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Events delivers membership changes. The channel holds EventBuffer events
// and drops the oldest when full; it is closed by Shutdown.
func (g *Gossip) Events() <-chan MemberEvent { return g.events }

// UpdateMeta replaces this node's meta and gossips it, waiting until the
// update has been sent to the cluster or ctx ends. Meta that does not fit
// is refused and the old meta stays.
func (g *Gossip) UpdateMeta(ctx context.Context, m protocol.Member) error {
	meta, err := g.encodeMeta(m, "")
	if err != nil {
		return fmt.Errorf("update gossip meta: %w", err)
	}
	if err := g.setMetaAndBroadcast(ctx, meta); err != nil {
		return fmt.Errorf("update gossip meta: %w", err)
	}
	return nil
}

func (g *Gossip) setMetaAndBroadcast(ctx context.Context, meta []byte) error {
	g.mu.Lock()
	if g.shutdown {
		g.mu.Unlock()
		return ErrGossipClosed
	}
	g.meta = meta
	g.mu.Unlock()
	if err := g.ml.UpdateNode(timeoutOf(ctx)); err != nil {
		return fmt.Errorf("broadcast: %w", err)
	}
	return nil
}

// timeoutOf turns ctx's deadline into the timeout memberlist wants; without
// one, 5s.
func timeoutOf(ctx context.Context) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		return max(time.Until(d), time.Millisecond)
	}
	return 5 * time.Second
}

// Leave tells the cluster this node leaves on purpose, so others list it as
// left rather than dead, and waits up to timeout for that to go out. It
// first gossips meta marked as leaving (half the timeout), then memberlist's
// leave message. Call Shutdown afterwards.
func (g *Gossip) Leave(timeout time.Duration) error {
	g.lifeMu.Lock()
	defer g.lifeMu.Unlock()
	g.mu.Lock()
	if g.shutdown {
		g.mu.Unlock()
		return fmt.Errorf("leave gossip: %w", ErrGossipClosed)
	}
	var m protocol.Member
	if err := json.Unmarshal(g.meta, &m); err != nil {
		g.mu.Unlock()
		return fmt.Errorf("leave gossip: decode own meta: %w", err)
	}
	g.mu.Unlock()
	meta, err := g.encodeMeta(m, leavingMarker)
	if err != nil {
		return fmt.Errorf("leave gossip: %w", err)
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), timeout/2)
	err = g.setMetaAndBroadcast(ctx, meta)
	cancel()
	if err != nil {
		// Go on: others will then see "dead", which is still true enough.
		g.log.Warn("gossip leave: announcing leave in meta failed", "err", err)
	}
	if err := g.ml.Leave(max(timeout-time.Since(start), time.Millisecond)); err != nil {
		return fmt.Errorf("leave gossip: %w", err)
	}
	g.log.Info("left gossip")
	return nil
}

// Shutdown stops gossiping at once (others will declare this node dead
// unless Leave came first) and closes Events. It is safe to call twice.
func (g *Gossip) Shutdown() error {
	g.lifeMu.Lock()
	defer g.lifeMu.Unlock()
	g.mu.Lock()
	if g.shutdown {
		g.mu.Unlock()
		return nil
	}
	g.shutdown = true
	g.mu.Unlock()
	err := g.ml.Shutdown()
	g.mu.Lock()
	g.closed = true
	close(g.events)
	dropped := g.dropped
	g.mu.Unlock()
	if dropped > 0 {
		g.log.Debug("gossip events dropped for a slow reader", "dropped", dropped)
	}
	if err != nil {
		return fmt.Errorf("shut down gossip: %w", err)
	}
	return nil
}

func (g *Gossip) isShutdown() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.shutdown
}

// encodeMeta encodes m (ID defaulted to and checked against our node ID)
// as compact JSON with State set to state, and checks memberlist's limit.
func (g *Gossip) encodeMeta(m protocol.Member, state string) ([]byte, error) {
	if m.ID == "" {
		m.ID = g.id
	}
	if m.ID != g.id {
		return nil, fmt.Errorf("meta ID %q is not the node ID %q", m.ID, g.id)
	}
	m.State = state
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode meta: %w", err)
	}
	if len(b) > memberlist.MetaMaxSize {
		return nil, fmt.Errorf("%w: %d bytes encoded, memberlist allows %d (fewer labels or shorter values)",
			ErrMetaTooLarge, len(b), memberlist.MetaMaxSize)
	}
	return b, nil
}

// member decodes a node's meta. The node's gossip name is its ID whatever
// the meta says; meta that does not decode still gives ID and address.
func (g *Gossip) member(n *memberlist.Node, state string) protocol.Member {
	var m protocol.Member
	if len(n.Meta) > 0 {
		if err := json.Unmarshal(n.Meta, &m); err != nil {
			g.log.Debug("gossip meta does not decode", "peer", n.Name, "err", err)
			m = protocol.Member{}
		}
	}
	m.ID = n.Name
	if m.Address == "" && n.Addr != nil {
		m.Address = n.Addr.String()
	}
	m.State = state
	return m
}

// emit queues ev, dropping the oldest queued event if the buffer is full.
func (g *Gossip) emit(ev MemberEvent) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return
	}
	for {
		select {
		case g.events <- ev:
			return
		default:
		}
		select {
		case <-g.events:
			g.dropped++
		default:
		}
	}
}

// gossipDelegate is the face Gossip shows memberlist (Delegate and
// EventDelegate), kept off Gossip's exported method set. Memberlist calls
// the event methods one at a time, holding its node lock, so reading the
// Node there is safe; none of them blocks.
type gossipDelegate Gossip

func (d *gossipDelegate) g() *Gossip { return (*Gossip)(d) }

// NodeMeta implements memberlist.Delegate.
func (d *gossipDelegate) NodeMeta(limit int) []byte {
	g := d.g()
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.meta) > limit { // encodeMeta checked; never hand memberlist more
		return nil
	}
	return bytes.Clone(g.meta)
}

// NotifyMsg implements memberlist.Delegate; drove sends no user messages.
func (d *gossipDelegate) NotifyMsg([]byte) {}

// GetBroadcasts implements memberlist.Delegate.
func (d *gossipDelegate) GetBroadcasts(int, int) [][]byte { return nil }

// LocalState implements memberlist.Delegate.
func (d *gossipDelegate) LocalState(bool) []byte { return nil }

// MergeRemoteState implements memberlist.Delegate.
func (d *gossipDelegate) MergeRemoteState([]byte, bool) {}

// NotifyJoin implements memberlist.EventDelegate.
func (d *gossipDelegate) NotifyJoin(n *memberlist.Node) {
	g := d.g()
	m := g.member(n, MemberAlive)
	g.mu.Lock()
	g.members[n.Name] = m
	g.mu.Unlock()
	g.log.Debug("gossip member joined", "peer", n.Name, "addr", n.Address())
	g.emit(MemberEvent{Type: MemberJoin, Member: m})
}

// NotifyUpdate implements memberlist.EventDelegate. The leaving marker is
// not reported as an update: the leave event follows.
func (d *gossipDelegate) NotifyUpdate(n *memberlist.Node) {
	g := d.g()
	if metaState(n.Meta) == leavingMarker {
		g.log.Debug("gossip member is leaving", "peer", n.Name)
		return
	}
	m := g.member(n, MemberAlive)
	g.mu.Lock()
	g.members[n.Name] = m
	g.mu.Unlock()
	g.emit(MemberEvent{Type: MemberUpdate, Member: m})
}

// NotifyLeave implements memberlist.EventDelegate: left if the node marked
// its meta as leaving first, dead otherwise.
func (d *gossipDelegate) NotifyLeave(n *memberlist.Node) {
	g := d.g()
	state, typ := MemberDead, MemberFail
	if metaState(n.Meta) == leavingMarker {
		state, typ = MemberLeft, MemberLeave
	}
	m := g.member(n, state)
	g.mu.Lock()
	g.members[n.Name] = m
	g.mu.Unlock()
	g.log.Info("gossip member gone", "peer", n.Name, "state", state)
	g.emit(MemberEvent{Type: typ, Member: m})
}

func metaState(meta []byte) string {
	var s struct {
		State string `json:"state"`
	}
	if json.Unmarshal(meta, &s) != nil {
		return ""
	}
	return s.State
}

// memberlistLog adapts memberlist's *log.Logger output ("[LEVEL]
// memberlist: text") to slog at debug level. Lines that show a peer with a
// different key are raised to warnings: they are how a wrong cluster token
// shows up on the node that holds the right one.
type memberlistLog struct{ log *slog.Logger }

var _ io.Writer = (*memberlistLog)(nil)

func (w *memberlistLog) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	level, msg := "", line
	if strings.HasPrefix(line, "[") {
		if i := strings.IndexByte(line, ']'); i > 0 {
			level, msg = line[1:i], strings.TrimSpace(line[i+1:])
		}
	}
	msg = strings.TrimPrefix(msg, "memberlist: ")
	lower := strings.ToLower(msg)
	if strings.Contains(lower, "decrypt") || strings.Contains(lower, "not encrypted") {
		w.log.Warn("gossip peer uses a different cluster token: message refused", "memberlist", msg)
		return len(p), nil
	}
	w.log.Debug(msg, "memberlistLevel", level)
	return len(p), nil
}
