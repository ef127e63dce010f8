package cli

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"sigs.k8s.io/yaml"

	"github.com/drove-project/drove/agent"
	"github.com/drove-project/drove/coordinator"
	"github.com/drove-project/drove/coordinator/netinstall"
	"github.com/drove-project/drove/internal/clusterauth"
)

// agentOptions are `drove agent`'s settings, from flags and an optional YAML
// file (flags win). JSON tags are the file's keys.
type agentOptions struct {
	Config          string            `json:"-"`
	DataDir         string            `json:"dataDir,omitempty"`
	Name            string            `json:"name,omitempty"`
	Bind            string            `json:"bind,omitempty"`
	Advertise       string            `json:"advertise,omitempty"`
	GossipPort      int               `json:"gossipPort,omitempty"`
	Join            []string          `json:"join,omitempty"`
	Roles           []string          `json:"roles,omitempty"`
	Labels          map[string]string `json:"labels,omitempty"`
	Token           string            `json:"token,omitempty"`
	TokenFile       string            `json:"tokenFile,omitempty"`
	Coordinator     *bool             `json:"coordinator,omitempty"`
	BootstrapExpect int               `json:"bootstrapExpect,omitempty"`
	NATSPort        int               `json:"natsPort,omitempty"`
	RoutePort       int               `json:"routePort,omitempty"`
	RaftPort        int               `json:"raftPort,omitempty"`
	DataPort        int               `json:"dataPort,omitempty"`
	APIPort         int               `json:"apiPort,omitempty"`
	UploadLimit     string            `json:"uploadLimit,omitempty"`
	DownloadConc    int               `json:"downloadConcurrency,omitempty"`
	Fast            bool              `json:"fast,omitempty"`
	RemoveDeadAfter string            `json:"removeDeadCoordinatorsAfter,omitempty"`
	MirrorAddr      string            `json:"mirrorAddr,omitempty"`
	CertsDir        string            `json:"containerdCertsDir,omitempty"`
	Containerd      string            `json:"containerdAddress,omitempty"`
	// Media is the OCI image layout on the boot media this node was
	// installed from (drove agent install --media writes it).
	Media string `json:"media,omitempty"`

	labels          []string
	coordinator     bool
	removeDeadAfter time.Duration
	uploadLimit     int64 // bytes per second, 0: none
}

func newAgentCmd(g *Globals) *cobra.Command { return agentCmd(g, &agentOptions{}) }

