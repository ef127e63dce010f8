package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drove-project/drove/protocol"
)

const (
	gossipToken      = "drove-gossip-test-token-0001"
	gossipOtherToken = "drove-gossip-test-token-0002"
)

// gossipLogRecorder keeps every log record, so tests can assert on what was
// logged. It is safe for concurrent use.
type gossipLogRecorder struct {
	mu   *sync.Mutex
	recs *[]slog.Record
}

func newGossipLogRecorder() (*slog.Logger, *gossipLogRecorder) {
	h := &gossipLogRecorder{mu: &sync.Mutex{}, recs: &[]slog.Record{}}
	return slog.New(h), h
}

func (h *gossipLogRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *gossipLogRecorder) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	*h.recs = append(*h.recs, r.Clone())
	h.mu.Unlock()
	return nil
}
func (h *gossipLogRecorder) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *gossipLogRecorder) WithGroup(string) slog.Handler      { return h }

// has reports whether a record at level or above contains substr in its
// message.
func (h *gossipLogRecorder) has(level slog.Level, substr string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range *h.recs {
		if r.Level >= level && strings.Contains(r.Message, substr) {
			return true
		}
	}
	return false
}

func startGossip(t *testing.T, id, token string, log *slog.Logger) *Gossip {
	t.Helper()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	g, err := NewGossip(GossipConfig{
		NodeID: id, BindAddr: "127.0.0.1", Token: token, Fast: true,
		Meta: protocol.Member{
			Name: id + "-name", Address: "127.0.0.1", Roles: []string{"worker"},
			Labels: map[string]string{"zone": "z-" + id}, Arch: "amd64", NATSPort: 4222,
		},
	}, log)
	if err != nil {
		t.Fatalf("start gossip %s: %v", id, err)
	}
	t.Cleanup(func() { _ = g.Shutdown() })
	return g
}

// eventually polls cond every 20ms until it holds or d passes.
func gossipEventually(t *testing.T, d time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, d, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func memberByID(ms []protocol.Member, id string) (protocol.Member, bool) {
	for _, m := range ms {
		if m.ID == id {
			return m, true
		}
	}
	return protocol.Member{}, false
}

// state returns id's state as g sees it, "" if g does not list it.
func gossipState(g *Gossip, id string) string {
	m, _ := memberByID(g.Members(), id)
	return m.State
}

func gossipJoin(t *testing.T, g *Gossip, seed *Gossip) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if n, err := g.Join(ctx, []string{seed.Addr()}); err != nil || n != 1 {
		t.Fatalf("join %s: n=%d err=%v", seed.Addr(), n, err)
	}
}

// cluster starts three joined nodes a, b, c and waits until each sees all.
func gossipCluster(t *testing.T) (a, b, c *Gossip) {
	t.Helper()
	a = startGossip(t, "a", gossipToken, nil)
	b = startGossip(t, "b", gossipToken, nil)
	c = startGossip(t, "c", gossipToken, nil)
	gossipJoin(t, b, a)
	gossipJoin(t, c, a)
	for _, g := range []*Gossip{a, b, c} {
		gossipEventually(t, 5*time.Second, g.id+" sees three alive members", func() error {
			ms := g.Members()
			if len(ms) != 3 {
				return fmt.Errorf("members %v", ms)
			}
			for _, m := range ms {
				if m.State != MemberAlive {
					return fmt.Errorf("%s is %s", m.ID, m.State)
				}
			}
			return nil
		})
	}
	return a, b, c
}

func TestGossipThreeNodesSeeEachOtherWithMeta(t *testing.T) {
	a, b, c := gossipCluster(t)
	for _, g := range []*Gossip{a, b, c} {
		ms := g.Members()
		for i, id := range []string{"a", "b", "c"} {
			m := ms[i]
			if m.ID != id {
				t.Fatalf("%s: members not sorted by ID: %v", g.id, ms)
			}
			if m.Name != id+"-name" || m.Labels["zone"] != "z-"+id || len(m.Roles) != 1 || m.Roles[0] != "worker" ||
				m.NATSPort != 4222 || m.Address != "127.0.0.1" {
				t.Errorf("%s sees %s with meta %+v", g.id, id, m)
			}
		}
	}
	// a's events announced both joiners.
	joined := map[string]bool{}
	gossipEventually(t, 2*time.Second, "a gets join events", func() error {
		for {
			select {
			case ev := <-a.Events():
				if ev.Type == MemberJoin {
					joined[ev.Member.ID] = true
				}
				continue
			default:
			}
			break
		}
		if !joined["b"] || !joined["c"] {
			return fmt.Errorf("joined %v", joined)
		}
		return nil
	})
}

