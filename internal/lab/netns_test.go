package lab

import (
	"bufio"
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
	"testing"
	"time"
)

// helperEnv makes the test binary, started by the lab in place of drove,
// act as a trivial node: it listens on --bind:GossipPort and greets every
// connection with its --name.
const helperEnv = "DROVE_LAB_TEST_NODE"

// privateEnv tells the helper node which private paths to write (FILE:DIR).
const privateEnv = "DROVE_LAB_TEST_PRIVATE"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(helperNode(os.Args[1:]))
	}
	os.Exit(m.Run())
}

func helperNode(args []string) int {
	flag := func(name string) string {
		if i := slices.Index(args, name); i >= 0 && i+1 < len(args) {
			return args[i+1]
		}
		return ""
	}
	// With privateEnv set (FILE:DIR), write the node's name into both: the
	// test checks that each node wrote into its own copies.
	if f, d, ok := strings.Cut(os.Getenv(privateEnv), ":"); ok {
		if os.WriteFile(f, []byte(flag("--name")), 0o644) != nil || os.WriteFile(filepath.Join(d, "x"), []byte(flag("--name")), 0o644) != nil {
			return 1
		}
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(flag("--bind"), strconv.Itoa(GossipPort)))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			return 1
		}
		fmt.Fprintln(c, flag("--name"))
		c.Close()
	}
}

func TestCheckNetNS(t *testing.T) {
	found := func(string) (string, error) { return "/usr/sbin/x", nil }
	noTC := func(p string) (string, error) {
		if p == "tc" {
			return "", exec.ErrNotFound
		}
		return "/usr/sbin/" + p, nil
	}
	for _, c := range []struct {
		name   string
		euid   int
		look   func(string) (string, error)
		needTC bool
		want   error  // matched with errors.Is
		text   string // in the message
	}{
		{"root with tools", 0, found, true, nil, ""},
		{"not root", 1000, found, false, ErrNeedRoot, "needs root"},
		{"no tc, not needed", 0, noTC, false, nil, ""},
		{"no tc, needed", 0, noTC, true, exec.ErrNotFound, "needs tc"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := checkNetNS(c.euid, c.look, c.needTC)
			if c.want == nil {
				if err != nil {
					t.Fatalf("got %v", err)
				}
				return
			}
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.text) {
				t.Fatalf("got %v, want %v mentioning %q", err, c.want, c.text)
			}
		})
	}
}

func TestNetworkFor(t *testing.T) {
	for _, c := range []struct {
		id, bridge, subnet, ns, veth string
	}{
		{"000000", "drv000000", "10.213.1.0/24", "drove-000000-m1", "dv000000m1"},
		{"fd0a1b", "drvfd0a1b", "10.213.254.0/24", "drove-fd0a1b-m1", "dvfd0a1bm1"},
		{"fe0000", "drvfe0000", "10.213.1.0/24", "drove-fe0000-m1", "dvfe0000m1"},
		{"ff1234", "drvff1234", "10.213.2.0/24", "drove-ff1234-m1", "dvff1234m1"},
	} {
		nw, err := networkFor(c.id, "")
		if err != nil {
			t.Fatal(err)
		}
		if nw.Bridge != c.bridge || nw.Subnet.String() != c.subnet || nw.Namespace("m1") != c.ns || nw.veth("m1") != c.veth {
			t.Errorf("%s: %s %s %s %s", c.id, nw.Bridge, nw.Subnet, nw.Namespace("m1"), nw.veth("m1"))
		}
		if g := nw.gateway().String(); !strings.HasSuffix(g, ".1") || !nw.Subnet.Contains(nw.gateway()) {
			t.Errorf("%s: gateway %s", c.id, g)
		}
	}
	for _, bad := range []string{"", "abc", "zzzzzz", "0000000"} {
		if _, err := networkFor(bad, ""); err == nil {
			t.Errorf("networkFor(%q) accepted", bad)
		}
	}
	nw, _ := networkFor("abcdef", "")
	if err := nw.checkNames([]*Node{{Name: "n253"}}); err != nil {
		t.Errorf("n253: %v", err)
	}
	if err := nw.checkNames([]*Node{{Name: "a-very-long-name"}}); err == nil {
		t.Error("a link name over 15 bytes was accepted")
	}
}

