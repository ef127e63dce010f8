package coordinator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/drove-project/drove/internal/clusterauth"
	"github.com/drove-project/drove/protocol"
)

// NATSClusterName names the NATS cluster the coordinators' servers form.
// Servers with another cluster name refuse each other's routes.
const NATSClusterName = "drove"

// NATSMaxPayload bounds a message on the coordinators' servers: they carry
// control messages only (DESIGN.md invariant 5), never bulk bytes.
const NATSMaxPayload = protocol.MaxFrame

// ErrNATSNotReady: the server did not accept connections before the
// context ended.
var ErrNATSNotReady = errors.New("nats server not ready")

// NATSConfig configures a coordinator's embedded NATS server.
type NATSConfig struct {
	ServerName  string   // the node ID; unique in the cluster
	Host        string   // client listener; default 0.0.0.0
	Port        int      // client port; 0 picks a free one (ClientURL tells)
	ClusterHost string   // route listener; default Host
	ClusterPort int      // route port; 0 picks a free one (ClusterAddr tells)
	Routes      []string // other coordinators' route listeners, host:port
	// Token is the cluster token: it yields the coordinator, agent and
	// route credentials (clusterauth), so a server or client without it is
	// refused.
	Token string
}

// NATSServer is a coordinator's embedded NATS server, clustered with the
// other coordinators' servers by routes.
//
// Routes: a server needs one route to any member of the cluster. Through
// it the cluster gossips every other server's route URL and this server
// connects to them itself (implicit routes), using its own route
// credentials. AddRoutes adds explicit routes later (a config reload).
type NATSServer struct {
	s     *server.Server
	log   *slog.Logger
	token string

	mu   sync.Mutex
	opts *server.Options // the options last applied; cloned for reloads
}

// StartNATS starts the server and waits until it accepts client
// connections or ctx ends. ctx bounds only the start: the server runs until
// Shutdown.
//
// Users (passwords from clusterauth): the coordinator user may publish and
// subscribe on everything. The agent user may publish to protocol.APISubject,
// protocol.HelloSubject and _INBOX.> (replies) and subscribe to
// drove.v1.node.*.step and _INBOX.>; it may never publish a step, so only
// coordinators command nodes (DESIGN.md invariant 4). All agents share one
// user: one agent's credentials could read other nodes' steps, not send
// them.
func StartNATS(ctx context.Context, cfg NATSConfig, log *slog.Logger) (*NATSServer, error) {
	if cfg.ServerName == "" || strings.ContainsAny(cfg.ServerName, " \t\r\n") {
		return nil, fmt.Errorf("start nats server: invalid server name %q", cfg.ServerName)
	}
	if err := clusterauth.ValidateToken(cfg.Token); err != nil {
		return nil, fmt.Errorf("start nats server %s: %w", cfg.ServerName, err)
	}
	routes, err := routeURLs(cfg.Token, cfg.Routes)
	if err != nil {
		return nil, fmt.Errorf("start nats server %s: %w", cfg.ServerName, err)
	}
	opts := natsOptions(cfg)
	opts.Routes = routes
	base := opts.Clone() // the server keeps and changes opts; reloads start from base

	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("start nats server %s: %w", cfg.ServerName, err)
	}
	log = log.With("node", cfg.ServerName, "component", "nats")
	s.SetLoggerV2(&natsLog{log: log}, log.Enabled(ctx, slog.LevelDebug), false, false)
	n := &NATSServer{s: s, log: log, token: cfg.Token, opts: base}
	s.Start()
	if err := n.Ready(ctx); err != nil {
		n.Shutdown()
		return nil, fmt.Errorf("start nats server %s: %w", cfg.ServerName, err)
	}
	// Pin the ports the kernel picked, so a reload does not ask for new ones.
	if a, ok := s.Addr().(*net.TCPAddr); ok {
		base.Port = a.Port
	}
	if a := s.ClusterAddr(); a != nil {
		base.Cluster.Port = a.Port
	}
	log.Info("nats server started", "client", n.ClientURL(), "cluster", n.ClusterAddr(), "routes", cfg.Routes)
	return n, nil
}

