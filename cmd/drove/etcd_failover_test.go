package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/drove-project/drove/internal/lab"
	"github.com/drove-project/drove/protocol"
)

// gateEnv names the directory of the test's gates in the hooks' env.
const gateEnv = "DROVE_TEST_GATES"

// TestEtcdInstallSurvivesLeaderKill installs the etcd example on a 3-node
// netns lab where every node is a coordinator and an etcd host, and kills
// the raft leader's agent with SIGKILL in the middle of the install: after
// at least one member was started, while another host's start hook runs.
// The node is restarted once it is gone. drove apply still finishes, all
// three members are healthy, and nothing ran twice: each host ran its hook
// once and started its member once, and every node-step of the plan shows
// one attempt, which succeeded.
//
// Where the kill lands is chosen, not left to timing. The hook is a user
// command, so drove runs it once and never again on its own: a hook that
// is running on the node that dies is interrupted and fails the plan (for
// `drove retry`), and a hook that comes up while its node is down fails at
// once as unreachable (TestDeadNodeFailsFast). Neither is a leader
// failover. So the test wraps the example's hook in a gate (a file per
// host it waits for, and a line per run in <host>.runs) and kills the
// leader while a host other than the leader is held at its gate; the
// remaining steps, the killed node's among them, run only after it is back.
// The held hook was sent by the dead leader; the new leader sends it again
// and the host's journal answers with the one run.
func TestEtcdInstallSurvivesLeaderKill(t *testing.T) {
	cli, l, ips := etcdLab(t)
	node := map[string]*lab.Node{} // by address
	for _, n := range l.Nodes {
		node[n.Addr] = n
	}
	etcdData := t.TempDir()
	t.Cleanup(func() { stopEtcdMembers(t, etcdData) })
	gates := t.TempDir()
	open := func(ip string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(gates, ip), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A hook still held when the test fails ends at once.
	t.Cleanup(func() {
		for _, ip := range ips {
			os.WriteFile(filepath.Join(gates, ip), nil, 0o644)
		}
	})

	gen := exec.Command("bash", append([]string{filepath.Join(etcdExample, "clusterfile.sh")}, ips...)...)
	gen.Env = append(os.Environ(), "ETCD_DATA="+etcdData)
	cf := filepath.Join(t.TempDir(), "Clusterfile")
	if err := os.WriteFile(cf, gateHook(t, run(t, gen)), 0o644); err != nil {
		t.Fatal(err)
	}

	nc := connect(t, l)
	var st protocol.Status
	call(t, nc, &protocol.StatusRequest{}, &st)
	leader, err := l.Node(st.Leader)
	if err != nil {
		t.Fatal(err)
	}
	// The CLI talks to the leader's NATS server only, so the kill takes
	// its connection too: it must carry on through another server.
	apply := startApply(t, cli, "apply", "-f", cf, "-e", gateEnv+"="+gates,
		"--server", natsURL(leader), "--token-file", filepath.Join(l.Dir, "token"))

	// Let the hooks through one host at a time until a host other than
	// the leader is held with at least one member started before it.
	var victim, held string
	var oldTerm uint64
	opened := map[string]bool{}
	deadline := time.Now().Add(3 * time.Minute)
	for victim == "" {
		apply.checkRunning(t)
		ip := heldHost(gates, ips, opened)
		if ip == "" {
			if time.Now().After(deadline) {
				t.Fatalf("no host's start hook reached its gate within 3 minutes (opened %v)", opened)
			}
			time.Sleep(20 * time.Millisecond) // polling interval while the install runs
			continue
		}
		call(t, nc, &protocol.StatusRequest{}, &st)
		if len(opened) > 0 && st.Leader != "" && st.Leader != node[ip].Name {
			victim, held, oldTerm = st.Leader, ip, st.Term
			break
		}
		if len(opened) == len(ips)-1 {
			t.Fatalf("the leader (%s) moved onto the last host to hold: nowhere left to kill it while another host's hook is held", st.Leader)
		}
		open(ip)
		opened[ip] = true
	}
	t.Logf("kill -9 leader %s (term %d) while %s (%s) is held at its start hook; let through before: %v",
		victim, oldTerm, node[held].Name, held, opened)
	if err := l.Kill(victim); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a new leader", 30*time.Second, func() bool {
		call(t, nc, &protocol.StatusRequest{}, &st)
		return st.Leader != "" && st.Leader != victim && st.Term > oldTerm
	})
	t.Logf("new leader %s (term %d); restarting %s", st.Leader, st.Term, victim)
	if err := l.Start(victim); err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithTimeout(context.Background(), time.Minute)
	defer rcancel()
	if _, err := l.WaitReady(rctx); err != nil {
		t.Fatalf("after restarting %s: %v", victim, err)
	}
	for _, ip := range ips {
		open(ip)
	}

	out := apply.wait(t, 4*time.Minute)
	if !strings.Contains(out, "cluster applied") {
		t.Errorf("drove apply did not report the cluster applied:\n%s", out)
	}

	endpoint := "http://" + ips[0] + ":2379"
	health := etcdctl(t, endpoint, "endpoint", "health", "--cluster")
	for _, ip := range ips {
		if !strings.Contains(health, "http://"+ip+":2379 is healthy") {
			t.Errorf("member %s is not healthy:\n%s", ip, health)
		}
	}
	for _, ip := range ips {
		if n := fileLines(filepath.Join(gates, ip+".runs")); n != 1 {
			t.Errorf("the start hook ran %d times on %s, want once", n, ip)
		}
		if n := fileLines(filepath.Join(etcdData, "etcd-"+ip, "starts")); n != 1 {
			t.Errorf("member %s was started %d times, want once", ip, n)
		}
	}
	checkInstallPlan(t, nc, node[held].Name, oldTerm)
}