// agentCmd builds the command around o, so tests can read what flags set.
func agentCmd(g *Globals, o *agentOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run the node agent (and, on masters, a coordinator)",
		Long: `agent runs drove's daemon on a node. It joins the cluster's gossip (--join
any member's address), connects to the coordinators over NATS and runs the
steps they send, keeping a journal so no step runs twice.

With --coordinator (the default for role master) the same process also runs
a coordinator: an embedded NATS server clustered with the other
coordinators, and a raft member. --bootstrap-expect N makes a new cluster
wait for N coordinators before electing a leader.

Every member must share the cluster token (--token or --token-file); a node
with a wrong or missing token cannot join gossip, NATS or raft.`,
		Example: `  drove agent --roles master --bootstrap-expect 3 --token-file /etc/drove/token --join 10.0.0.1
  drove agent --roles node --labels zone=a --token-file /etc/drove/token --join 10.0.0.1,10.0.0.2`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.complete(g, cmd.Flags()); err != nil {
				return err
			}
			return runAgent(cmd.Context(), g, o)
		},
	}
	cmd.AddCommand(newAgentInstallCmd(g), newAgentUninstallCmd(g))
	f := cmd.Flags()
	f.StringVar(&o.Config, "config", "", "YAML file with these settings (flags override it)")
	f.StringVar(&o.Name, "name", "", "node ID on first start (default: host name plus a suffix)")
	f.StringVar(&o.Bind, "bind", "0.0.0.0", "address to listen on")
	f.StringVar(&o.Advertise, "advertise", "", "address other nodes reach this one at (default: the bind address, or the first non-loopback one)")
	f.IntVar(&o.GossipPort, "gossip-port", 7946, "gossip port (TCP and UDP)")
	f.StringSliceVar(&o.Join, "join", nil, "gossip addresses of members to join (host or host:port)")
	f.StringSliceVar(&o.Roles, "roles", []string{"node"}, "roles of this node: master, node, or any custom role")
	f.StringSliceVar(&o.labels, "labels", nil, "labels k=v (repeatable or comma-separated)")
	f.StringVar(&o.Token, "token", "", "cluster join token (prefer --token-file)")
	f.StringVar(&o.TokenFile, "token-file", "", "file holding the cluster join token")
	f.BoolVar(&o.coordinator, "coordinator", false, "also run a coordinator (default: on for role master)")
	f.IntVar(&o.BootstrapExpect, "bootstrap-expect", 0, "coordinators to wait for before bootstrapping a new cluster")
	f.IntVar(&o.NATSPort, "nats-port", 4222, "coordinator: NATS client port")
	f.IntVar(&o.RoutePort, "route-port", 6222, "coordinator: NATS cluster port")
	f.IntVar(&o.RaftPort, "raft-port", 7947, "coordinator: raft port")
	f.IntVar(&o.DataPort, "data-port", 7950, "data endpoint port: peers fetch image pieces from this node here")
	f.IntVar(&o.APIPort, "api-port", netinstall.DefaultPort, "coordinator: HTTPS install API port (GET /install.sh, /dl/drove-<os>-<arch>); 0 turns it off")
	f.StringVar(&o.UploadLimit, "upload-limit", "", "cap what this node serves to peers, e.g. 100mbit, 12MiB (per second; default: no cap)")
	f.IntVar(&o.DownloadConc, "download-concurrency", agent.DefaultDownloadConcurrency, "image piece requests (1 MiB each at most) this node keeps out to its peers at once")
	f.StringVar(&o.MirrorAddr, "mirror-addr", agent.DefaultMirrorAddr, "node registry mirror: serves the container images cached in cluster images to this node's containerd (host:port; off disables it)")
	f.StringVar(&o.CertsDir, "containerd-certs-dir", agent.DefaultCertsDir, "containerd hosts directory where images steps point registries at the node mirror")
	f.StringVar(&o.Containerd, "containerd-address", agent.DefaultContainerdAddress, "containerd socket images steps import into")
	f.StringVar(&o.Media, "media", "", "OCI image layout on the media this node was installed from : its blobs are verified into the local store at start and served to the swarm, so the node seeds the image to the others")
	f.BoolVar(&o.Fast, "fast", false, "short gossip and raft timers (labs on one machine)")
	f.StringVar(&o.RemoveDeadAfter, "remove-dead-coordinators-after", "5m", "coordinator: drop a coordinator from raft after it has been dead this long (while most are alive); 0 never")
	return cmd
}

// complete merges the config file under the flags and checks the result.
func (o *agentOptions) complete(g *Globals, flags *pflag.FlagSet) error {
	if o.Config != "" {
		b, err := os.ReadFile(o.Config)
		if err != nil {
			return err
		}
		var file agentOptions
		if err := yaml.UnmarshalStrict(b, &file); err != nil {
			return usageErrorf("config %s: %v", o.Config, err)
		}
		o.mergeFile(&file, flags)
	}
	if o.DataDir == "" {
		o.DataDir = g.DataDir
	}
	for _, l := range o.labels {
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" {
			return usageErrorf("--labels %q: want key=value", l)
		}
		if o.Labels == nil {
			o.Labels = map[string]string{}
		}
		o.Labels[k] = v
	}
	if o.TokenFile != "" {
		b, err := os.ReadFile(o.TokenFile)
		if err != nil {
			return fmt.Errorf("read token file: %w", err)
		}
		o.Token = strings.TrimSpace(string(b))
	}
	if o.Token == "" {
		o.Token = os.Getenv("DROVE_TOKEN")
	}
	if o.Token == "" {
		return usageErrorf("no cluster token: use --token-file FILE (make one with `drove token generate`)")
	}
	if o.Coordinator == nil {
		c := o.coordinator || (!flags.Changed("coordinator") && hasRole(o.Roles, "master"))
		if flags.Changed("coordinator") {
			c = o.coordinator
		}
		o.Coordinator = &c
	}
	if o.DownloadConc < 1 {
		return usageErrorf("--download-concurrency %d: want at least 1", o.DownloadConc)
	}
	if o.UploadLimit != "" {
		n, err := ParseRate(o.UploadLimit)
		if err != nil {
			return usageErrorf("--upload-limit: %v", err)
		}
		o.uploadLimit = n
	}
	if d, err := time.ParseDuration(o.RemoveDeadAfter); err != nil || d < 0 {
		return usageErrorf("--remove-dead-coordinators-after %q: want a duration such as 5m, or 0", o.RemoveDeadAfter)
	} else {
		o.removeDeadAfter = d
	}
	if o.Advertise == "" {
		o.Advertise = o.Bind
		if ip := net.ParseIP(o.Bind); ip == nil || ip.IsUnspecified() {
			o.Advertise = firstAddress()
		}
	}
	return nil
}

