package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/drove-project/drove/internal/sshpush"
	"github.com/drove-project/drove/layers/clusterfile"
	"github.com/drove-project/drove/protocol"
)

// Errors about a cluster's hosts, matched with errors.Is.
var (
	// errNoSSH: a host runs no agent and there is no way to log in to it.
	errNoSSH = errors.New("no SSH credentials")
	// errAgentsLate: pushed agents did not join in time.
	errAgentsLate = errors.New("agents did not join in time")
	// errNoCoordinator: no alive coordinator to join new agents to.
	errNoCoordinator = errors.New("no alive coordinator")
)

// pushParallel bounds the hosts pushed to at once.
const pushParallel = 16

// agentViewGrace is how long a host's agent may be missing from the
// answering coordinator's view before the host is taken for one without
// an agent: each coordinator answers from its own gossip view, which can
// lag a moment behind an agent that has just started.
const agentViewGrace = 3 * time.Second

// hostOptions say how hosts without an agent get one.
type hostOptions struct {
	Binary     string        // the drove binary to push (default: this one)
	KnownHosts string        // known_hosts file (default ~/.ssh/known_hosts)
	Wait       time.Duration // how long new agents may take to join
}

// nodeName is the agent name given to a host drove installs: its address,
// spelled as a node ID.
func nodeName(ip string) string {
	return "node-" + strings.NewReplacer(".", "-", ":", "-").Replace(ip)
}

// memberFor finds the alive member that is the host at ip: by address,
// or by the name drove gives the agents it installs.
func memberFor(members []protocol.Member, ip string) (protocol.Member, bool) {
	name := nodeName(ip)
	for _, m := range members {
		if m.State != "alive" {
			continue
		}
		if m.Address == ip || m.ID == name || m.Name == name {
			return m, true
		}
	}
	return protocol.Member{}, false
}

// nodeIDs maps each of ips to the ID of the alive member at it; missing
// lists the addresses with none, in order.
func nodeIDs(members []protocol.Member, ips []string) (ids map[string]string, missing []string) {
	ids = map[string]string{}
	for _, ip := range ips {
		if m, ok := memberFor(members, ip); ok {
			ids[ip] = m.ID
		} else {
			missing = append(missing, ip)
		}
	}
	return ids, missing
}

// ensureAgents makes every host of c run an agent that is an alive member,
// and returns each address's node ID. Hosts that already run one are used
// as they are; the others get one over SSH. Any host that cannot be
// reached fails the whole call before anything is submitted.
func ensureAgents(ctx context.Context, g *Globals, cf *clientFlags, nc *nats.Conn, c *clusterfile.Cluster, o hostOptions) (map[string]string, error) {
	var st protocol.Status
	if err := cf.call(ctx, nc, &protocol.StatusRequest{}, &st); err != nil {
		return nil, fmt.Errorf("list the cluster's members: %w", err)
	}
	ips := c.AllIPs()
	ids, missing := nodeIDs(st.Members, ips)
	if len(missing) > 0 {
		if err := lookAgain(ctx, cf, nc, ips, &st, agentViewGrace); err != nil {
			return nil, fmt.Errorf("list the cluster's members: %w", err)
		}
		ids, missing = nodeIDs(st.Members, ips)
	}
	if len(missing) == 0 {
		if len(unregistered(st.Members, ids)) == 0 {
			return ids, nil
		}
		return waitMembers(ctx, g, cf, nc, ips, o.Wait) // joined a moment ago
	}
	targets, err := sshTargets(c, missing)
	if err != nil {
		return nil, err
	}
	join, err := gossipJoin(st.Members)
	if err != nil {
		return nil, err
	}
	token, err := cf.token(g)
	if err != nil {
		return nil, err
	}
	bin := o.Binary
	if bin == "" {
		if bin, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("find the drove binary to push: %w", err)
		}
	}
	fmt.Fprintf(g.Err, "installing the drove agent over SSH on %s: %s\n", plural(len(missing), "host"), strings.Join(missing, ", "))
	opts := sshpush.Options{KnownHostsFile: o.KnownHosts, Logger: g.Log}
	roles := hostRoles(c)
	errs := make([]error, len(missing))
	var wg sync.WaitGroup
	sem := make(chan struct{}, pushParallel)
	for i, ip := range missing {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			spec := sshpush.InstallSpec{Binary: bin, Token: []byte(token + "\n"), Args: agentArgs(ip, roles[ip], join)}
			if err := pushAgent(ctx, targets[ip], opts, spec); err != nil {
				errs[i] = fmt.Errorf("host %s: %w", ip, err)
				return
			}
			fmt.Fprintf(g.Err, "  %s: agent started\n", ip)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("install the agent (nothing was submitted): %w%s", err, pushHint(err))
	}
	return waitMembers(ctx, g, cf, nc, ips, o.Wait)
}

// pushHint says what to do about a refused SSH login, once for all hosts.
func pushHint(err error) string {
	if errors.Is(err, sshpush.ErrAuthRejected) {
		return "\ngive credentials those hosts accept (-u, -p, --pk, --pk-passwd, or ssh in the Clusterfile; a key must be in the user's authorized_keys), or start a drove agent there"
	}
	return ""
}

