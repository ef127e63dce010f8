package coordinator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/drove-project/drove/internal/clusterauth"
	"github.com/drove-project/drove/protocol"
)

const (
	natsTestToken  = "drove-nats-test-token-00001"
	natsOtherToken = "drove-nats-test-token-00002"
)

// natsLogRecorder is a slog handler that keeps messages for assertions.
type natsLogRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (h *natsLogRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *natsLogRecorder) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	h.msgs = append(h.msgs, r.Level.String()+" "+r.Message)
	h.mu.Unlock()
	return nil
}
func (h *natsLogRecorder) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *natsLogRecorder) WithGroup(string) slog.Handler      { return h }

func (h *natsLogRecorder) has(substr string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, m := range h.msgs {
		if strings.Contains(strings.ToLower(m), strings.ToLower(substr)) {
			return true
		}
	}
	return false
}

func startTestNATS(t *testing.T, name, token string, routes []string, log *slog.Logger) *NATSServer {
	t.Helper()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := StartNATS(ctx, NATSConfig{
		ServerName: name, Host: "127.0.0.1", ClusterHost: "127.0.0.1", Routes: routes, Token: token,
	}, log)
	if err != nil {
		t.Fatalf("start nats %s: %v", name, err)
	}
	t.Cleanup(s.Shutdown)
	return s
}

// connectAs connects a client with the coordinator or agent credentials of
// token; errs receives asynchronous errors (permission violations).
func connectAs(t *testing.T, s *NATSServer, role, token string) (*nats.Conn, <-chan error) {
	t.Helper()
	user, pass := clusterauth.NATSCoordinator(token)
	if role == "agent" {
		user, pass = clusterauth.NATSAgent(token)
	}
	errs := make(chan error, 16)
	nc, err := nats.Connect(s.ClientURL(), nats.UserInfo(user, pass), nats.NoReconnect(),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case errs <- err:
			default:
			}
		}))
	if err != nil {
		t.Fatalf("connect to %s as %s: %v", s.ClientURL(), role, err)
	}
	t.Cleanup(nc.Close)
	return nc, errs
}

