package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/drove-project/drove/internal/lab"
	"github.com/drove-project/drove/protocol"
)

// These tests run real agent processes (real gossip, raft and NATS) on
// loopback addresses through the same harness as `drove lab`.

func startLab(t *testing.T, masters, nodes int) *lab.Lab {
	t.Helper()
	if testing.Short() {
		t.Skip("multi-process lab test (-short)")
	}
	return upLab(t, lab.Options{Dir: t.TempDir(), Binary: droveBin, Masters: masters, Nodes: nodes, FirstIP: testFirstIP})
}

// testFirstIP spreads test labs over 127.0.0.x by process, so a test run
// does not collide with a `drove lab up` (at .11) or another test run.
var testFirstIP = 120 + os.Getpid()%12*10

// upLab starts a lab, and when the test ends shows each node's log tail if
// it failed and stops every process (and namespace) the lab made.
func upLab(t *testing.T, o lab.Options) *lab.Lab {
	t.Helper()
	l, err := lab.Up(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range l.Nodes {
				b, _ := os.ReadFile(n.Log)
				lines := strings.Split(string(b), "\n")
				if len(lines) > 40 {
					lines = lines[len(lines)-40:]
				}
				t.Logf("--- %s log tail ---\n%s", n.Name, strings.Join(lines, "\n"))
			}
		}
		if err := l.Down(); err != nil {
			t.Errorf("lab down: %v", err)
		}
	})
	return l
}

