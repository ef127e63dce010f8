package lab

// Network-namespace mode. Each node lives in its own network namespace
// drove-<labID>-<name>, joined by a veth pair to a Linux bridge drv<labID>
// in the root namespace. The bridge holds 10.213.<k>.1/24, so the CLI and
// tests in the root namespace reach every node; nodes get .11, .12, … A
// link can be cut (Partition) and restored (Heal), and each node's uplink
// capped with a tbf qdisc (control traffic first; see uplinkCommands). Everything is done with iproute2's ip and tc.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// controlPorts are drove's control-plane ports (gossip, NATS clients and
// routes, raft): on a capped uplink their packets go first.
var controlPorts = []int{GossipPort, NATSPort, RoutePort, RaftPort}

// uplinkCommands cap a node's uplink at rate with tbf. Under tbf an htb
// with two unbounded classes orders what waits: control-plane packets and
// small TCP packets (ACKs) first, bulk data after. Without it, a node
// sending image pieces at full rate queues its gossip probes and the ACKs
// of its own downloads behind them: gossip declares busy nodes dead and
// downloads stall, as on a switch port without QoS.
func uplinkCommands(ns, dev, rate string) [][]string {
	tc := func(args ...string) []string { return append([]string{"tc", "-n", ns}, args...) }
	cmds := [][]string{
		tc("qdisc", "add", "dev", dev, "root", "handle", "1:", "tbf", "rate", rate, "burst", "256kb", "latency", "50ms"),
		tc("qdisc", "add", "dev", dev, "parent", "1:1", "handle", "2:", "htb", "default", "20"),
		tc("class", "add", "dev", dev, "parent", "2:", "classid", "2:10", "htb", "rate", "10gbit", "prio", "0", "quantum", "1514"),
		tc("class", "add", "dev", dev, "parent", "2:", "classid", "2:20", "htb", "rate", "10gbit", "prio", "1", "quantum", "1514"),
		// TCP packets under 128 bytes: ACKs and other small control.
		tc("filter", "add", "dev", dev, "parent", "2:", "protocol", "ip", "prio", "1", "u32",
			"match", "ip", "protocol", "6", "0xff", "match", "u16", "0x0000", "0xff80", "at", "2", "flowid", "2:10"),
	}
	for _, port := range controlPorts {
		p := strconv.Itoa(port)
		for _, dir := range []string{"sport", "dport"} {
			cmds = append(cmds, tc("filter", "add", "dev", dev, "parent", "2:", "protocol", "ip", "prio", "2", "u32",
				"match", "ip", dir, p, "0xffff", "flowid", "2:10"))
		}
	}
	// Requests to a peer's data endpoint (piece requests, dones) go first
	// too; the pieces a node serves (from its data port) wait in the bulk
	// class. Hosts get this from fq_codel, the default queue of current
	// distributions (sparse flows are sent before bulk ones); this kernel
	// has no fq_codel, and in one FIFO a node's requests would queue
	// behind up to 1000 packets of its own uploads (120 ms at 100 Mbit/s).
	cmds = append(cmds, tc("filter", "add", "dev", dev, "parent", "2:", "protocol", "ip", "prio", "2", "u32",
		"match", "ip", "dport", strconv.Itoa(DataPort), "0xffff", "flowid", "2:10"))
	return cmds
}

// Errors of netns mode, matched with errors.Is.
var (
	// ErrNeedRoot: netns mode creates namespaces, links and a bridge.
	ErrNeedRoot = errors.New("network-namespace mode needs root")
	// ErrNotNetNS: the operation needs a lab started in netns mode.
	ErrNotNetNS = errors.New("the lab does not run in network namespaces (start it with lab up --netns)")
)

// Network is a lab's topology in netns mode, recorded in lab.json so that
// `drove lab down` removes exactly what this lab created.
type Network struct {
	ID     string       `json:"id"`     // short random lab ID; part of every name below
	Bridge string       `json:"bridge"` // drv<ID>, in the root namespace
	Subnet netip.Prefix `json:"subnet"` // 10.213.<k>.0/24; the bridge has .1
	// Uplink is the tc rate every node's link is capped at ("" = uncapped).
	Uplink string `json:"uplink,omitempty"`
	// Partitioned are the nodes whose link is cut, sorted.
	Partitioned []string `json:"partitioned,omitempty"`
}

// nsDevice is the name of a node's end of its veth pair, inside its
// namespace.
const nsDevice = "eth0"

// maxIfName is the longest Linux interface name (IFNAMSIZ-1).
const maxIfName = 15

