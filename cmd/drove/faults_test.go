package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/drove-project/drove/internal/clusterauth"
	"github.com/drove-project/drove/internal/lab"
	"github.com/drove-project/drove/protocol"
)

func readyLab(t *testing.T, masters, nodes int) (*lab.Lab, *nats.Conn) {
	t.Helper()
	l := startLab(t, masters, nodes)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := l.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	return l, connect(t, l)
}

func submit(t *testing.T, nc *nats.Conn, spec protocol.PlanSpec) string {
	t.Helper()
	var sub protocol.PlanSubmitted
	call(t, nc, &protocol.PlanSubmit{Plan: spec}, &sub)
	return sub.PlanID
}

func waitFile(t *testing.T, path string, d time.Duration) {
	t.Helper()
	waitFor(t, path, d, func() bool { _, err := os.Stat(path); return err == nil })
}

func lines(t *testing.T, path string) []string {
	t.Helper()
	b, _ := os.ReadFile(path)
	return strings.Fields(string(b))
}

func stepState(pd protocol.PlanDetail, step, node string) protocol.NodeStepStatus {
	for _, ph := range pd.Phases {
		for _, s := range ph.Steps {
			if s.Step == step && s.Node == node {
				return s
			}
		}
	}
	return protocol.NodeStepStatus{}
}

// TestAgentKilledMidStep: finished steps are not run again after the agent
// restarts; the interrupted one fails unless it is idempotent, and
// `retry` runs it again.
func TestAgentKilledMidStep(t *testing.T) {
	l, nc := readyLab(t, 1, 1)
	for _, idempotent := range []bool{false, true} {
		t.Run(fmt.Sprintf("idempotent=%v", idempotent), func(t *testing.T) {
			out := t.TempDir()
			long := fmt.Sprintf(`echo run >> %[1]s/runs; if [ ! -e %[1]s/started ]; then touch %[1]s/started; sleep 60; fi`, out)
			id := submit(t, nc, protocol.PlanSpec{Name: "crash", Phases: []protocol.PhaseSpec{{Name: "p", Steps: []protocol.StepSpec{
				{Name: "first", Target: protocol.Selector{Nodes: []string{"n1"}}, Action: protocol.Action{Kind: "shell", Command: "echo once >> " + out + "/first"}},
				{Name: "long", Target: protocol.Selector{Nodes: []string{"n1"}}, Action: protocol.Action{Kind: "shell", Command: long}, Idempotent: idempotent},
			}}}})
			waitFile(t, out+"/started", 20*time.Second)
			if err := l.Kill("n1"); err != nil {
				t.Fatal(err)
			}
			if err := l.Start("n1"); err != nil {
				t.Fatal(err)
			}
			pd := waitPlan(t, nc, id, 30*time.Second)
			if got := lines(t, out+"/first"); len(got) != 1 {
				t.Fatalf("finished step ran %d times", len(got))
			}
			long1 := stepState(pd, "long", "n1")
			if idempotent {
				if pd.Summary.State != "succeeded" || len(lines(t, out+"/runs")) != 2 {
					t.Fatalf("idempotent step: plan %s, runs %v", pd.Summary.State, lines(t, out+"/runs"))
				}
				return
			}
			if pd.Summary.State != "failed" || !strings.Contains(long1.Error, "retry") || len(lines(t, out+"/runs")) != 1 {
				t.Fatalf("non-idempotent step: plan %s, step %+v, runs %v", pd.Summary.State, long1, lines(t, out+"/runs"))
			}
			var ack protocol.Ack
			call(t, nc, &protocol.RetryRequest{PlanID: id}, &ack)
			if pd = waitPlan(t, nc, id, 30*time.Second); pd.Summary.State != "succeeded" || len(lines(t, out+"/runs")) != 2 {
				t.Fatalf("after retry: plan %s, runs %v", pd.Summary.State, lines(t, out+"/runs"))
			}
		})
	}
}

