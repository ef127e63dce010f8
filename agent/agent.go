package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/drove-project/drove/internal/clusterauth"
	"github.com/drove-project/drove/internal/version"
	"github.com/drove-project/drove/protocol"
)

// Config configures an agent.
type Config struct {
	DataDir       string
	Name          string // node ID on first start; default host name + suffix
	BindAddr      string // address gossip binds to
	AdvertiseAddr string // address others reach this node at; default BindAddr
	GossipPort    int    // default 7946; 0 in tests picks one
	Join          []string
	Roles         []string
	Labels        map[string]string
	Token         string
	// Coordinator marks a node that also hosts a coordinator; its NATS
	// client port and raft port are advertised in gossip.
	Coordinator bool
	NATSPort    int
	RaftPort    int
	RoutePort   int
	// DataPort is the data endpoint's port (image pieces are served
	// there); 0 picks a free one. UploadLimit caps what it serves, in
	// bytes per second; 0 means no cap. DownloadConcurrency bounds the
	// piece requests it has out (0: DefaultDownloadConcurrency).
	DataPort            int
	UploadLimit         int64
	DownloadConcurrency int
	// MirrorAddr is where the node registry mirror listens (host:port);
	// empty runs none. CertsDir and ContainerdAddress are where images
	// steps write containerd hosts files and import images (defaults
	// DefaultCertsDir, DefaultContainerdAddress).
	MirrorAddr        string
	CertsDir          string
	ContainerdAddress string
	Fast              bool // short gossip timers for a lab on one machine
	Log               *slog.Logger

	// Media is an OCI image layout on the media this node was installed
	// from (<media>/drove/image): at start its blobs are verified into the
	// node's store, which the swarm then serves (media.go). Empty: none.
	Media string
}

// Agent is the node daemon: gossip membership, a NATS connection to the
// coordinators, and the step executor.
type Agent struct {
	cfg    Config
	id     string
	log    *slog.Logger
	facts  Facts
	gossip *Gossip
	exec   *Executor
	data   *DataServer
	apilb  *APILBAction // the node-local apiserver load balancer

	mu     sync.Mutex
	nc     *nats.Conn
	swarm  *Swarm
	mirror *NodeMirror // nil until Run started it
	// mediaDone is closed once the media import (Config.Media) has ended,
	// at once without media; mediaRefused is the count of refused blobs
	// it gossips ("" until then).
	mediaDone    chan struct{}
	mediaRefused string
}

// New prepares an agent: its identity, facts, gossip (not yet joined) and
// executor journal.
func New(cfg Config) (*Agent, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if _, err := clusterauth.CheckToken(cfg.Token); err != nil {
		return nil, err
	}
	id, err := loadNodeID(cfg.DataDir, cfg.Name)
	if err != nil {
		return nil, err
	}
	a := &Agent{cfg: cfg, id: id, log: cfg.Log.With("node", id), facts: GatherFacts(), mediaDone: make(chan struct{})}
	if cfg.Media == "" {
		close(a.mediaDone)
	}
	if cfg.AdvertiseAddr == "" {
		a.cfg.AdvertiseAddr = cfg.BindAddr
	}
	a.log.Info("agent starting", "hostname", a.facts.Hostname, "os", a.facts.OS, "arch", a.facts.Arch,
		"cpus", a.facts.CPUs, "memoryMiB", a.facts.MemoryMiB, "roles", cfg.Roles)
	actions := Builtins()
	actions.Register("shell", Shell{DataDir: cfg.DataDir})
	actions.Register("write-file", WriteFile{DataDir: cfg.DataDir})
	actions.Register(protocol.ActionDistribute, a.afterMedia(DistributeAction{Swarm: a.currentSwarm}))
	actions.Register(ActionRender, RenderAction{DataDir: cfg.DataDir})
	a.apilb = NewAPILBAction(cfg.DataDir, a.log)
	actions.Register(ActionAPILB, a.apilb)
	actions.Register(ActionImages, ImagesAction{DataDir: cfg.DataDir, Mirror: a.mirrorAddr,
		CertsDir: cfg.CertsDir, ContainerdAddress: cfg.ContainerdAddress})
	a.exec, err = OpenExecutor(filepath.Join(cfg.DataDir, "journal.log"), id, actions, a.log)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	a.data, err = StartDataServer(ctx, DataConfig{Name: id, Host: cfg.BindAddr, Port: cfg.DataPort, Token: cfg.Token}, a.log)
	cancel()
	if err != nil {
		a.exec.Close()
		return nil, err
	}
	a.gossip, err = NewGossip(GossipConfig{
		NodeID: id, BindAddr: cfg.BindAddr, BindPort: cfg.GossipPort,
		AdvertiseAddr: a.cfg.AdvertiseAddr, Token: cfg.Token, Fast: cfg.Fast, Meta: a.member(),
	}, a.log)
	if err != nil {
		a.data.Shutdown()
		a.exec.Close()
		return nil, err
	}
	return a, nil
}

