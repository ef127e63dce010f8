package lab

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/drove-project/drove/internal/sshpush"
)

func TestBareNeedsNetNS(t *testing.T) {
	_, err := Up(Options{Dir: t.TempDir(), Binary: "/bin/true", Masters: 1, Bare: 1})
	if !errors.Is(err, ErrNotNetNS) {
		t.Fatalf("bare hosts on loopback: %v, want ErrNotNetNS", err)
	}
	l := &Lab{Dir: t.TempDir(), Nodes: []*Node{{Name: "h1", Bare: true}}}
	if _, err := l.Command(t.Context(), "h1", "true"); !errors.Is(err, ErrNotNetNS) {
		t.Fatalf("Command without a namespace: %v, want ErrNotNetNS", err)
	}
	if _, err := l.Command(t.Context(), "h9", "true"); err == nil {
		t.Fatal("Command on an unknown node succeeded")
	}
}

// TestBareHosts: bare hosts get an address on the lab's network and
// nothing running; what Command starts there runs in the host's network
// namespace and writes the host's own copies of the install paths; Down
// kills it.
func TestBareHosts(t *testing.T) {
	if err := checkNetNS(os.Geteuid(), exec.LookPath, false); err != nil {
		t.Skipf("netns lab test: %v", err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// What the helper writes: a file in the data directory and one in the
	// binary directory an agent install uses.
	dataFile := filepath.Join(sshpush.DefaultDataDir, fmt.Sprintf("lab-bare-test-%d", os.Getpid()))
	binDir := filepath.Dir(sshpush.DefaultRemoteBinary)
	t.Setenv(helperEnv, "1") // m1 only listens: it has no private paths
	l, err := Up(Options{Dir: t.TempDir(), Binary: exe, Masters: 1, Bare: 2, NetNS: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Down() })

	saved, err := Load(l.Dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range saved.Nodes {
		names = append(names, n.Name)
		if n.Bare != (n.Name != "m1") {
			t.Errorf("%s: Bare = %v in lab.json", n.Name, n.Bare)
		}
	}
	if !slices.Equal(names, []string{"m1", "h1", "h2"}) {
		t.Fatalf("lab.json nodes %v, want m1 h1 h2", names)
	}
	if len(l.Servers()) != 1 {
		t.Fatalf("servers %v: bare hosts are no coordinators", l.Servers())
	}

	done := map[string]chan struct{}{}
	for _, name := range []string{"h1", "h2"} {
		n, _ := l.Node(name)
		if n.PID != 0 || n.NetNS == "" || !l.Net.Subnet.Contains(netip.MustParseAddr(n.Addr)) {
			t.Fatalf("%s: pid %d netns %q addr %s", name, n.PID, n.NetNS, n.Addr)
		}
		if !slices.Contains(n.Private, sshpush.DefaultDataDir) || !slices.Contains(n.Private, binDir) {
			t.Fatalf("%s: private paths %v", name, n.Private)
		}
		if err := l.Start(name); !errors.Is(err, ErrBare) {
			t.Errorf("Start(%s): %v, want ErrBare", name, err)
		}
		if err := l.Kill(name); !errors.Is(err, ErrBare) {
			t.Errorf("Kill(%s): %v, want ErrBare", name, err)
		}
		cmd, err := l.Command(t.Context(), name, exe, "--bind", n.Addr, "--name", name)
		if err != nil {
			t.Fatal(err)
		}
		cmd.Env = append(os.Environ(), privateEnv+"="+dataFile+":"+binDir)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		ch := make(chan struct{})
		go func() { cmd.Wait(); close(ch) }()
		done[name] = ch
		t.Cleanup(func() { cmd.Process.Kill(); <-ch })
		waitReach(t, n, 10*time.Second) // reachable, and it wrote before listening
		if got, want := nsInode(t, fmt.Sprintf("/proc/%d/ns/net", cmd.Process.Pid)), nsInode(t, filepath.Join(netnsRunDir, n.NetNS)); got != want {
			t.Fatalf("%s: the command runs in namespace inode %d, want %d", name, got, want)
		}
	}
	for _, name := range []string{"h1", "h2"} {
		n, _ := l.Node(name)
		for _, p := range []string{dataFile, filepath.Join(binDir, "x")} {
			if b, err := os.ReadFile(n.PrivatePath(p)); err != nil || string(b) != name {
				t.Errorf("%s's copy of %s: %q %v, want %q", name, p, b, err, name)
			}
		}
	}
	for _, p := range []string{dataFile, filepath.Join(binDir, "x")} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			os.Remove(p)
			t.Errorf("a bare host wrote this machine's %s: %v", p, err)
		}
	}

	if err := l.Down(); err != nil {
		t.Fatal(err)
	}
	for name, ch := range done {
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
			t.Fatalf("what runs on %s survived Down", name)
		}
	}
	for _, name := range []string{"h1", "h2"} {
		if nsExists(l.Net.Namespace(name)) {
			t.Errorf("%s's namespace is left after Down", name)
		}
	}
}
