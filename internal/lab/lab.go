// Package lab runs a cluster of drove agents as separate processes on this
// machine: each on its own loopback address (127.0.0.x) with its own data
// directory, or, as root, each in its own network namespace (netns.go) so
// links can be cut and capped, next to bare hosts that run nothing until
// something installs an agent there (bare.go). `drove lab` and the
// multi-node tests use it alike.
package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/drove-project/drove/internal/atomicfile"
	"github.com/drove-project/drove/internal/clusterauth"
	"github.com/drove-project/drove/protocol"
)

// MirrorPort is the node registry mirror's port: on 127.0.0.1 in netns
// mode (each namespace has its own loopback), on the node's address
// otherwise.
const MirrorPort = 5050

func mirrorAddr(n *Node) string {
	host := n.Addr
	if n.NetNS != "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, strconv.Itoa(MirrorPort))
}

// Options describe a lab.
type Options struct {
	Dir     string // lab state: token, lab.json, one directory per node
	Binary  string // the drove binary to run
	Masters int    // coordinators
	Nodes   int    // plain agents
	// FirstIP is the last octet of the first node's address (127.0.0.x,
	// or 10.213.k.x in netns mode).
	FirstIP int
	// ExtraArgs are added to every agent's command line.
	ExtraArgs []string
	// Env (KEY=VALUE) is added to every agent's environment, before
	// NodeEnv.
	Env []string
	// Private are absolute paths (files or directories: /etc/hosts,
	// /etc/kubernetes, /root/.kube) each node sees a copy of its own, as
	// separate machines would: the agent runs in a mount namespace where
	// <node dir>/private/<path> is bind-mounted over each. A directory
	// starts empty, a file as a copy of the host's. Netns mode only
	// (mount namespaces need root); mount points missing on the host are
	// created there (empty).
	Private []string
	// NodeArgs are added to the named nodes' agent command lines, after
	// ExtraArgs (a node's own containerd socket).
	NodeArgs map[string][]string
	// NodeEnv adds environment variables (KEY=VALUE) to the named nodes'
	// processes: tests use it for fault switches.
	NodeEnv map[string][]string
	// TimerSlack, when set, is every agent's timer slack (prctl
	// PR_SET_TIMERSLACK; Linux's default is 50µs): timers may fire that
	// much late, so the kernel can batch the wakeups of the agents'
	// runtimes, which poll every 20µs while a syscall runs long.
	TimerSlack time.Duration
	// NetNS runs each node in its own network namespace behind a bridge
	// (root only); see netns.go.
	NetNS bool
	// Uplink caps every node's link at this tc rate ("100mbit"); netns
	// mode only.
	Uplink string
	// Bare adds hosts "h1".."hN" after the agents: a namespace, link and
	// address each, with their own copies of Private and of the paths an
	// agent install writes, but nothing running (bare.go). Netns mode
	// only.
	Bare int
}

// Node is one agent process of the lab.
type Node struct {
	Name   string   `json:"name"`
	Addr   string   `json:"addr"`
	Master bool     `json:"master"`
	PID    int      `json:"pid"`
	Args   []string `json:"args"`
	Env    []string `json:"env,omitempty"`
	// TimerSlack is Options.TimerSlack, kept for restarts.
	TimerSlack time.Duration `json:"timerSlack,omitempty"`
	DataDir    string        `json:"dataDir"`
	Log        string        `json:"log"`
	// NetNS is the node's network namespace and Veth the root-namespace
	// end of its link (netns mode only).
	NetNS string `json:"netns,omitempty"`
	Veth  string `json:"veth,omitempty"`
	// Private are the paths this node has its own copy of (Options.Private).
	Private []string `json:"private,omitempty"`
	// Bare marks a host with no agent of the lab's (Options.Bare): PID,
	// Args and Env are empty, and Log is where an agent pushed there
	// with sshpush's defaults would log.
	Bare bool `json:"bare,omitempty"`
}

// Lab is a running (or described) lab; its state lives in Dir/lab.json.
type Lab struct {
	Dir    string  `json:"dir"`
	Binary string  `json:"binary"`
	Token  string  `json:"token"`
	Nodes  []*Node `json:"nodes"`
	// Net is the lab's network in netns mode; nil on loopback.
	Net *Network `json:"net,omitempty"`
}

// Ports every lab node uses on its own address.
const (
	GossipPort = 7946
	NATSPort   = 4222
	RoutePort  = 6222
	RaftPort   = 7947
	DataPort   = 7950
)