func TestGossipUpdateMetaPropagates(t *testing.T) {
	a, b, c := gossipCluster(t)
	drainEvents(a)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := b.UpdateMeta(ctx, protocol.Member{ID: "b", Name: "b-name", Address: "127.0.0.1",
		Labels: map[string]string{"zone": "z-b", "disk": "ssd"}, RaftPort: 7000})
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range []*Gossip{a, c} {
		gossipEventually(t, 5*time.Second, g.id+" sees b's new meta", func() error {
			m, _ := memberByID(g.Members(), "b")
			if m.Labels["disk"] != "ssd" || m.RaftPort != 7000 {
				return fmt.Errorf("b is %+v", m)
			}
			return nil
		})
	}
	gossipEventually(t, 2*time.Second, "a gets an update event for b", func() error {
		for {
			select {
			case ev := <-a.Events():
				if ev.Type == MemberUpdate && ev.Member.ID == "b" && ev.Member.Labels["disk"] == "ssd" {
					return nil
				}
			default:
				return errors.New("no update event yet")
			}
		}
	})
}

func drainEvents(g *Gossip) {
	for {
		select {
		case <-g.Events():
		default:
			return
		}
	}
}

func TestGossipLeaveShowsLeft(t *testing.T) {
	a, b, c := gossipCluster(t)
	drainEvents(a)
	if err := c.Leave(3 * time.Second); err != nil {
		t.Fatalf("leave: %v", err)
	}
	for _, g := range []*Gossip{a, b} {
		gossipEventually(t, 5*time.Second, g.id+" sees c left", func() error {
			if s := gossipState(g, "c"); s != MemberLeft {
				return fmt.Errorf("c is %q", s)
			}
			return nil
		})
	}
	// Shutting down after leaving must not turn left into dead.
	if err := c.Shutdown(); err != nil {
		t.Fatal(err)
	}
	var sawLeave bool
	for ev := range eventsFor(a.Events(), 300*time.Millisecond) {
		if ev.Member.ID == "c" && ev.Type == MemberFail {
			t.Errorf("a got a fail event for c, which left: %+v", ev)
		}
		if ev.Member.ID == "c" && ev.Type == MemberLeave {
			sawLeave = ev.Member.State == MemberLeft
		}
	}
	if !sawLeave {
		t.Error("a got no leave event for c with state left")
	}
	if s := gossipState(a, "c"); s != MemberLeft {
		t.Errorf("after c's shutdown a sees c as %q, want left", s)
	}
}

// until yields events from ch for d (which is a bound on collection, not
// synchronisation: the assertions before it already waited for the state).
func eventsFor(ch <-chan MemberEvent, d time.Duration) <-chan MemberEvent {
	out := make(chan MemberEvent)
	go func() {
		defer close(out)
		t := time.NewTimer(d)
		defer t.Stop()
		for {
			select {
			case ev, ok := <-ch:
				if !ok {
					return
				}
				out <- ev
			case <-t.C:
				return
			}
		}
	}()
	return out
}

func TestGossipStoppedNodeDetectedDead(t *testing.T) {
	a, b, c := gossipCluster(t)
	drainEvents(a)
	start := time.Now()
	if err := c.Shutdown(); err != nil { // no Leave: c just stops answering
		t.Fatal(err)
	}
	for _, g := range []*Gossip{a, b} {
		gossipEventually(t, 3*time.Second, g.id+" sees c dead", func() error {
			if s := gossipState(g, "c"); s != MemberDead {
				return fmt.Errorf("c is %q", s)
			}
			return nil
		})
	}
	t.Logf("c declared dead by a and b after %v", time.Since(start))
	gossipEventually(t, time.Second, "a gets a fail event for c", func() error {
		for {
			select {
			case ev := <-a.Events():
				if ev.Type == MemberFail && ev.Member.ID == "c" && ev.Member.State == MemberDead {
					return nil
				}
			default:
				return errors.New("none yet")
			}
		}
	})
}