// ID is the node's stable ID.
func (a *Agent) ID() string { return a.id }

// Gossip is the agent's membership view (coordinators read it).
func (a *Agent) Gossip() *Gossip { return a.gossip }

// Facts are what the agent learned about its machine at start.
func (a *Agent) Facts() Facts { return a.facts }

func (a *Agent) member() protocol.Member {
	return protocol.Member{
		ID: a.id, Name: a.cfg.Name, Address: a.cfg.AdvertiseAddr, Roles: a.cfg.Roles, Labels: a.labels(),
		Arch: a.facts.Arch, OS: a.facts.OS, Version: version.String(), State: "alive",
		Coord: a.cfg.Coordinator, NATSPort: a.cfg.NATSPort, RaftPort: a.cfg.RaftPort, RoutePort: a.cfg.RoutePort,
		GossipPort: a.cfg.GossipPort, DataPort: a.data.Port(),
	}
}

// Data is the agent's data endpoint.
func (a *Agent) Data() *DataServer { return a.data }

// currentSwarm is the agent's swarm, nil until Run has connected.
func (a *Agent) currentSwarm() *Swarm {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.swarm
}

// mirrorAddr is where the node mirror serves, empty when it does not.
func (a *Agent) mirrorAddr() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.mirror == nil {
		return ""
	}
	return a.mirror.Addr()
}

// Run joins the cluster, connects to the coordinators and serves steps
// until ctx ends; then it leaves gossip gracefully and closes everything.
func (a *Agent) Run(ctx context.Context) error {
	defer a.exec.Close()
	defer a.data.Shutdown()
	defer a.gossip.Shutdown()
	// The load balancer an apilb step left running serves again at once:
	// kubelets on this node reach their apiserver through it.
	defer a.apilb.Close()
	if err := a.apilb.Resume(ctx); err != nil {
		a.log.Error("apiserver load balancer not resumed", "err", err)
	}
	if a.cfg.MirrorAddr != "" {
		// Not fatal: the node works without it, and images steps say so.
		if m, err := StartNodeMirror(a.cfg.MirrorAddr, a.cfg.DataDir, a.log); err != nil {
			a.log.Error("node registry mirror not started", "err", err)
		} else {
			defer m.Close()
			a.mu.Lock()
			a.mirror = m
			a.mu.Unlock()
		}
	}
	if a.cfg.Media != "" {
		// Beside the join: steps that need the media's blobs wait for it
		// (afterMedia), nothing else does.
		mctx, stop := context.WithCancel(ctx)
		go a.importMedia(mctx)
		defer func() { stop(); <-a.mediaDone }()
	}
	if seeds := a.joinSeeds(); len(seeds) > 0 {
		go func() {
			n, err := a.gossip.Join(ctx, seeds)
			if err != nil && ctx.Err() == nil {
				a.log.Error("join cluster", "seeds", seeds, "err", err)
				return
			}
			a.log.Info("joined cluster", "contacted", n)
		}()
	}
	go a.rememberPeers(ctx)
	nc, err := a.connect(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return a.leave()
		}
		return err
	}
	defer nc.Close()
	sw, err := a.startSwarm(nc)
	if err != nil {
		return err
	}
	// Steps stop first (a distribute step is then interrupted, not failed),
	// then the swarm.
	defer sw.Close()
	defer a.exec.Close()
	sub, err := nc.Subscribe(protocol.NodeStepSubject(a.id), func(m *nats.Msg) { go a.handleStep(ctx, m) })
	if err != nil {
		return fmt.Errorf("subscribe to steps: %w", err)
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(); err != nil {
		return fmt.Errorf("subscribe to steps: %w", err)
	}
	a.log.Info("ready for steps", "subject", protocol.NodeStepSubject(a.id))
	a.hello(nc)
	a.followGossip(ctx, nc)
	return a.leave()
}

// hello announces this agent on a new connection, so the leader re-sends
// at once any step it had out to the agent's previous connection. (The
// client library re-subscribes before it reports the reconnect.)
func (a *Agent) hello(nc *nats.Conn) {
	b, err := protocol.Encode(&protocol.NodeHello{Node: a.member()})
	if err == nil {
		err = nc.Publish(protocol.HelloSubject, b)
	}
	if err != nil {
		a.log.Warn("announce to coordinators", "err", err)
	}
}