// natsOptions builds the server options, without routes.
func natsOptions(cfg NATSConfig) *server.Options {
	host := cfg.Host
	if host == "" {
		host = "0.0.0.0"
	}
	clusterHost := cfg.ClusterHost
	if clusterHost == "" {
		clusterHost = host
	}
	coordUser, coordPass := clusterauth.NATSCoordinator(cfg.Token)
	agentUser, agentPass := clusterauth.NATSAgent(cfg.Token)
	routeUser, routePass := clusterauth.NATSRoute(cfg.Token)
	return &server.Options{
		ServerName: cfg.ServerName,
		Host:       host,
		Port:       randomIfZero(cfg.Port),
		NoSigs:     true,
		MaxPayload: NATSMaxPayload,
		// Drop a client or route that stops answering within about 6 s
		// (the default, 2 minutes per ping, let a partitioned coordinator
		// keep receiving its share of queue-group API requests for
		// minutes).
		PingInterval: natsPingInterval,
		MaxPingsOut:  2,
		Users: []*server.User{
			{Username: coordUser, Password: coordPass},
			{Username: agentUser, Password: agentPass, Permissions: agentPermissions()},
		},
		Cluster: server.ClusterOpts{
			Name:     NATSClusterName,
			Host:     clusterHost,
			Port:     randomIfZero(cfg.ClusterPort),
			Username: routeUser,
			Password: routePass,
		},
	}
}

// natsPingInterval is how often servers and agents ping each other.
const natsPingInterval = 2 * time.Second

// agentPermissions is what the agent user may do; see StartNATS.
func agentPermissions() *server.Permissions {
	anyStep := protocol.NodeStepSubject("*")
	return &server.Permissions{
		Publish: &server.SubjectPermission{
			Allow: []string{protocol.APISubject, protocol.HelloSubject, "_INBOX.>"},
			Deny:  []string{anyStep},
		},
		Subscribe: &server.SubjectPermission{
			Allow: []string{anyStep, "_INBOX.>"},
		},
	}
}

// randomIfZero maps drove's "0 = pick a port" to nats-server's -1 (its 0
// means the default port).
func randomIfZero(port int) int {
	if port == 0 {
		return server.RANDOM_PORT
	}
	return port
}

// routeURLs turns host:port (or nats-route://host:port) addresses into
// route URLs carrying the route credentials.
func routeURLs(token string, addrs []string) ([]*url.URL, error) {
	user, pass := clusterauth.NATSRoute(token)
	out := make([]*url.URL, 0, len(addrs))
	for _, a := range addrs {
		raw := a
		if !strings.Contains(raw, "://") {
			raw = "nats-route://" + raw
		}
		u, err := url.Parse(raw)
		if err != nil {
			return nil, fmt.Errorf("route %q: %w", a, err)
		}
		if u.Scheme != "nats-route" && u.Scheme != "nats" {
			return nil, fmt.Errorf("route %q: scheme %q, want host:port or nats-route://host:port", a, u.Scheme)
		}
		host, port, err := net.SplitHostPort(u.Host)
		if err != nil || host == "" {
			return nil, fmt.Errorf("route %q: want host:port", a)
		}
		if p, err := strconv.Atoi(port); err != nil || p <= 0 || p > 65535 {
			return nil, fmt.Errorf("route %q: bad port %q", a, port)
		}
		out = append(out, &url.URL{Scheme: "nats-route", Host: u.Host, User: url.UserPassword(user, pass)})
	}
	return out, nil
}

// Ready waits until the server accepts client connections or ctx ends.
func (n *NATSServer) Ready(ctx context.Context) error {
	for {
		if n.s.ReadyForConnections(50 * time.Millisecond) {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%w: %w", ErrNATSNotReady, err)
		}
	}
}