// netnsTimeout bounds one lab operation's ip and tc commands.
const netnsTimeout = time.Minute

// netnsRunDir is where ip netns keeps its namespace handles.
const netnsRunDir = "/var/run/netns"

// checkNetNS reports why netns mode cannot run here, if it cannot.
func checkNetNS(euid int, lookPath func(string) (string, error), needTC bool) error {
	if euid != 0 {
		return ErrNeedRoot
	}
	tools := []string{"ip"}
	if needTC {
		tools = append(tools, "tc")
	}
	for _, tool := range tools {
		if _, err := lookPath(tool); err != nil {
			return fmt.Errorf("network-namespace mode needs %s (iproute2): %w", tool, err)
		}
	}
	return nil
}

// networkFor derives the names and subnet of the network with lab ID id: a
// 6-hex-digit ID picks the subnet from its first byte.
func networkFor(id, uplink string) (*Network, error) {
	b, err := hex.DecodeString(id)
	if err != nil || len(b) != 3 {
		return nil, fmt.Errorf("lab ID %q: want 6 hex digits", id)
	}
	k := 1 + int(b[0])%254 // 10.213.1.0/24 … 10.213.254.0/24
	return &Network{
		ID:     id,
		Bridge: "drv" + id,
		Subnet: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 213, byte(k), 0}), 24),
		Uplink: uplink,
	}, nil
}

// newNetwork picks a lab ID whose subnet no interface of this namespace
// uses and whose names no other lab holds.
func newNetwork(uplink string) (*Network, error) {
	used, err := usedPrefixes()
	if err != nil {
		return nil, fmt.Errorf("list this host's addresses: %w", err)
	}
	for range 64 {
		var b [3]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, fmt.Errorf("make a lab ID: %w", err)
		}
		nw, err := networkFor(hex.EncodeToString(b[:]), uplink)
		if err != nil {
			return nil, err
		}
		if clashes(nw.Subnet, used) || linkExists(nw.Bridge) {
			continue
		}
		if m, _ := filepath.Glob(filepath.Join(netnsRunDir, "drove-"+nw.ID+"-*")); len(m) > 0 {
			continue
		}
		return nw, nil
	}
	return nil, errors.New("no free lab subnet in 10.213.0.0/16: remove old labs with drove lab down")
}

// usedPrefixes are the subnets of this namespace's interface addresses.
func usedPrefixes() ([]netip.Prefix, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	var out []netip.Prefix
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			out = append(out, p.Masked())
		}
	}
	return out, nil
}

// clashes reports whether p overlaps any of used.
func clashes(p netip.Prefix, used []netip.Prefix) bool {
	for _, u := range used {
		if p.Overlaps(u) {
			return true
		}
	}
	return false
}

// Namespace is the network namespace of the node called name.
func (nw *Network) Namespace(name string) string { return "drove-" + nw.ID + "-" + name }

// veth is the root-namespace end of name's veth pair.
func (nw *Network) veth(name string) string { return "dv" + nw.ID + name }

// gateway is the bridge's address, the root namespace's way in.
func (nw *Network) gateway() netip.Addr { return nw.host(1) }

// host is the address with last octet last in the lab's subnet.
func (nw *Network) host(last int) netip.Addr {
	a := nw.Subnet.Addr().As4()
	a[3] = byte(last)
	return netip.AddrFrom4(a)
}

// checkNames fails if a link name would be too long for Linux.
func (nw *Network) checkNames(nodes []*Node) error {
	for _, n := range nodes {
		if v := nw.veth(n.Name); len(v) > maxIfName {
			return fmt.Errorf("node name %q: link name %s is longer than %d bytes", n.Name, v, maxIfName)
		}
	}
	return nil
}

// create builds the bridge and, for every node, its namespace and link. On
// error some of it may exist: destroy removes whatever does.
func (nw *Network) create(ctx context.Context, nodes []*Node) error {
	bits := strconv.Itoa(nw.Subnet.Bits())
	cmds := [][]string{
		{"ip", "link", "add", nw.Bridge, "type", "bridge"},
		{"ip", "addr", "add", nw.gateway().String() + "/" + bits, "dev", nw.Bridge},
		{"ip", "link", "set", nw.Bridge, "up"},
	}
	for _, n := range nodes {
		ns := n.NetNS
		cmds = append(cmds,
			[]string{"ip", "netns", "add", ns},
			[]string{"ip", "-n", ns, "link", "set", "lo", "up"},
			[]string{"ip", "link", "add", n.Veth, "type", "veth", "peer", "name", nsDevice, "netns", ns},
			[]string{"ip", "link", "set", n.Veth, "master", nw.Bridge},
			[]string{"ip", "link", "set", n.Veth, "up"},
			[]string{"ip", "-n", ns, "addr", "add", n.Addr + "/" + bits, "dev", nsDevice},
			[]string{"ip", "-n", ns, "link", "set", nsDevice, "up"},
		)
		if nw.Uplink != "" {
			cmds = append(cmds, uplinkCommands(ns, nsDevice, nw.Uplink)...)
		}
	}
	for _, c := range cmds {
		if err := run(ctx, c...); err != nil {
			return fmt.Errorf("create lab network %s: %w", nw.ID, err)
		}
	}
	return nil
}