// Up starts the lab's processes and returns once each has been launched
// (use WaitReady to wait for a leader and live members).
func Up(o Options) (*Lab, error) {
	if o.Masters < 1 {
		return nil, errors.New("a lab needs at least one master")
	}
	if o.FirstIP == 0 {
		o.FirstIP = 11
	}
	if o.Bare < 0 {
		return nil, errors.New("a negative number of bare hosts")
	}
	if o.Bare > 0 && !o.NetNS {
		return nil, fmt.Errorf("bare hosts need netns mode: %w", ErrNotNetNS)
	}
	if o.FirstIP+o.Masters+o.Nodes+o.Bare > 254 {
		return nil, errors.New("too many nodes for one /24 (127.0.0.x, or 10.213.k.x in netns mode)")
	}
	if len(o.Private) > 0 && !o.NetNS {
		return nil, fmt.Errorf("private paths need netns mode: %w", ErrNotNetNS)
	}
	for _, p := range o.Private {
		if !filepath.IsAbs(p) || filepath.Clean(p) != p || p == "/" {
			return nil, fmt.Errorf("private path %q: want a clean absolute path below /", p)
		}
	}
	if o.Uplink != "" && !o.NetNS {
		return nil, fmt.Errorf("an uplink limit needs netns mode: %w", ErrNotNetNS)
	}
	if o.NetNS {
		if o.FirstIP < 2 {
			return nil, errors.New("netns mode: FirstIP must be at least 2 (.1 is the bridge)")
		}
		if err := checkNetNS(os.Geteuid(), exec.LookPath, o.Uplink != ""); err != nil {
			return nil, err
		}
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(dir, "lab.json")); err == nil {
		return nil, fmt.Errorf("a lab already runs in %s: `drove lab down` first", dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	token, err := clusterauth.GenerateToken()
	if err != nil {
		return nil, err
	}
	tokenFile := filepath.Join(dir, "token")
	if err := atomicfile.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		return nil, err
	}
	l := &Lab{Dir: dir, Binary: o.Binary, Token: token}
	addr := func(i int) string { return fmt.Sprintf("127.0.0.%d", o.FirstIP+i) }
	if o.NetNS {
		if l.Net, err = newNetwork(o.Uplink); err != nil {
			return nil, err
		}
		addr = func(i int) string { return l.Net.host(o.FirstIP + i).String() }
	}
	seed := addr(0)
	for i := 0; i < o.Masters+o.Nodes; i++ {
		n := &Node{Addr: addr(i), Master: i < o.Masters}
		role := "node"
		if n.Master {
			n.Name, role = fmt.Sprintf("m%d", i+1), "master"
		} else {
			n.Name = fmt.Sprintf("n%d", i-o.Masters+1)
		}
		if l.Net != nil {
			n.NetNS, n.Veth = l.Net.Namespace(n.Name), l.Net.veth(n.Name)
		}
		n.DataDir = filepath.Join(dir, n.Name)
		n.Log = filepath.Join(n.DataDir, "agent.log")
		n.Args = []string{"--data-dir", n.DataDir, "agent", "--name", n.Name, "--bind", n.Addr, "--roles", role,
			"--token-file", tokenFile, "--join", seed, "--fast",
			"--gossip-port", strconv.Itoa(GossipPort), "--nats-port", strconv.Itoa(NATSPort),
			"--route-port", strconv.Itoa(RoutePort), "--raft-port", strconv.Itoa(RaftPort),
			"--data-port", strconv.Itoa(DataPort),
			// Each node's own containerd hosts dir, never the host's.
			"--containerd-certs-dir", filepath.Join(n.DataDir, "certs.d"),
			"--mirror-addr", mirrorAddr(n)}
		if n.Master {
			n.Args = append(n.Args, "--bootstrap-expect", strconv.Itoa(o.Masters))
		}
		n.Args = append(n.Args, o.ExtraArgs...)
		n.Args = append(n.Args, o.NodeArgs[n.Name]...)
		n.Env = append(slices.Clone(o.Env), o.NodeEnv[n.Name]...)
		n.TimerSlack = o.TimerSlack
		n.Private = slices.Clone(o.Private)
		l.Nodes = append(l.Nodes, n)
	}
	for i := range o.Bare {
		n := newBare(dir, i+1, addr(o.Masters+o.Nodes+i), o.Private)
		n.NetNS, n.Veth = l.Net.Namespace(n.Name), l.Net.veth(n.Name)
		l.Nodes = append(l.Nodes, n)
	}
	if l.Net != nil {
		if err := l.upNetwork(); err != nil {
			return nil, err
		}
	}
	for _, n := range l.Nodes {
		if n.Bare {
			continue
		}
		if err := l.start(n); err != nil {
			l.Down()
			return nil, err
		}
	}
	return l, l.save()
}

// upNetwork records the lab (so `lab down` can clean up whatever happens
// next) and creates its namespaces, links and bridge.
func (l *Lab) upNetwork() error {
	if err := l.Net.checkNames(l.Nodes); err != nil {
		return err
	}
	if err := l.save(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), netnsTimeout)
	defer cancel()
	if err := l.Net.create(ctx, l.Nodes); err != nil {
		if derr := l.Down(); derr != nil {
			return errors.Join(err, derr)
		}
		return err
	}
	return nil
}