func TestGossipWrongTokenCannotJoin(t *testing.T) {
	log, rec := newGossipLogRecorder()
	a := startGossip(t, "a", gossipToken, log)
	b := startGossip(t, "b", gossipToken, nil)
	gossipJoin(t, b, a)
	x := startGossip(t, "x", gossipOtherToken, nil)

	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	n, err := x.Join(ctx, []string{a.Addr()})
	if err == nil || n != 0 {
		t.Fatalf("join with a wrong token: n=%d err=%v, want failure", n, err)
	}
	if !errors.Is(err, ErrNoSeedAnswered) {
		t.Errorf("error %v does not match ErrNoSeedAnswered", err)
	}
	if !strings.Contains(err.Error(), "cluster token") {
		t.Errorf("error %v does not point at the cluster token", err)
	}
	t.Logf("join error: %v", err)
	// a explained why it refused x.
	gossipEventually(t, 2*time.Second, "a logs a token warning", func() error {
		if !rec.has(slog.LevelWarn, "different cluster token") {
			return errors.New("no warning logged")
		}
		return nil
	})
	// Nobody lists x, now or over the next second of gossip rounds (a
	// bounded observation window, not synchronisation).
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		for _, g := range []*Gossip{a, b} {
			if _, ok := memberByID(g.Members(), "x"); ok {
				t.Fatalf("%s lists x, which holds a different token", g.id)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if ms := x.Members(); len(ms) != 1 {
		t.Errorf("x sees %v, want only itself", ms)
	}
}

func TestGossipMetaTooLarge(t *testing.T) {
	big := protocol.Member{Labels: map[string]string{"blob": strings.Repeat("x", 600)}}
	_, err := NewGossip(GossipConfig{NodeID: "big", BindAddr: "127.0.0.1", Token: gossipToken, Meta: big},
		slog.New(slog.DiscardHandler))
	if !errors.Is(err, ErrMetaTooLarge) {
		t.Fatalf("NewGossip with %d-byte label: %v, want ErrMetaTooLarge", 600, err)
	}

	g := startGossip(t, "a", gossipToken, nil)
	big.ID = "a"
	if err := g.UpdateMeta(context.Background(), big); !errors.Is(err, ErrMetaTooLarge) {
		t.Fatalf("UpdateMeta too large: %v, want ErrMetaTooLarge", err)
	}
	if m, _ := memberByID(g.Members(), "a"); m.Labels["zone"] != "z-a" {
		t.Errorf("refused update changed meta: %+v", m)
	}
}

func TestNewGossipRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  GossipConfig
	}{
		{"short token", GossipConfig{NodeID: "a", BindAddr: "127.0.0.1", Token: "short"}},
		{"bad node ID", GossipConfig{NodeID: "a.b", BindAddr: "127.0.0.1", Token: gossipToken}},
		{"meta for another node", GossipConfig{NodeID: "a", BindAddr: "127.0.0.1", Token: gossipToken,
			Meta: protocol.Member{ID: "b"}}},
	}
	for _, tt := range tests {
		g, err := NewGossip(tt.cfg, slog.New(slog.DiscardHandler))
		if err == nil {
			g.Shutdown()
			t.Errorf("%s: NewGossip succeeded", tt.name)
		}
	}
}

func TestGossipEventsDropOldest(t *testing.T) {
	g := &Gossip{events: make(chan MemberEvent, 3)}
	for i := range 5 {
		g.emit(MemberEvent{Type: MemberJoin, Member: protocol.Member{ID: fmt.Sprint(i)}})
	}
	var got []string
	for range 3 {
		got = append(got, (<-g.events).Member.ID)
	}
	if strings.Join(got, ",") != "2,3,4" || g.dropped != 2 {
		t.Errorf("kept %v, dropped %d; want 2,3,4 and 2 dropped", got, g.dropped)
	}
	g.closed = true
	g.emit(MemberEvent{}) // after close: ignored, no panic
}

func TestMemberlistLogLevels(t *testing.T) {
	tests := []struct {
		line  string
		level slog.Level
		msg   string
	}{
		{"[DEBUG] memberlist: Stream connection from=127.0.0.1:1\n", slog.LevelDebug, "Stream connection"},
		{"[ERR] memberlist: Failed to send gossip to 127.0.0.1:2\n", slog.LevelDebug, "Failed to send gossip"},
		{"[ERR] memberlist: failed to receive: No installed keys could decrypt the message from=127.0.0.1:3\n",
			slog.LevelWarn, "different cluster token"},
		{"no level at all\n", slog.LevelDebug, "no level at all"},
	}
	for _, tt := range tests {
		log, rec := newGossipLogRecorder()
		w := &memberlistLog{log: log}
		if n, err := w.Write([]byte(tt.line)); n != len(tt.line) || err != nil {
			t.Errorf("Write(%q) = %d, %v", tt.line, n, err)
		}
		if !rec.has(tt.level, tt.msg) || (tt.level == slog.LevelDebug && rec.has(slog.LevelInfo, "")) {
			t.Errorf("%q: not logged as %v %q: %v", tt.line, tt.level, tt.msg, *rec.recs)
		}
	}
}

func TestJoinHint(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{nil, ""},
		{errors.New("failed to join 127.0.0.1:1: No installed keys could decrypt the message"), "different cluster token"},
		{errors.New("failed to join 127.0.0.1:1: EOF"), "may use a different cluster token"},
		{errors.New("dial tcp 127.0.0.1:1: connect: connection refused"), "no gossip listener"},
		{errors.New("something else"), "debug log"},
	}
	for _, tt := range tests {
		if got := joinHint(tt.err); !strings.Contains(got, tt.want) || (tt.want == "" && got != "") {
			t.Errorf("joinHint(%v) = %q, want it to contain %q", tt.err, got, tt.want)
		}
	}
}