func natsWait(t *testing.T, d time.Duration, what string, cond func() error) {
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

func waitRoutes(t *testing.T, s *NATSServer, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.WaitRoutes(ctx, n); err != nil {
		t.Fatal(err)
	}
}

// requestUntilAnswered retries a request until the responder's interest
// has crossed the route, or fails after d.
func requestUntilAnswered(t *testing.T, nc *nats.Conn, subject string, data []byte, d time.Duration) *nats.Msg {
	t.Helper()
	var reply *nats.Msg
	natsWait(t, d, "request on "+subject+" answered", func() error {
		m, err := nc.Request(subject, data, 200*time.Millisecond)
		if err != nil {
			return err
		}
		reply = m
		return nil
	})
	return reply
}

func TestNATSRouteCarriesRequestsBetweenServers(t *testing.T) {
	s1 := startTestNATS(t, "c1", natsTestToken, nil, nil)
	s2 := startTestNATS(t, "c2", natsTestToken, []string{s1.ClusterAddr()}, nil)
	waitRoutes(t, s1, 1)
	waitRoutes(t, s2, 1)
	if got := s1.RoutedServers(); !slices.Equal(got, []string{"c2"}) {
		t.Errorf("c1 routed to %v, want [c2]", got)
	}

	coord, _ := connectAs(t, s1, "coordinator", natsTestToken)
	if _, err := coord.Subscribe(protocol.APISubject, func(m *nats.Msg) {
		_ = m.Respond(append([]byte("served by c1: "), m.Data...))
	}); err != nil {
		t.Fatal(err)
	}
	agent, _ := connectAs(t, s2, "agent", natsTestToken)
	reply := requestUntilAnswered(t, agent, protocol.APISubject, []byte("status?"), 5*time.Second)
	if string(reply.Data) != "served by c1: status?" {
		t.Errorf("reply %q", reply.Data)
	}
}

func TestNATSAgentMayNotCommandNodes(t *testing.T) {
	s := startTestNATS(t, "c1", natsTestToken, nil, nil)
	coord, _ := connectAs(t, s, "coordinator", natsTestToken)
	agent, agentErrs := connectAs(t, s, "agent", natsTestToken)
	step := protocol.NodeStepSubject("x")

	got := make(chan string, 4)
	if _, err := coord.Subscribe(step, func(m *nats.Msg) { got <- string(m.Data) }); err != nil {
		t.Fatal(err)
	}
	if err := coord.Flush(); err != nil {
		t.Fatal(err)
	}

	if err := agent.Publish(step, []byte("forged step")); err != nil {
		t.Fatalf("publish: %v", err) // refusals come asynchronously
	}
	select {
	case err := <-agentErrs:
		if !errors.Is(err, nats.ErrPermissionViolation) || !strings.Contains(err.Error(), step) {
			t.Fatalf("agent error %v, want a permissions violation for %s", err, step)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no permissions violation reported for an agent publishing a step")
	}
	// The server refused the forged step before it reported the violation,
	// so the first message the subscriber sees is this later marker.
	if err := coord.Publish(step, []byte("marker")); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if m != "marker" {
			t.Fatalf("subscriber received %q: the agent's step was delivered", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("marker not delivered")
	}

	// What the agent may do: request on the API subject...
	if _, err := coord.Subscribe(protocol.APISubject, func(m *nats.Msg) { _ = m.Respond([]byte("ok")) }); err != nil {
		t.Fatal(err)
	}
	if err := coord.Flush(); err != nil {
		t.Fatal(err)
	}
	if reply, err := agent.Request(protocol.APISubject, []byte("hi"), 5*time.Second); err != nil || string(reply.Data) != "ok" {
		t.Fatalf("agent request on %s: %v, %v", protocol.APISubject, reply, err)
	}
	// ...and receive steps sent to it by a coordinator.
	steps, err := agent.SubscribeSync(protocol.NodeStepSubject("n1"))
	if err != nil {
		t.Fatal(err)
	}
	if err := agent.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := coord.Publish(protocol.NodeStepSubject("n1"), []byte("real step")); err != nil {
		t.Fatal(err)
	}
	if m, err := steps.NextMsg(5 * time.Second); err != nil || string(m.Data) != "real step" {
		t.Fatalf("agent did not receive the coordinator's step: %v, %v", m, err)
	}
	// It may not listen on coordinators' subjects.
	if _, err := agent.Subscribe(protocol.CoordinatorSubject("c1"), func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-agentErrs:
		if !errors.Is(err, nats.ErrPermissionViolation) {
			t.Fatalf("agent subscribe error %v, want a permissions violation", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no permissions violation for an agent subscribing to a coordinator subject")
	}
}

func TestNATSRefusesWrongCredentials(t *testing.T) {
	s := startTestNATS(t, "c1", natsTestToken, nil, nil)
	user, _ := clusterauth.NATSAgent(natsTestToken)
	_, wrongPass := clusterauth.NATSAgent(natsOtherToken)
	tests := []struct {
		name string
		opt  nats.Option
	}{
		{"wrong password", nats.UserInfo(user, wrongPass)},
		{"route user", nats.UserInfo(clusterauth.NATSRoute(natsTestToken))},
		{"no credentials", func(*nats.Options) error { return nil }},
	}
	for _, tt := range tests {
		nc, err := nats.Connect(s.ClientURL(), tt.opt, nats.NoReconnect())
		if err == nil {
			nc.Close()
			t.Errorf("%s: connected", tt.name)
			continue
		}
		if !errors.Is(err, nats.ErrAuthorization) {
			t.Errorf("%s: %v, want an authorization error", tt.name, err)
		}
	}
}

func TestNATSWrongRouteTokenDoesNotJoin(t *testing.T) {
	rec := &natsLogRecorder{}
	s1 := startTestNATS(t, "c1", natsTestToken, nil, slog.New(rec))
	s2 := startTestNATS(t, "c2", natsTestToken, []string{s1.ClusterAddr()}, nil)
	waitRoutes(t, s1, 1)
	s3 := startTestNATS(t, "c3", natsOtherToken, []string{s1.ClusterAddr(), s2.ClusterAddr()}, nil)

	// c1 saw c3 try and refused it.
	natsWait(t, 10*time.Second, "c1 logs a refused route", func() error {
		if !rec.has(`authentication error - User "drove-route"`) {
			return errors.New("no auth failure logged yet")
		}
		return nil
	})
	for _, s := range []*NATSServer{s1, s2} {
		if got := s.RoutedServers(); slices.Contains(got, "c3") {
			t.Errorf("a server routes to c3, which has another token: %v", got)
		}
	}
	if got := s3.RoutedServers(); len(got) != 0 {
		t.Errorf("c3 routed to %v, want none", got)
	}
	// A client of c3 does not reach a subscriber on c1.
	coord1, _ := connectAs(t, s1, "coordinator", natsTestToken)
	sub, err := coord1.SubscribeSync(protocol.HelloSubject)
	if err != nil {
		t.Fatal(err)
	}
	if err := coord1.Flush(); err != nil {
		t.Fatal(err)
	}
	coord3, _ := connectAs(t, s3, "coordinator", natsOtherToken)
	if err := coord3.Publish(protocol.HelloSubject, []byte("from c3")); err != nil {
		t.Fatal(err)
	}
	if err := coord3.Flush(); err != nil {
		t.Fatal(err)
	}
	if m, err := sub.NextMsg(300 * time.Millisecond); err == nil {
		t.Fatalf("c1 received %q from c3's cluster", m.Data)
	}
}

func TestNATSAddRoutesAndImplicitRoutes(t *testing.T) {
	s1 := startTestNATS(t, "c1", natsTestToken, nil, nil)
	s2 := startTestNATS(t, "c2", natsTestToken, nil, nil)
	if err := s2.AddRoutes([]string{s1.ClusterAddr()}); err != nil {
		t.Fatalf("add route: %v", err)
	}
	waitRoutes(t, s2, 1)
	if err := s2.AddRoutes([]string{s1.ClusterAddr()}); err != nil { // known: a no-op
		t.Fatalf("add the same route again: %v", err)
	}
	// c3 knows only c2; the cluster tells it about c1.
	s3 := startTestNATS(t, "c3", natsTestToken, []string{s2.ClusterAddr()}, nil)
	waitRoutes(t, s3, 2)
	waitRoutes(t, s1, 2)
	if got := s1.RoutedServers(); !slices.Equal(got, []string{"c2", "c3"}) {
		t.Errorf("c1 routed to %v, want [c2 c3]", got)
	}
	coord, _ := connectAs(t, s1, "coordinator", natsTestToken)
	if _, err := coord.Subscribe(protocol.APISubject, func(m *nats.Msg) { _ = m.Respond([]byte("c1")) }); err != nil {
		t.Fatal(err)
	}
	agent, _ := connectAs(t, s3, "agent", natsTestToken)
	if r := requestUntilAnswered(t, agent, protocol.APISubject, nil, 5*time.Second); string(r.Data) != "c1" {
		t.Errorf("reply %q", r.Data)
	}
}

func TestNATSMaxPayloadAndURLs(t *testing.T) {
	s := startTestNATS(t, "c1", natsTestToken, nil, nil)
	if !strings.HasPrefix(s.ClientURL(), "nats://127.0.0.1:") || strings.HasSuffix(s.ClientURL(), ":-1") ||
		strings.HasSuffix(s.ClientURL(), ":0") {
		t.Errorf("ClientURL %q does not report the real port", s.ClientURL())
	}
	if !strings.HasPrefix(s.ClusterAddr(), "127.0.0.1:") || strings.HasSuffix(s.ClusterAddr(), ":-1") {
		t.Errorf("ClusterAddr %q does not report the real port", s.ClusterAddr())
	}
	nc, _ := connectAs(t, s, "coordinator", natsTestToken)
	if got := nc.MaxPayload(); got != 1<<20 {
		t.Errorf("max payload %d, want 1 MiB", got)
	}
	if err := nc.Publish(protocol.APISubject, make([]byte, 1<<20+1)); !errors.Is(err, nats.ErrMaxPayload) {
		t.Errorf("publishing 1 MiB + 1: %v, want ErrMaxPayload", err)
	}
}

func TestStartNATSRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  NATSConfig
	}{
		{"short token", NATSConfig{ServerName: "c1", Host: "127.0.0.1", Token: "short"}},
		{"no name", NATSConfig{Host: "127.0.0.1", Token: natsTestToken}},
		{"bad route", NATSConfig{ServerName: "c1", Host: "127.0.0.1", Token: natsTestToken, Routes: []string{"no-port"}}},
	}
	for _, tt := range tests {
		s, err := StartNATS(context.Background(), tt.cfg, slog.New(slog.DiscardHandler))
		if err == nil {
			s.Shutdown()
			t.Errorf("%s: started", tt.name)
		}
	}
}

func TestRouteURLs(t *testing.T) {
	user, pass := clusterauth.NATSRoute(natsTestToken)
	tests := []struct {
		in   string
		host string
		ok   bool
	}{
		{"10.0.0.1:6222", "10.0.0.1:6222", true},
		{"nats-route://10.0.0.2:6222", "10.0.0.2:6222", true},
		{"nats-route://someone:secret@10.0.0.3:6222", "10.0.0.3:6222", true},
		{"[fd00::1]:6222", "[fd00::1]:6222", true},
		{"10.0.0.1", "", false},
		{"10.0.0.1:0", "", false},
		{"http://10.0.0.1:6222", "", false},
		{":6222", "", false},
	}
	for _, tt := range tests {
		got, err := routeURLs(natsTestToken, []string{tt.in})
		if (err == nil) != tt.ok {
			t.Errorf("routeURLs(%q) error %v, want ok=%v", tt.in, err, tt.ok)
			continue
		}
		if !tt.ok {
			continue
		}
		u := got[0]
		p, _ := u.User.Password()
		if want := fmt.Sprintf("nats-route://%s:%s@%s", user, pass, tt.host); u.String() != want || u.User.Username() != user || p != pass {
			t.Errorf("routeURLs(%q) = %s, want %s", tt.in, u, want)
		}
	}
}