func connect(t *testing.T, l *lab.Lab) *nats.Conn {
	t.Helper()
	nc, err := l.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// call sends an API request, retrying while there is no leader.
func call(t *testing.T, nc *nats.Conn, req, into protocol.Message) {
	t.Helper()
	b, _ := protocol.Encode(req)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := nc.Request(protocol.APISubject, b, 5*time.Second)
		if err == nil {
			if err = protocol.DecodeAs(resp.Data, into); err == nil {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", req.Type(), err)
		}
		time.Sleep(50 * time.Millisecond) // polling interval while an election runs
	}
}

func TestLabComesUp(t *testing.T) {
	l := startLab(t, 3, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	st, err := l.WaitReady(ctx)
	if err != nil {
		t.Fatalf("within 5 s: %v", err)
	}
	t.Logf("leader %s after %s", st.Leader, time.Since(start))
	if len(st.Members) != 6 || len(st.Voters) != 3 {
		t.Fatalf("members %d voters %v", len(st.Members), st.Voters)
	}
	// A submit retried with the same plan ID (after a lost reply) creates
	// the plan once.
	nc := connect(t, l)
	id := protocol.NewPlanID(time.Now())
	spec := protocol.PlanSpec{Name: "twice", Phases: []protocol.PhaseSpec{{Name: "p", Steps: []protocol.StepSpec{{Name: "s", Action: protocol.Action{Kind: "noop"}}}}}}
	for i := 0; i < 2; i++ {
		var sub protocol.PlanSubmitted
		call(t, nc, &protocol.PlanSubmit{Plan: spec, PlanID: id}, &sub)
		if sub.PlanID != id {
			t.Fatalf("submit %d returned %s, want %s", i, sub.PlanID, id)
		}
	}
	var pl protocol.PlanList
	call(t, nc, &protocol.PlanListRequest{}, &pl)
	if len(pl.Plans) != 1 {
		t.Fatalf("%d plans after a repeated submit", len(pl.Plans))
	}
}

func waitPlan(t *testing.T, nc *nats.Conn, id string, d time.Duration) protocol.PlanDetail {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		var pd protocol.PlanDetail
		call(t, nc, &protocol.PlanGetRequest{PlanID: id}, &pd)
		if pd.Settled() {
			return pd
		}
		if time.Now().After(deadline) {
			t.Fatalf("plan %s still %s after %s: %+v", id, pd.Summary.State, d, pd.Summary)
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}
}

// TestExactlyOnceAcrossLeaderKills: 60 steps over 6 nodes, each appending a
// unique line to a node-local file; the leader is killed -9 at three points
// picked by a seeded generator and restarted. Every line appears once.
func TestExactlyOnceAcrossLeaderKills(t *testing.T) {
	l := startLab(t, 3, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := l.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	nc := connect(t, l)
	out := t.TempDir()
	// Each step records every run of it (.runs) and appends its line to
	// .txt only if absent. A kill -9 of the leader also kills that node's
	// agent, possibly mid-step; such a step is reported interrupted and,
	// being idempotent, run again. So .txt must hold each line exactly once,
	// and a second run of a step may only happen on a node that was killed.
	var steps []protocol.StepSpec
	for i := 0; i < 10; i++ {
		line := fmt.Sprintf("step%02d", i)
		steps = append(steps, protocol.StepSpec{
			Name: fmt.Sprintf("s%02d", i),
			Action: protocol.Action{Kind: "shell", Command: fmt.Sprintf(
				`echo %[1]s >> %[2]s/{{.Node}}.runs; grep -qx %[1]s %[2]s/{{.Node}}.txt 2>/dev/null || echo %[1]s >> %[2]s/{{.Node}}.txt`, line, out)},
			Idempotent: true,
			// While the killed leader's node restarts, gossip may call it
			// dead and its pending steps fail "node unreachable": a retry
			// runs them once it is back (they were never sent). Each retry
			// on a node still dead uses an attempt, so the backoffs must
			// outlast a restart under a loaded CI machine: 0.3 s doubling
			// over 8 attempts waits 38 s in all (5 attempts, 4.5 s, ran out
			// once in CI).
			Retry: protocol.RetryPolicy{Attempts: 8, BackoffMs: 300},
		})
	}
	var sub protocol.PlanSubmitted
	call(t, nc, &protocol.PlanSubmit{Plan: protocol.PlanSpec{Name: "once", Phases: []protocol.PhaseSpec{{Name: "all", Parallel: 2, Steps: steps}}}}, &sub)

	rng := rand.New(rand.NewPCG(42, 7))
	killed := map[string]bool{}
	for k := 0; k < 3; k++ {
		want := 5 + rng.IntN(15) // kill once this many more lines are written
		base := countLines(out)
		deadline := time.Now().Add(30 * time.Second)
		for countLines(out) < base+want && countLines(out) < 60 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond) // polling interval
		}
		var st protocol.Status
		call(t, nc, &protocol.StatusRequest{}, &st)
		if st.Leader == "" {
			t.Fatal("no leader")
		}
		t.Logf("kill -9 leader %s at %d lines", st.Leader, countLines(out))
		killed[st.Leader] = true
		if err := l.Kill(st.Leader); err != nil {
			t.Fatal(err)
		}
		if err := l.Start(st.Leader); err != nil {
			t.Fatal(err)
		}
	}
	pd := waitPlan(t, nc, sub.PlanID, 60*time.Second)
	if pd.Summary.State != "succeeded" {
		for _, ph := range pd.Phases {
			for _, s := range ph.Steps {
				if s.State != protocol.StateSucceeded {
					t.Logf("%s on %s: %s attempt %d: %s", s.Step, s.Node, s.State, s.Attempt, s.Error)
				}
			}
		}
		t.Fatalf("plan %s: %+v", pd.Summary.State, pd.Summary)
	}
	extra := 0
	for _, n := range l.Nodes {
		b, err := os.ReadFile(filepath.Join(out, n.Name+".txt"))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Fields(string(b))
		sort.Strings(lines)
		if len(lines) != 10 {
			t.Errorf("%s has %d lines: %v", n.Name, len(lines), lines)
		}
		for i := 1; i < len(lines); i++ {
			if lines[i] == lines[i-1] {
				t.Errorf("%s wrote %s twice", n.Name, lines[i])
			}
		}
		b, _ = os.ReadFile(filepath.Join(out, n.Name+".runs"))
		runs := strings.Fields(string(b))
		if len(runs) > 10 {
			extra += len(runs) - 10
			if !killed[n.Name] {
				t.Errorf("%s was never killed but ran steps again: %v", n.Name, runs)
			}
		}
	}
	if extra > 3 {
		t.Errorf("%d re-runs for 3 kills", extra)
	}
	t.Logf("re-runs of interrupted steps: %d", extra)
}

// countLines counts the lines of the .txt files in dir.
func countLines(dir string) int {
	n := 0
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".txt") {
			continue
		}
		b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		n += strings.Count(string(b), "\n")
	}
	return n
}