// checkInstallPlan: the install plan succeeded with one attempt of every
// node-step; the held hook was sent by the killed leader (in its term,
// oldTerm, or before) and the image's command (after every hook) by a later
// one.
func checkInstallPlan(t *testing.T, nc *nats.Conn, held string, oldTerm uint64) {
	t.Helper()
	var pl protocol.PlanList
	call(t, nc, &protocol.PlanListRequest{}, &pl)
	var id string
	for _, p := range pl.Plans {
		if strings.HasPrefix(p.Name, "install ") {
			if id != "" {
				t.Fatalf("two install plans: %s and %s", id, p.ID)
			}
			id = p.ID
		}
	}
	if id == "" {
		t.Fatalf("no install plan among %+v", pl.Plans)
	}
	pd := waitPlan(t, nc, id, 30*time.Second)
	if pd.Summary.State != "succeeded" {
		t.Errorf("plan %s %s: %+v", id, pd.Summary.State, pd.Summary)
	}
	var heldTerm, launchTerm uint64
	for _, ph := range pd.Phases {
		for _, s := range ph.Steps {
			if s.State != protocol.StateSucceeded || s.Attempt != 1 {
				t.Errorf("phase %s, step %s on %s: %s in attempt %d (%s), want one successful attempt", ph.Name, s.Step, s.Node, s.State, s.Attempt, s.Error)
			}
			switch {
			case ph.Name == "post-init-host" && s.Node == held:
				heldTerm = s.Term
			case ph.Name == "launch":
				launchTerm = s.Term
			}
		}
	}
	if heldTerm == 0 || heldTerm > oldTerm || launchTerm <= oldTerm {
		t.Errorf("the held hook was sent in term %d and the launch in term %d: want the killed leader's term (%d) or an earlier one, then a later one", heldTerm, launchTerm, oldTerm)
	}
}

// gateHook puts a gate in front of the example's start hook: on each host
// it records the run in $DROVE_TEST_GATES/<HostIP>.runs, then waits (up to
// 150 s) for the file $DROVE_TEST_GATES/<HostIP>.
func gateHook(t *testing.T, clusterfile []byte) []byte {
	t.Helper()
	const hook = "    bash scripts/etcd-start.sh\n"
	if n := bytes.Count(clusterfile, []byte(hook)); n != 1 {
		t.Fatalf("the generated Clusterfile has %d start hooks, want 1:\n%s", n, clusterfile)
	}
	gate := strings.Join([]string{
		`    echo "run $$" >> "$` + gateEnv + `/$HostIP.runs"`,
		`    n=0`,
		`    until [ -e "$` + gateEnv + `/$HostIP" ]; do`,
		`      n=$((n + 1)); [ "$n" -le 3000 ] || { echo "the test's gate for $HostIP never opened" >&2; exit 1; }`,
		`      sleep 0.05`,
		`    done`,
		``}, "\n")
	return bytes.Replace(clusterfile, []byte(hook), []byte(gate+hook), 1)
}

// heldHost is the host whose hook waits at its gate: it has run (a line in
// <host>.runs) and its gate is not open.
func heldHost(gates string, ips []string, opened map[string]bool) string {
	for _, ip := range ips {
		if !opened[ip] && fileLines(filepath.Join(gates, ip+".runs")) > 0 {
			return ip
		}
	}
	return ""
}

// bgDrove is a drove command running in the background.
type bgDrove struct {
	args     []string
	out, err bytes.Buffer
	done     chan error
	cancel   context.CancelFunc
}

// startApply starts drove with args; it is killed when the test ends.
func startApply(t *testing.T, dataDir string, args ...string) *bgDrove {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	b := &bgDrove{args: args, done: make(chan error, 1), cancel: cancel}
	cmd := exec.CommandContext(ctx, droveBin, append([]string{"--data-dir", dataDir}, args...)...)
	cmd.Stdout, cmd.Stderr = &b.out, &b.err
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	go func() { b.done <- cmd.Wait() }()
	t.Cleanup(func() {
		cancel()
		<-b.done
	})
	return b
}

// checkRunning fails the test if the command has already ended.
func (b *bgDrove) checkRunning(t *testing.T) {
	t.Helper()
	select {
	case err := <-b.done:
		b.done <- err // for the cleanup
		t.Fatalf("drove %s ended early (%v)\nstdout:\n%s\nstderr:\n%s", b.args[0], err, b.out.String(), b.err.String())
	default:
	}
}

// wait waits for the command to succeed and returns its stdout.
func (b *bgDrove) wait(t *testing.T, limit time.Duration) string {
	t.Helper()
	var err error
	select {
	case err = <-b.done:
		b.done <- err
	case <-time.After(limit):
		b.cancel()
		err = <-b.done
		b.done <- err
		err = fmt.Errorf("still running after %s: %w", limit, err)
	}
	if err != nil {
		t.Fatalf("drove %s: %v\nstdout:\n%s\nstderr:\n%s", b.args[0], err, b.out.String(), b.err.String())
	}
	t.Logf("drove %s stderr:\n%s", b.args[0], b.err.String())
	return b.out.String()
}