// mergeFile takes each setting from the file unless its flag was given.
func (o *agentOptions) mergeFile(file *agentOptions, flags *pflag.FlagSet) {
	set := func(flag string, apply func()) {
		if !flags.Changed(flag) {
			apply()
		}
	}
	if file.DataDir != "" {
		o.DataDir = file.DataDir
	}
	set("name", func() { pick(&o.Name, file.Name) })
	set("bind", func() { pick(&o.Bind, file.Bind) })
	set("advertise", func() { pick(&o.Advertise, file.Advertise) })
	set("gossip-port", func() { pickInt(&o.GossipPort, file.GossipPort) })
	set("join", func() {
		if file.Join != nil {
			o.Join = file.Join
		}
	})
	set("roles", func() {
		if file.Roles != nil {
			o.Roles = file.Roles
		}
	})
	set("labels", func() { o.Labels = file.Labels })
	set("token", func() { pick(&o.Token, file.Token) })
	set("token-file", func() { pick(&o.TokenFile, file.TokenFile) })
	set("coordinator", func() { o.Coordinator = file.Coordinator })
	set("bootstrap-expect", func() { pickInt(&o.BootstrapExpect, file.BootstrapExpect) })
	set("nats-port", func() { pickInt(&o.NATSPort, file.NATSPort) })
	set("route-port", func() { pickInt(&o.RoutePort, file.RoutePort) })
	set("raft-port", func() { pickInt(&o.RaftPort, file.RaftPort) })
	set("data-port", func() { pickInt(&o.DataPort, file.DataPort) })
	set("api-port", func() { pickInt(&o.APIPort, file.APIPort) })
	set("upload-limit", func() { pick(&o.UploadLimit, file.UploadLimit) })
	set("download-concurrency", func() { pickInt(&o.DownloadConc, file.DownloadConc) })
	set("fast", func() { o.Fast = o.Fast || file.Fast })
	set("remove-dead-coordinators-after", func() { pick(&o.RemoveDeadAfter, file.RemoveDeadAfter) })
	set("mirror-addr", func() { pick(&o.MirrorAddr, file.MirrorAddr) })
	set("containerd-certs-dir", func() { pick(&o.CertsDir, file.CertsDir) })
	set("containerd-address", func() { pick(&o.Containerd, file.Containerd) })
	set("media", func() { pick(&o.Media, file.Media) })
}

func pick(dst *string, v string) {
	if v != "" {
		*dst = v
	}
}

func pickInt(dst *int, v int) {
	if v != 0 {
		*dst = v
	}
}

func hasRole(roles []string, r string) bool {
	for _, x := range roles {
		if x == r {
			return true
		}
	}
	return false
}

func firstAddress() string {
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() && ipn.IP.To4() != nil {
			return ipn.IP.String()
		}
	}
	return "127.0.0.1"
}