// TestAllCoordinatorsRestart: every coordinator is killed during a plan and
// started again; the plan resumes from disk and runs each step once.
func TestAllCoordinatorsRestart(t *testing.T) {
	l, nc := readyLab(t, 3, 1)
	out := t.TempDir()
	var steps []protocol.StepSpec
	for i := 0; i < 20; i++ {
		steps = append(steps, protocol.StepSpec{Name: fmt.Sprintf("s%02d", i), Target: protocol.Selector{Nodes: []string{"n1"}},
			Action: protocol.Action{Kind: "shell", Command: fmt.Sprintf("echo s%02d >> %s/lines; sleep 0.05", i, out)}})
	}
	id := submit(t, nc, protocol.PlanSpec{Name: "restart", Phases: []protocol.PhaseSpec{{Name: "p", Steps: steps}}})
	waitFor(t, "some steps to run", 20*time.Second, func() bool { return len(lines(t, out+"/lines")) >= 5 })
	for _, m := range []string{"m1", "m2", "m3"} {
		if err := l.Kill(m); err != nil {
			t.Fatal(err)
		}
	}
	at := len(lines(t, out+"/lines"))
	for _, m := range []string{"m1", "m2", "m3"} {
		if err := l.Start(m); err != nil {
			t.Fatal(err)
		}
	}
	pd := waitPlan(t, nc, id, 60*time.Second)
	got := lines(t, out+"/lines")
	if pd.Summary.State != "succeeded" || len(got) != 20 {
		t.Fatalf("after restarting all coordinators at %d lines: plan %s, %d lines: %v", at, pd.Summary.State, len(got), got)
	}
	for i, s := range got {
		if s != fmt.Sprintf("s%02d", i) {
			t.Fatalf("line %d is %s: %v", i, s, got)
		}
	}
	// Every restarted coordinator, the join seed m1 included, is an alive
	// member again (it rejoins through the peers it remembered).
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := l.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestDeadNodeFailsFast: a killed node is seen as failed within 3 s and
// steps for it fail with "node unreachable" instead of waiting.
func TestDeadNodeFailsFast(t *testing.T) {
	l, nc := readyLab(t, 1, 2)
	if err := l.Kill("n2"); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	var seen time.Duration
	waitFor(t, "n2 to be seen as failed", 10*time.Second, func() bool {
		var st protocol.Status
		call(t, nc, &protocol.StatusRequest{}, &st)
		for _, m := range st.Members {
			if m.ID == "n2" && m.State == "dead" {
				seen = time.Since(killed)
				return true
			}
		}
		return false
	})
	t.Logf("n2 seen dead after %s", seen)
	if seen > 3*time.Second {
		t.Errorf("failure detection took %s, want <= 3s", seen)
	}
	id := submit(t, nc, protocol.PlanSpec{Name: "dead", Phases: []protocol.PhaseSpec{{Name: "p", Steps: []protocol.StepSpec{
		{Name: "x", Action: protocol.Action{Kind: "shell", Command: "true"}}}}}})
	start := time.Now()
	pd := waitPlan(t, nc, id, 10*time.Second)
	s := stepState(pd, "x", "n2")
	if pd.Summary.State != "failed" || !strings.Contains(s.Error, "node unreachable") || time.Since(start) > 3*time.Second {
		t.Fatalf("plan %s after %s, n2: %+v", pd.Summary.State, time.Since(start), s)
	}
	if ok := stepState(pd, "x", "n1"); ok.State != protocol.StateSucceeded {
		t.Fatalf("n1: %+v", ok)
	}
}

// TestWrongTokenRefused: a node with another token cannot join gossip,
// connect to NATS, or open a raft connection, and says why.
func TestWrongTokenRefused(t *testing.T) {
	l, nc := readyLab(t, 1, 0)
	bad, _ := clusterauth.GenerateToken()
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	os.WriteFile(tokenFile, []byte(bad), 0o600)
	logPath := filepath.Join(dir, "agent.log")
	logf, _ := os.Create(logPath)
	cmd := exec.Command(droveBin, "--data-dir", dir, "agent", "--name", "intruder", "--bind", "127.0.0.99",
		"--token-file", tokenFile, "--join", l.Nodes[0].Addr, "--fast")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitFor(t, "the intruder to log its failed join", 15*time.Second, func() bool {
		b, _ := os.ReadFile(logPath)
		return strings.Contains(string(b), "different cluster token")
	})
	var st protocol.Status
	call(t, nc, &protocol.StatusRequest{}, &st)
	for _, m := range st.Members {
		if m.ID == "intruder" {
			t.Fatalf("intruder joined gossip: %+v", st.Members)
		}
	}
	// NATS: the intruder's credentials are refused.
	user, pass := clusterauth.NATSAgent(bad)
	if c, err := nats.Connect(strings.Join(l.Servers(), ","), nats.UserInfo(user, pass)); err == nil {
		c.Close()
		t.Fatal("NATS accepted a wrong token")
	}
	// raft: the handshake on the raft port fails.
	conn, err := net.Dial("tcp", net.JoinHostPort(l.Nodes[0].Addr, fmt.Sprint(lab.RaftPort)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := clusterauth.Handshake(ctx, conn, bad, true); err == nil {
		t.Fatal("raft handshake succeeded with a wrong token")
	}
	waitFor(t, "m1 to log the refused raft connection", 10*time.Second, func() bool {
		b, _ := os.ReadFile(l.Nodes[0].Log)
		return strings.Contains(string(b), "refused raft connection")
	})
}

// TestDeadCoordinatorRemovedAndReadded: a coordinator dead longer than
// --remove-dead-coordinators-after leaves the raft configuration (the
// others keep a quorum), and is a voter again once it comes back.
func TestDeadCoordinatorRemovedAndReadded(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process lab test (-short)")
	}
	l := upLab(t, lab.Options{Dir: t.TempDir(), Binary: droveBin, Masters: 3, FirstIP: testFirstIP,
		ExtraArgs: []string{"--remove-dead-coordinators-after", "2s"}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := l.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	nc := connect(t, l)
	status := func() protocol.Status {
		var st protocol.Status
		call(t, nc, &protocol.StatusRequest{}, &st)
		return st
	}
	victim := ""
	for _, m := range []string{"m1", "m2", "m3"} {
		if m != status().Leader {
			victim = m
		}
	}
	if err := l.Kill(victim); err != nil {
		t.Fatal(err)
	}
	waitFor(t, victim+" to leave the voters", 30*time.Second, func() bool {
		st := status()
		return len(st.Voters) == 2 && !slices.Contains(st.Voters, victim)
	})
	// The two left still commit: a plan runs.
	pd := waitPlan(t, nc, submit(t, nc, protocol.PlanSpec{Name: "after", Phases: []protocol.PhaseSpec{{Name: "p", Steps: []protocol.StepSpec{
		{Name: "x", Target: protocol.Selector{Nodes: []string{status().Leader}}, Action: protocol.Action{Kind: "shell", Command: "true"}}}}}}), 20*time.Second)
	if pd.Summary.State != "succeeded" {
		t.Fatalf("plan after the removal: %+v", pd.Summary)
	}
	if err := l.Start(victim); err != nil {
		t.Fatal(err)
	}
	waitFor(t, victim+" to be a voter again", 30*time.Second, func() bool {
		return len(status().Voters) == 3
	})
}