// followGossip moves the NATS connection off a coordinator that gossip
// declares dead, until ctx ends. NATS pings notice a silent server only
// after a few seconds; gossip (and, in a partition, the other side of it)
// usually knows first.
func (a *Agent) followGossip(ctx context.Context, nc *nats.Conn) {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if !nc.IsConnected() {
			continue
		}
		server := nc.ConnectedAddr()
		for _, m := range a.gossip.Members() {
			if m.Coord && m.NATSPort > 0 && (m.State == "dead" || m.State == "left") &&
				net.JoinHostPort(m.Address, strconv.Itoa(m.NATSPort)) == server {
				a.log.Warn("gossip reports our coordinator gone; reconnecting elsewhere", "coordinator", m.ID, "state", m.State)
				if err := nc.ForceReconnect(); err != nil {
					a.log.Warn("reconnect", "err", err)
				}
				break
			}
		}
	}
}

func (a *Agent) leave() error {
	if err := a.gossip.Leave(2 * time.Second); err != nil {
		a.log.Warn("leave cluster", "err", err)
	}
	return nil
}

// connect waits until gossip knows a coordinator's NATS endpoint and
// connects with the agent credentials. The client then follows the NATS
// cluster by itself (servers announce each other), reconnecting forever.
func (a *Agent) connect(ctx context.Context) (*nats.Conn, error) {
	user, pass := clusterauth.NATSAgent(a.cfg.Token)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var lastErr error
	for {
		if urls := a.coordinatorURLs(); len(urls) > 0 {
			nc, err := nats.Connect(strings.Join(urls, ","),
				nats.Name("drove-agent "+a.id),
				nats.UserInfo(user, pass),
				nats.MaxReconnects(-1),
				nats.ReconnectWait(200*time.Millisecond),
				nats.PingInterval(2*time.Second),
				nats.MaxPingsOutstanding(2),
				nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
					if err != nil {
						a.log.Warn("lost connection to coordinators", "err", err)
					}
				}),
				nats.ReconnectHandler(func(c *nats.Conn) {
					a.log.Info("reconnected to coordinators", "server", c.ConnectedUrlRedacted())
					a.hello(c)
				}),
				nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { a.log.Warn("nats", "err", err) }),
			)
			if err == nil {
				a.mu.Lock()
				a.nc = nc
				a.mu.Unlock()
				a.log.Info("connected to coordinators", "server", nc.ConnectedUrlRedacted())
				return nc, nil
			}
			if errors.Is(err, nats.ErrAuthorization) {
				a.log.Error("coordinators refused the agent's credentials: wrong cluster token?", "err", err)
			}
			lastErr = err
		}
		select {
		case <-ctx.Done():
			if lastErr == nil {
				lastErr = ctx.Err()
			}
			return nil, fmt.Errorf("connect to coordinators: %w", lastErr)
		case <-tick.C:
		}
	}
}

func (a *Agent) coordinatorURLs() []string {
	var urls []string
	for _, m := range a.gossip.Members() {
		if m.Coord && m.NATSPort > 0 && m.State == "alive" {
			urls = append(urls, "nats://"+m.Address+":"+strconv.Itoa(m.NATSPort))
		}
	}
	sort.Strings(urls)
	return urls
}

// replyMargin is how long before the leader's deadline an agent answers
// "still running".
const replyMargin = 500 * time.Millisecond

// handleStep runs one dispatch and replies with its result. Only
// coordinators may publish on a node's step subject (NATS permissions), and
// the executor fences stale leaders by term.
func (a *Agent) handleStep(ctx context.Context, m *nats.Msg) {
	var d protocol.StepDispatch
	var reply protocol.Message
	if err := protocol.DecodeAs(m.Data, &d); err != nil {
		reply = protocol.Errorf(protocol.CodeBadRequest, "%v", err)
	} else {
		hctx := ctx
		if d.WaitMs > 0 {
			// Answer "running" a little before the leader stops waiting.
			wait := time.Duration(d.WaitMs)*time.Millisecond - replyMargin
			var cancel context.CancelFunc
			hctx, cancel = context.WithTimeout(ctx, max(wait, replyMargin))
			defer cancel()
		}
		reply = a.exec.Handle(hctx, &d)
	}
	b, err := protocol.Encode(reply)
	if err != nil {
		a.log.Error("encode step result", "err", err)
		return
	}
	if err := m.Respond(b); err != nil {
		a.log.Warn("reply to step", "step", d.StepID, "err", err)
	}
}