// sshTargets are the SSH logins to the hosts at ips: each host's own
// settings over the cluster's (where -u, -p, --pk and --port landed).
// A host with neither password nor key falls back to ~/.ssh/id_rsa, as
// sealer does; without that either, it cannot be reached.
func sshTargets(c *clusterfile.Cluster, ips []string) (map[string]sshpush.Target, error) {
	out := map[string]sshpush.Target{}
	var errs []error
	for _, h := range c.Hosts {
		s := c.SSHFor(h)
		if s.Encrypted {
			errs = append(errs, fmt.Errorf("hosts %s: ssh.encrypted passwords (sealer's AES form) are not supported: give the password in clear or use --pk", strings.Join(h.IPs, ",")))
			continue
		}
		if s.Passwd == "" && s.Pk == "" {
			if home, err := os.UserHomeDir(); err == nil {
				if p := filepath.Join(home, ".ssh", "id_rsa"); fileExists(p) {
					s.Pk = p
				}
			}
		}
		for _, ip := range h.IPs {
			if !slices.Contains(ips, ip) {
				continue
			}
			if s.Passwd == "" && s.Pk == "" {
				errs = append(errs, fmt.Errorf("%w for host %s, which runs no drove agent: pass -p PASSWORD or --pk KEY (or set ssh in the Clusterfile), or start an agent there", errNoSSH, ip))
				continue
			}
			out[ip] = sshpush.Target{Host: ip, Port: s.Port, User: s.User, Password: s.Passwd, KeyFile: s.Pk, KeyPassphrase: s.PkPasswd}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// gossipJoin is the gossip address of a coordinator, for new agents to
// join through.
func gossipJoin(members []protocol.Member) (string, error) {
	for _, m := range members {
		if m.Coord && m.State == "alive" {
			port := m.GossipPort
			if port == 0 {
				port = 7946
			}
			return net.JoinHostPort(m.Address, strconv.Itoa(port)), nil
		}
	}
	return "", fmt.Errorf("%w to join new hosts to: check drove status", errNoCoordinator)
}

// agentArgs are the arguments of the agent pushed to the host at ip.
func agentArgs(ip string, roles []string, join string) []string {
	if len(roles) == 0 {
		roles = []string{clusterfile.RoleNode}
	}
	return []string{
		"--data-dir", sshpush.DefaultDataDir, "agent",
		"--join", join,
		"--token-file", sshpush.DefaultDataDir + "/token",
		"--roles", strings.Join(roles, ","),
		"--bind", ip,
		"--name", nodeName(ip),
	}
}

// pushAgent logs in to t and installs the agent.
func pushAgent(ctx context.Context, t sshpush.Target, opts sshpush.Options, spec sshpush.InstallSpec) error {
	cl, err := sshpush.Dial(ctx, t, opts)
	if err != nil {
		return err
	}
	defer cl.Close()
	return cl.InstallAgent(ctx, spec)
}

// unregistered lists the addresses in ids (address → node ID) whose node
// raft has not recorded yet, sorted.
func unregistered(members []protocol.Member, ids map[string]string) []string {
	var out []string
	for ip, id := range ids {
		if !slices.ContainsFunc(members, func(m protocol.Member) bool { return m.ID == id && m.Registered }) {
			out = append(out, ip)
		}
	}
	slices.Sort(out)
	return out
}

// lookAgain asks the coordinators for st again, every 250ms for up to
// grace, until no host at ips is missing from it.
func lookAgain(ctx context.Context, cf *clientFlags, nc *nats.Conn, ips []string, st *protocol.Status, grace time.Duration) error {
	deadline := time.Now().Add(grace)
	for {
		if _, missing := nodeIDs(st.Members, ips); len(missing) == 0 || !time.Now().Before(deadline) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
		var next protocol.Status
		if err := cf.call(ctx, nc, &protocol.StatusRequest{}, &next); err != nil {
			return err
		}
		*st = next
	}
}

// waitMembers polls the coordinators until every host at ips is an alive
// member, showing how many are, and returns their node IDs.
func waitMembers(ctx context.Context, g *Globals, cf *clientFlags, nc *nats.Conn, ips []string, wait time.Duration) (map[string]string, error) {
	if wait <= 0 {
		wait = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	last := -1
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		var st protocol.Status
		err := cf.call(ctx, nc, &protocol.StatusRequest{}, &st)
		if err == nil {
			ids, missing := nodeIDs(st.Members, ips)
			// Alive in gossip is not yet targetable: wait for raft too.
			missing = append(missing, unregistered(st.Members, ids)...)
			if len(missing) == 0 {
				return ids, nil
			}
			if n := len(ips) - len(missing); n != last {
				fmt.Fprintf(g.Err, "waiting for agents to join: %d/%d alive (missing %s)\n", n, len(ips), strings.Join(missing, ", "))
				last = n
			}
			select {
			case <-ctx.Done():
				return nil, fmt.Errorf("%w (%s): missing %s: see %s/agent.log on those hosts",
					errAgentsLate, wait, strings.Join(missing, ", "), sshpush.DefaultDataDir)
			case <-tick.C:
			}
			continue
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (%s): %w", errAgentsLate, wait, err)
		case <-tick.C:
		}
	}
}