func TestClashes(t *testing.T) {
	p := netip.MustParsePrefix("10.213.7.0/24")
	for _, c := range []struct {
		used []string
		want bool
	}{
		{nil, false},
		{[]string{"127.0.0.0/8", "10.213.8.0/24"}, false},
		{[]string{"10.213.7.0/24"}, true},
		{[]string{"10.0.0.0/8"}, true},
		{[]string{"10.213.7.128/25"}, true},
		{[]string{"fe80::/64"}, false},
	} {
		var used []netip.Prefix
		for _, u := range c.used {
			used = append(used, netip.MustParsePrefix(u))
		}
		if got := clashes(p, used); got != c.want {
			t.Errorf("clashes(%s, %v) = %v", p, c.used, got)
		}
	}
}

func TestPartitionNeedsNetNS(t *testing.T) {
	l := &Lab{Dir: t.TempDir(), Nodes: []*Node{{Name: "m1"}}}
	if err := l.Partition("m1"); !errors.Is(err, ErrNotNetNS) {
		t.Fatalf("Partition on loopback: %v", err)
	}
	if err := l.Heal(); !errors.Is(err, ErrNotNetNS) {
		t.Fatalf("Heal on loopback: %v", err)
	}
	if _, err := Up(Options{Dir: t.TempDir(), Binary: "/bin/true", Masters: 1, Uplink: "1mbit"}); !errors.Is(err, ErrNotNetNS) {
		t.Fatalf("Up with an uplink on loopback: %v", err)
	}
}