// Load reads a lab's state from dir.
func Load(dir string) (*Lab, error) {
	b, err := os.ReadFile(filepath.Join(dir, "lab.json"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no lab in %s", dir)
		}
		return nil, err
	}
	var l Lab
	if err := json.Unmarshal(b, &l); err != nil {
		return nil, fmt.Errorf("read %s/lab.json: %w", dir, err)
	}
	return &l, nil
}

func (l *Lab) save() error {
	b, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(l.Dir, "lab.json"), b, 0o600)
}

// Node finds a node by name.
func (l *Lab) Node(name string) (*Node, error) {
	for _, n := range l.Nodes {
		if n.Name == name {
			return n, nil
		}
	}
	return nil, fmt.Errorf("no node %q in the lab", name)
}

// start launches a node's agent in its own session, logging to its log file.
func (l *Lab) start(n *Node) error {
	if err := os.MkdirAll(n.DataDir, 0o700); err != nil {
		return err
	}
	logf, err := os.OpenFile(n.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(l.Binary, n.Args...)
	if n.NetNS != "" {
		// ip netns exec execs the agent (through unshare and sh, which
		// exec too): the PID is the agent's.
		argv, err := n.inNamespaces(append([]string{l.Binary}, n.Args...))
		if err != nil {
			return fmt.Errorf("start %s: %w", n.Name, err)
		}
		cmd = exec.Command(argv[0], argv[1:]...)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if len(n.Env) > 0 {
		cmd.Env = append(os.Environ(), n.Env...)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := startWithTimerSlack(cmd, n.TimerSlack); err != nil {
		return fmt.Errorf("start %s: %w", n.Name, err)
	}
	n.PID = cmd.Process.Pid
	go cmd.Wait() // reap it if we are still around when it exits
	return nil
}

// natsURL is the client URL of a master's NATS server.
func (n *Node) natsURL() string { return fmt.Sprintf("nats://%s:%d", n.Addr, NATSPort) }

// alive reports whether n's recorded PID is still this lab's agent (a PID
// may have been reused by something else).
//
// A process still inside execve has an empty command line: read right
// after exec.Cmd.Start returned, 38 of 300 starts of the drove binary
// read empty, and in CI a one-master lab's WaitReady, called right after
// Up, failed with "no coordinator is running". So an empty one is read
// again, for up to execWait.
func (n *Node) alive() bool {
	if n.PID <= 0 {
		return false
	}
	deadline := time.Now().Add(execWait)
	for {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", n.PID))
		if err != nil {
			return false
		}
		if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", n.PID)); err == nil {
			if f := strings.Fields(string(st)); len(f) > 2 && f[2] == "Z" {
				return false
			}
		}
		if len(b) > 0 || time.Now().After(deadline) {
			return strings.Contains(string(b), n.DataDir)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// execWait bounds how long alive waits for a process's command line to
// appear (a kernel thread that took a dead agent's PID never gets one).
const execWait = 2 * time.Second

// Kill stops a node with SIGKILL (a crash).
func (l *Lab) Kill(name string) error {
	n, err := l.Node(name)
	if err != nil {
		return err
	}
	if n.Bare {
		return fmt.Errorf("kill %s: %w", name, ErrBare)
	}
	if !n.alive() {
		return fmt.Errorf("%s is not running", name)
	}
	syscall.Kill(n.PID, syscall.SIGKILL)
	waitGone(n, 5*time.Second)
	return nil
}

// Stop stops a node gracefully (SIGTERM: it leaves gossip).
func (l *Lab) Stop(name string) error {
	n, err := l.Node(name)
	if err != nil {
		return err
	}
	return stop(n)
}

func stop(n *Node) error {
	if !n.alive() {
		return nil
	}
	syscall.Kill(n.PID, syscall.SIGTERM)
	if !waitGone(n, 10*time.Second) {
		syscall.Kill(n.PID, syscall.SIGKILL)
		waitGone(n, 5*time.Second)
	}
	return nil
}

func waitGone(n *Node, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if !n.alive() {
			return true
		}
		time.Sleep(20 * time.Millisecond) // polling a process we do not own
	}
	return !n.alive()
}

// Start restarts a stopped node with the same command line.
func (l *Lab) Start(name string) error {
	n, err := l.Node(name)
	if err != nil {
		return err
	}
	if n.Bare {
		return fmt.Errorf("start %s: %w", name, ErrBare)
	}
	if n.alive() {
		return fmt.Errorf("%s is already running", name)
	}
	if err := l.start(n); err != nil {
		return err
	}
	return l.save()
}

// Down stops exactly the processes the lab started (by PID), removes the
// namespaces, links and bridge it created (netns mode), killing whatever
// still runs in them (on bare hosts: the sshd and the agents it
// installed), and removes its state file. Node directories stay for inspection. Calling it again, or
// after the processes died, is fine; if the network cannot be removed the
// state file stays, so `drove lab down` can try again.
func (l *Lab) Down() error {
	for _, n := range l.Nodes {
		stop(n)
	}
	if l.Net != nil {
		ctx, cancel := context.WithTimeout(context.Background(), netnsTimeout)
		defer cancel()
		if err := l.Net.destroy(ctx, l.Nodes); err != nil {
			return err
		}
	}
	err := os.Remove(filepath.Join(l.Dir, "lab.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// Servers are the masters' NATS URLs.
func (l *Lab) Servers() []string {
	var out []string
	for _, n := range l.Nodes {
		if n.Master {
			out = append(out, n.natsURL())
		}
	}
	return out
}

// Connect opens a client connection to the lab's coordinators.
func (l *Lab) Connect() (*nats.Conn, error) {
	user, pass := clusterauth.NATSAgent(l.Token)
	return l.connect(user, pass)
}

// connect opens a client connection to the lab's coordinators as user.
func (l *Lab) connect(user, pass string) (*nats.Conn, error) {
	return nats.Connect(strings.Join(l.Servers(), ","), nats.UserInfo(user, pass), nats.Name("drove-lab"),
		nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond), nats.RetryOnFailedConnect(true))
}

// Status asks the coordinators for the cluster's status.
func Status(ctx context.Context, nc *nats.Conn) (*protocol.Status, error) {
	return statusOn(ctx, nc, protocol.APISubject)
}

// statusOn asks for the cluster's status on subject.
func statusOn(ctx context.Context, nc *nats.Conn, subject string) (*protocol.Status, error) {
	b, _ := protocol.Encode(&protocol.StatusRequest{})
	resp, err := nc.RequestWithContext(ctx, subject, b)
	if err != nil {
		return nil, err
	}
	var st protocol.Status
	if err := protocol.DecodeAs(resp.Data, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// WaitReady polls until a leader exists and every running coordinator
// sees every running node as an alive, registered member, or ctx ends. It
// asks each coordinator: each answers from its own gossip view, and the
// views converge a moment apart, so a client that heard "ready" from one
// could next be answered by another that has not yet heard of a node.
func (l *Lab) WaitReady(ctx context.Context) (*protocol.Status, error) {
	var coords []*Node
	for _, n := range l.Nodes {
		if n.Master && n.alive() {
			coords = append(coords, n)
		}
	}
	if len(coords) == 0 {
		return nil, errors.New("lab not ready: no coordinator is running")
	}
	// As the coordinator user: only it may address one coordinator on
	// its own subject (the queue subject goes to any of them, and NATS
	// prefers one beside the client's server only once it subscribed).
	nc, err := l.connect(clusterauth.NATSCoordinator(l.Token))
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	var last error
	for {
		st, err := l.readyEverywhere(ctx, nc, coords)
		if err == nil {
			return st, nil
		}
		last = err
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("lab not ready: %v", last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// readyEverywhere asks each coordinator on its own subject and returns
// the first one's status if all of them are ready.
func (l *Lab) readyEverywhere(ctx context.Context, nc *nats.Conn, coords []*Node) (*protocol.Status, error) {
	var first *protocol.Status
	for _, n := range coords {
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		st, err := statusOn(rctx, nc, protocol.CoordinatorSubject(n.Name))
		cancel()
		if err != nil {
			return nil, fmt.Errorf("ask %s: %w", n.Name, err)
		}
		if ok, why := l.ready(st); !ok {
			return nil, fmt.Errorf("%s: %s", n.Name, why)
		}
		if first == nil {
			first = st
		}
	}
	return first, nil
}

func (l *Lab) ready(st *protocol.Status) (bool, string) {
	if st.Leader == "" {
		return false, "no leader yet"
	}
	alive := map[string]bool{}
	for _, m := range st.Members {
		if m.State == "alive" && m.Registered {
			alive[m.ID] = true
		}
	}
	for _, n := range l.Nodes {
		if n.alive() && !alive[n.Name] {
			return false, n.Name + " is not an alive, registered member yet"
		}
	}
	return true, ""
}