// destroy removes the namespaces, links and bridge of nodes that exist;
// it is idempotent. Processes still in a node's namespace (children its
// agent left behind) are killed first, or they would keep it alive.
func (nw *Network) destroy(ctx context.Context, nodes []*Node) error {
	var errs []error
	for _, n := range nodes {
		if nsExists(n.NetNS) {
			if err := killNamespace(ctx, n.NetNS); err != nil {
				errs = append(errs, err)
			}
		}
		if linkExists(n.Veth) { // deleting one end deletes the pair
			if err := run(ctx, "ip", "link", "del", n.Veth); err != nil {
				errs = append(errs, err)
			}
		}
		if nsExists(n.NetNS) {
			if err := run(ctx, "ip", "netns", "del", n.NetNS); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if linkExists(nw.Bridge) {
		if err := run(ctx, "ip", "link", "del", nw.Bridge); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove lab network %s: %w", nw.ID, err)
	}
	return nil
}

// killNamespace SIGKILLs every process left in namespace ns and waits
// until they are gone.
func killNamespace(ctx context.Context, ns string) error {
	pids := func() ([]int, error) {
		out, err := output(ctx, "ip", "netns", "pids", ns)
		if err != nil {
			return nil, err
		}
		var ps []int
		for _, f := range strings.Fields(out) {
			if p, err := strconv.Atoi(f); err == nil && p > 0 {
				ps = append(ps, p)
			}
		}
		return ps, nil
	}
	for {
		ps, err := pids()
		if err != nil || len(ps) == 0 {
			return err
		}
		for _, p := range ps {
			syscall.Kill(p, syscall.SIGKILL)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("processes %v in namespace %s did not exit: %w", ps, ns, ctx.Err())
		case <-time.After(20 * time.Millisecond): // polling processes we do not own a handle to
		}
	}
}

// setLink brings a node's root-namespace link up or down.
func setLink(ctx context.Context, veth string, up bool) error {
	state := "down"
	if up {
		state = "up"
	}
	return run(ctx, "ip", "link", "set", veth, state)
}

func nsExists(ns string) bool {
	if ns == "" {
		return false
	}
	_, err := os.Stat(filepath.Join(netnsRunDir, ns))
	return err == nil
}

func linkExists(name string) bool {
	if name == "" {
		return false
	}
	_, err := net.InterfaceByName(name)
	return err == nil
}

// run runs an ip or tc command; its error carries the command's output.
func run(ctx context.Context, args ...string) error {
	_, err := output(ctx, args...)
	return err
}

func output(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// Partition cuts node name off the lab's network: its link goes down, its
// process keeps running. Heal brings it back.
func (l *Lab) Partition(name string) error {
	if l.Net == nil {
		return fmt.Errorf("partition %s: %w", name, ErrNotNetNS)
	}
	n, err := l.Node(name)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), netnsTimeout)
	defer cancel()
	if err := setLink(ctx, n.Veth, false); err != nil {
		return fmt.Errorf("partition %s: %w", name, err)
	}
	if !slices.Contains(l.Net.Partitioned, name) {
		l.Net.Partitioned = append(l.Net.Partitioned, name)
		slices.Sort(l.Net.Partitioned)
	}
	return l.save()
}

// Heal brings every node's link back up.
func (l *Lab) Heal() error {
	if l.Net == nil {
		return fmt.Errorf("heal: %w", ErrNotNetNS)
	}
	ctx, cancel := context.WithTimeout(context.Background(), netnsTimeout)
	defer cancel()
	for _, n := range l.Nodes {
		if err := setLink(ctx, n.Veth, true); err != nil {
			return fmt.Errorf("heal %s: %w", n.Name, err)
		}
	}
	l.Net.Partitioned = nil
	return l.save()
}