// Traffic returns the bytes this server has received and sent (clients
// and routes together) since it started.
func (n *NATSServer) Traffic() (in, out int64) {
	v, err := n.s.Varz(nil)
	if err != nil {
		return 0, 0
	}
	return v.InBytes, v.OutBytes
}

// ClientURL is the URL clients connect to, with the real port.
func (n *NATSServer) ClientURL() string { return n.s.ClientURL() }

// ClusterAddr is the route listener's host:port, as other coordinators
// name it in their Routes. With a wildcard ClusterHost (0.0.0.0) the host
// is the wildcard: others must use this machine's advertised address.
func (n *NATSServer) ClusterAddr() string {
	a := n.s.ClusterAddr()
	if a == nil {
		return ""
	}
	n.mu.Lock()
	host := n.opts.Cluster.Host
	n.mu.Unlock()
	return net.JoinHostPort(host, strconv.Itoa(a.Port))
}

// AddRoutes adds explicit routes (host:port) to servers learned later; ones
// already configured are skipped. It reloads the server's options; existing
// connections stay.
func (n *NATSServer) AddRoutes(addrs []string) error {
	add, err := routeURLs(n.token, addrs)
	if err != nil {
		return fmt.Errorf("add nats routes: %w", err)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	opts := n.opts.Clone()
	var added []string
	for _, u := range add {
		if slices.ContainsFunc(opts.Routes, func(r *url.URL) bool { return r.Host == u.Host }) {
			continue
		}
		opts.Routes = append(opts.Routes, u)
		added = append(added, u.Host)
	}
	if len(added) == 0 {
		return nil
	}
	next := opts.Clone() // ReloadOptions keeps what it is given
	if err := n.s.ReloadOptions(next); err != nil {
		return fmt.Errorf("add nats routes %v: %w", added, err)
	}
	n.opts = opts
	n.log.Info("nats routes added", "routes", added)
	return nil
}

// RoutedServers returns the names of the servers this one has a route to,
// sorted.
func (n *NATSServer) RoutedServers() []string {
	rz, err := n.s.Routez(nil)
	if err != nil {
		return nil
	}
	seen := map[string]bool{}
	var out []string
	for _, r := range rz.Routes {
		if r.RemoteName != "" && !seen[r.RemoteName] {
			seen[r.RemoteName] = true
			out = append(out, r.RemoteName)
		}
	}
	sort.Strings(out)
	return out
}

// WaitRoutes waits until this server has routes to at least count other
// servers, or ctx ends.
func (n *NATSServer) WaitRoutes(ctx context.Context, count int) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		if n.s.NumRemotes() >= count {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %d nats routes (have %d): %w", count, n.s.NumRemotes(), ctx.Err())
		case <-t.C:
		}
	}
}

// Shutdown stops the server and waits until it has stopped.
func (n *NATSServer) Shutdown() {
	n.s.Shutdown()
	n.s.WaitForShutdown()
}

// natsLog bridges nats-server's logger to slog. Notices are info, debug and
// trace lines debug (trace is never switched on), fatal and error lines
// errors.
type natsLog struct{ log *slog.Logger }

func (l *natsLog) Noticef(format string, v ...any) { l.log.Info(fmt.Sprintf(format, v...)) }

// Warnf logs a warning. nats-server warns at every start that passwords
// are in plain text; drove's are derived from the token and live only in
// memory, so that one is debug.
func (l *natsLog) Warnf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	if strings.HasPrefix(msg, "Plaintext passwords detected") {
		l.log.Debug(msg)
		return
	}
	l.log.Warn(msg)
}
func (l *natsLog) Fatalf(format string, v ...any) { l.log.Error(fmt.Sprintf(format, v...)) }
func (l *natsLog) Errorf(format string, v ...any) { l.log.Error(fmt.Sprintf(format, v...)) }
func (l *natsLog) Debugf(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l *natsLog) Tracef(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }

var _ server.Logger = (*natsLog)(nil)