func runAgent(ctx context.Context, g *Globals, o *agentOptions) error {
	log := g.Log
	cfg := agent.Config{
		DataDir: o.DataDir, Name: o.Name, BindAddr: o.Bind, AdvertiseAddr: o.Advertise, GossipPort: o.GossipPort,
		Join: withDefaultPort(o.Join, 7946), Roles: o.Roles, Labels: o.Labels, Token: o.Token,
		Coordinator: *o.Coordinator, Fast: o.Fast, Log: log,
		DataPort: o.DataPort, UploadLimit: o.uploadLimit, DownloadConcurrency: o.DownloadConc,
		CertsDir: o.CertsDir, ContainerdAddress: o.Containerd,
		Media: o.Media,
	}
	if o.MirrorAddr != "off" {
		cfg.MirrorAddr = o.MirrorAddr
	}
	if *o.Coordinator {
		cfg.NATSPort, cfg.RaftPort, cfg.RoutePort = o.NATSPort, o.RaftPort, o.RoutePort
	}
	a, err := agent.New(cfg)
	if err != nil {
		return err
	}
	if !*o.Coordinator {
		return a.Run(ctx)
	}
	ns, err := coordinator.StartNATS(ctx, coordinator.NATSConfig{
		ServerName: a.ID(), Host: o.Bind, Port: o.NATSPort, ClusterHost: o.Bind, ClusterPort: o.RoutePort,
		Token: o.Token,
	}, log)
	if err != nil {
		return err
	}
	defer ns.Shutdown()
	nc, err := connectLocal(ctx, ns.ClientURL(), o.Token, a.ID())
	if err != nil {
		return err
	}
	defer nc.Close()
	// Routes are added by reloading the server's configuration; start that
	// only once our own connection is up.
	go followRoutes(ctx, a, ns, o.RoutePort)
	stopInstall, err := startNetInstall(ctx, g, o, a)
	if err != nil {
		return err
	}
	defer stopInstall()
	coord, err := coordinator.Start(coordinator.Config{
		NodeID: a.ID(), DataDir: filepath.Join(o.DataDir, "coordinator"),
		RaftBind: net.JoinHostPort(o.Bind, strconv.Itoa(o.RaftPort)), RaftAdvertise: net.JoinHostPort(o.Advertise, strconv.Itoa(o.RaftPort)),
		BootstrapExpect: o.BootstrapExpect, Token: o.Token, Fast: o.Fast, Log: log,
		RemoveDeadAfter: o.removeDeadAfter,
		Members:         a.Gossip(), NATS: nc, Traffic: ns.Traffic,
	})
	if err != nil {
		return err
	}
	coordDone := make(chan error, 1)
	go func() { coordDone <- coord.Run(ctx) }()
	err = a.Run(ctx)
	<-coordDone
	return err
}

// connectLocal connects the coordinator to its own NATS server. A
// configuration reload (adding a route) can refuse a connection made at
// that very moment, so it tries for a few seconds.
func connectLocal(ctx context.Context, url, token, id string) (*nats.Conn, error) {
	user, pass := clusterauth.NATSCoordinator(token)
	deadline := time.Now().Add(10 * time.Second)
	for {
		nc, err := nats.Connect(url, nats.UserInfo(user, pass), nats.Name("drove-coordinator "+id), nats.MaxReconnects(-1))
		if err == nil {
			return nc, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, fmt.Errorf("connect to the local NATS server: %w", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// followRoutes points the NATS server at every coordinator gossip knows.
func followRoutes(ctx context.Context, a *agent.Agent, ns *coordinator.NATSServer, defaultPort int) {
	known := map[string]bool{}
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		var add []string
		for _, m := range a.Gossip().Members() {
			if !m.Coord || m.ID == a.ID() || m.State != "alive" {
				continue
			}
			port := m.RoutePort
			if port == 0 {
				port = defaultPort
			}
			addr := net.JoinHostPort(m.Address, strconv.Itoa(port))
			if !known[addr] {
				known[addr] = true
				add = append(add, addr)
			}
		}
		if len(add) > 0 {
			if err := ns.AddRoutes(add); err != nil {
				for _, r := range add {
					delete(known, r)
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func withDefaultPort(addrs []string, port int) []string {
	out := make([]string, 0, len(addrs))
	for _, a := range addrs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			a = net.JoinHostPort(a, strconv.Itoa(port))
		}
		out = append(out, a)
	}
	return out
}
