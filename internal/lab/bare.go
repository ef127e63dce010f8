package lab

// Bare hosts (netns mode): machines of the lab's network that run no
// agent, for what installs one over SSH (`drove run` on fresh hosts). A
// bare host has its namespace, link and address like a node, and its own
// copy of the directories an install writes (barePrivate), so hosts that
// share this machine's filesystem do not see each other's agent. The lab
// starts nothing there: Command runs a program (an sshd) in the host's
// namespaces, and whatever that program starts stays in them. Down kills
// every process left in a host's network namespace, agents pushed there
// included.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/drove-project/drove/internal/sshpush"
)

// ErrBare: the operation needs an agent the lab started, and the node is
// a bare host.
var ErrBare = errors.New("a bare host runs no agent of the lab's")

// barePrivate are the paths every bare host has its own copy of: the
// directories sshpush installs the agent's binary and data into, its
// /etc/shadow (a test may give root a password there), and
// /run/systemd where this machine runs systemd. Hiding it makes an
// install start the agent as a detached process inside the host's
// namespaces; with it, the agent would become a unit of this machine's
// systemd, outside them.
func barePrivate() []string {
	ps := []string{sshpush.DefaultDataDir, path.Dir(sshpush.DefaultRemoteBinary), "/etc/shadow"}
	if st, err := os.Stat("/run/systemd/system"); err == nil && st.IsDir() {
		ps = append(ps, "/run/systemd")
	}
	return ps
}

// newBare describes bare host number i (from 1) at addr.
func newBare(dir string, i int, addr string, private []string) *Node {
	n := &Node{Name: fmt.Sprintf("h%d", i), Addr: addr, Bare: true}
	n.DataDir = filepath.Join(dir, n.Name)
	for _, p := range append(slices.Clone(private), barePrivate()...) {
		if !slices.Contains(n.Private, p) {
			n.Private = append(n.Private, p)
		}
	}
	// Where an agent pushed with sshpush's defaults logs.
	n.Log = filepath.Join(n.PrivatePath(sshpush.DefaultDataDir), "agent.log")
	return n
}

// PrivatePath is where this machine keeps node n's own copy of the
// absolute path p (one of n.Private): what n sees at p.
func (n *Node) PrivatePath(p string) string {
	return filepath.Join(n.DataDir, "private", strings.TrimPrefix(p, "/"))
}

// Command returns a command that runs argv on the named node the way the
// lab runs its agents: in the node's network namespace and, when it has
// private paths, in a mount namespace with its own copies mounted over
// them. Programs it starts inherit both. The process is argv's own (the
// wrappers exec it), so killing it kills the program. Netns mode only;
// for a bare host this is how anything gets to run there.
func (l *Lab) Command(ctx context.Context, name string, argv ...string) (*exec.Cmd, error) {
	n, err := l.Node(name)
	if err != nil {
		return nil, err
	}
	if len(argv) == 0 {
		return nil, fmt.Errorf("run on %s: no command", name)
	}
	if n.NetNS == "" {
		return nil, fmt.Errorf("run on %s: %w", name, ErrNotNetNS)
	}
	args, err := n.inNamespaces(argv)
	if err != nil {
		return nil, fmt.Errorf("run on %s: %w", name, err)
	}
	return exec.CommandContext(ctx, args[0], args[1:]...), nil
}

// inNamespaces wraps argv to run in n's network namespace and private
// mounts: ip netns exec execs unshare, which execs sh, which execs argv.
func (n *Node) inNamespaces(argv []string) ([]string, error) {
	if len(n.Private) > 0 {
		wrap, err := n.privateMounts()
		if err != nil {
			return nil, err
		}
		argv = append(wrap, argv...)
	}
	return append([]string{"ip", "netns", "exec", n.NetNS}, argv...), nil
}