// dial connects to a node's helper and returns its greeting.
func dial(addr string, timeout time.Duration) (string, error) {
	c, err := net.DialTimeout("tcp", net.JoinHostPort(addr, strconv.Itoa(GossipPort)), timeout)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

// waitReach polls until node n answers from the root namespace.
func waitReach(t *testing.T, n *Node, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		got, err := dial(n.Addr, 500*time.Millisecond)
		if err == nil {
			if got != n.Name {
				t.Fatalf("%s answered as %q", n.Addr, got)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s (%s) unreachable after %s: %v", n.Name, n.Addr, d, err)
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
}

func nsInode(t *testing.T, path string) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// TestNetNSLab builds a two-node netns lab of trivial listeners and checks
// reachability from the root namespace, the uplink cap, Partition, Heal,
// and that Down leaves nothing behind, also after the processes died.
func TestNetNSLab(t *testing.T) {
	if err := checkNetNS(os.Geteuid(), exec.LookPath, true); err != nil {
		t.Skipf("netns lab test: %v", err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(helperEnv, "1")
	l, err := Up(Options{Dir: t.TempDir(), Binary: exe, Masters: 1, Nodes: 1, NetNS: true, Uplink: "10mbit"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Down() })
	nw := l.Net
	if nw == nil {
		t.Fatal("no network recorded")
	}
	if want := fmt.Sprintf("nats://%s:%d", l.Nodes[0].Addr, NATSPort); !slices.Equal(l.Servers(), []string{want}) {
		t.Fatalf("servers %v, want %s", l.Servers(), want)
	}
	for _, n := range l.Nodes {
		if !nw.Subnet.Contains(netip.MustParseAddr(n.Addr)) {
			t.Fatalf("%s has %s, outside %s", n.Name, n.Addr, nw.Subnet)
		}
		waitReach(t, n, 10*time.Second)
		// The recorded PID is the node itself (ip netns exec execs), and it
		// runs in the node's namespace, not ours.
		if !n.alive() {
			t.Fatalf("%s: PID %d does not look like the node", n.Name, n.PID)
		}
		if got, want := nsInode(t, fmt.Sprintf("/proc/%d/ns/net", n.PID)), nsInode(t, filepath.Join(netnsRunDir, n.NetNS)); got != want {
			t.Fatalf("%s runs in namespace inode %d, want %d", n.Name, got, want)
		}
		if nsInode(t, fmt.Sprintf("/proc/%d/ns/net", n.PID)) == nsInode(t, "/proc/self/ns/net") {
			t.Fatalf("%s runs in the root namespace", n.Name)
		}
		q, err := output(t.Context(), "tc", "-n", n.NetNS, "qdisc", "show", "dev", nsDevice)
		if err != nil || !strings.Contains(q, "tbf") || !strings.Contains(q, "rate 10Mbit") {
			t.Fatalf("%s qdisc: %q %v", n.Name, q, err)
		}
	}
	m1, n1 := l.Nodes[0], l.Nodes[1]

	if err := l.Partition("n1"); err != nil {
		t.Fatal(err)
	}
	if _, err := dial(n1.Addr, 300*time.Millisecond); err == nil {
		t.Fatal("n1 still reachable after Partition")
	}
	waitReach(t, m1, 5*time.Second)
	if !n1.alive() {
		t.Fatal("Partition stopped n1's process")
	}
	if saved, err := Load(l.Dir); err != nil || saved.Net == nil || !slices.Equal(saved.Net.Partitioned, []string{"n1"}) {
		t.Fatalf("lab.json after Partition: %+v %v", saved, err)
	}

	if err := l.Heal(); err != nil {
		t.Fatal(err)
	}
	waitReach(t, n1, 10*time.Second)
	if saved, err := Load(l.Dir); err != nil || saved.Net == nil || len(saved.Net.Partitioned) != 0 || saved.Net.ID != nw.ID {
		t.Fatalf("lab.json after Heal: %+v %v", saved, err)
	}

	// The processes die on their own; Down still removes the network.
	for _, n := range l.Nodes {
		if err := l.Kill(n.Name); err != nil {
			t.Fatal(err)
		}
	}
	// A leftover process in a namespace (an agent's orphaned child) must
	// not keep it alive.
	orphan := exec.Command("ip", "netns", "exec", n1.NetNS, exe, "--bind", n1.Addr, "--name", "orphan")
	if err := orphan.Start(); err != nil {
		t.Fatal(err)
	}
	orphanDone := make(chan struct{})
	go func() { orphan.Wait(); close(orphanDone) }()
	t.Cleanup(func() { orphan.Process.Kill(); <-orphanDone })
	waitReach(t, &Node{Name: "orphan", Addr: n1.Addr}, 10*time.Second)

	if err := l.Down(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-orphanDone:
	case <-time.After(10 * time.Second):
		t.Fatal("the process left in n1's namespace survived Down")
	}
	if ns, err := output(t.Context(), "ip", "netns", "list"); err != nil || strings.Contains(ns, "drove-"+nw.ID) {
		t.Fatalf("namespaces left after Down: %q %v", ns, err)
	}
	links, err := output(t.Context(), "ip", "link", "show")
	if err != nil || strings.Contains(links, nw.ID) {
		t.Fatalf("links left after Down: %q %v", links, err)
	}
	if _, err := os.Stat(filepath.Join(l.Dir, "lab.json")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("lab.json after Down: %v", err)
	}
	if err := l.Down(); err != nil {
		t.Fatalf("second Down: %v", err)
	}
}

func TestNetNSPrivatePaths(t *testing.T) {
	if err := checkNetNS(os.Geteuid(), exec.LookPath, false); err != nil {
		t.Skipf("netns lab test: %v", err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	host := t.TempDir()
	file, dir := filepath.Join(host, "hosts"), filepath.Join(host, "kube") // dir absent: created as a mount point
	if err := os.WriteFile(file, []byte("host"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(helperEnv, "1")
	t.Setenv(privateEnv, file+":"+dir)
	l, err := Up(Options{Dir: t.TempDir(), Binary: exe, Masters: 1, Nodes: 1, NetNS: true, Private: []string{file, dir}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Down() })
	for _, n := range l.Nodes {
		waitReach(t, n, 10*time.Second) // it wrote before listening
		for _, p := range []string{file, filepath.Join(dir, "x")} {
			own := filepath.Join(n.DataDir, "private", strings.TrimPrefix(p, "/"))
			if b, err := os.ReadFile(own); err != nil || string(b) != n.Name {
				t.Errorf("%s's copy of %s: %q %v, want %q", n.Name, p, b, err, n.Name)
			}
		}
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "host" {
		t.Errorf("the host's file changed: %q %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "x")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a node wrote into the host's directory: %v", err)
	}
	if _, err := Up(Options{Dir: t.TempDir(), Binary: exe, Masters: 1, Private: []string{file}}); !errors.Is(err, ErrNotNetNS) {
		t.Errorf("private paths without netns: %v, want ErrNotNetNS", err)
	}
}
