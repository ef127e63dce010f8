package coordinator

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/drove-project/drove/protocol"
)

// simulation drives plans through the scheduler and the FSM, playing the
// leader and the agents: each round it takes the schedule, commits the
// unreachable results and the dispatches, then answers at most `answer`
// node-steps that are out, oldest first.
type simulation struct {
	t      *testing.T
	h      *fsmHarness
	now    int64
	down   func(string) bool
	agent  func(d Dispatch, action protocol.Action) protocol.StepResult
	out    []Dispatch
	log    []Dispatch     // every dispatch, in order
	maxOut map[string]int // per plan/phase/step: most node-steps out at once
}

func newSimulation(t *testing.T, h *fsmHarness) *simulation {
	return &simulation{t: t, h: h, now: 1000, maxOut: map[string]int{},
		agent: func(d Dispatch, _ protocol.Action) protocol.StepResult {
			return protocol.StepResult{StepID: d.StepID, Node: d.Node, Attempt: d.Attempt, State: protocol.StateSucceeded}
		}}
}

func (s *simulation) round(answer int) bool {
	s.t.Helper()
	sched := s.h.f.Schedule(Scheduler{}, s.now, nil, s.down)
	if len(sched.Resend) > 0 {
		s.t.Fatalf("resends in a simulation that answers everything: %v", sched.Resend)
	}
	progressed := false
	if len(sched.Unreachable) > 0 {
		s.h.must(RecordResults{Now: s.now, Results: sched.Unreachable})
		progressed = true
	}
	if len(sched.Dispatch) > 0 {
		var entries []DispatchEntry
		for _, d := range sched.Dispatch {
			entries = append(entries, d.Entry(1))
		}
		r := s.h.batch(MarkDispatched{Now: s.now, Entries: entries})
		for _, d := range sched.Dispatch {
			if !slices.Contains(r.Ignored, d.StepID) {
				s.out = append(s.out, d)
				s.log = append(s.log, d)
			}
		}
		progressed = progressed || r.Applied > 0
	}
	for _, p := range s.h.f.StateCopy().Plans {
		for i, ph := range p.Phases {
			for j, st := range ph.Steps {
				n := 0
				for _, ns := range st.Runs {
					if outstanding(ns.State) {
						n++
					}
				}
				key := fmt.Sprintf("%s/%d/%d", p.ID, i, j)
				s.maxOut[key] = max(s.maxOut[key], n)
			}
		}
	}
	if n := min(answer, len(s.out)); n > 0 {
		var results []protocol.StepResult
		for _, d := range s.out[:n] {
			action, err := s.h.f.RenderDispatch(d)
			if err != nil {
				s.t.Fatalf("render %s: %v", d.StepID, err)
			}
			results = append(results, s.agent(d, action))
		}
		s.out = s.out[n:]
		s.h.must(RecordResults{Now: s.now, Results: results})
		progressed = true
	}
	return progressed
}

// run plays rounds until every plan has ended and nothing is out.
func (s *simulation) run(answer int) {
	s.t.Helper()
	for range 10000 {
		st := s.h.f.StateCopy()
		done := len(s.out) == 0
		for _, p := range st.Plans {
			done = done && (p.State == PlanSucceeded || p.State == PlanFailed)
		}
		if done {
			return
		}
		if !s.round(answer) {
			// Nothing can happen now: jump to the next retry time.
			next := int64(-1)
			for _, p := range st.Plans {
				p.eachNodeStep(func(ns *NodeStep, _ *Step) {
					if ns.State == protocol.StatePending && ns.NotBefore > s.now && (next < 0 || ns.NotBefore < next) {
						next = ns.NotBefore
					}
				})
			}
			if next < 0 {
				s.t.Fatalf("stuck at %d with nothing to wait for", s.now)
			}
			s.now = next
			continue
		}
		s.now++
	}
	s.t.Fatal("the plans did not finish")
}

// dispatchedOnce checks that no node-step was dispatched twice with the
// same attempt.
func (s *simulation) dispatchedOnce() {
	s.t.Helper()
	seen := map[string]bool{}
	for _, d := range s.log {
		key := fmt.Sprintf("%s#%d", d.StepID, d.Attempt)
		if seen[key] {
			s.t.Errorf("%s dispatched twice", key)
		}
		seen[key] = true
	}
}

func TestSchedulerPhaseAndStepOrder(t *testing.T) {
	h := newFSMHarness(t)
	registerTestNodes(h)
	h.must(SubmitPlan{PlanID: "p1", Now: 1, Spec: protocol.PlanSpec{Name: "install", Phases: []protocol.PhaseSpec{
		{Name: "prepare", Steps: []protocol.StepSpec{mkStep("a", protocol.Selector{}), mkStep("b", roleSel("node"))}},
		{Name: "init", Steps: []protocol.StepSpec{mkStep("c", roleSel("master"))}},
		{Name: "join", Steps: []protocol.StepSpec{{Name: "d", Target: roleSel("node"), Action: shellAction(`kubeadm join --token {{output "c" "token"}}`)}}},
	}}})
	sim := newSimulation(t, h)
	sim.agent = func(d Dispatch, action protocol.Action) protocol.StepResult {
		r := protocol.StepResult{StepID: d.StepID, Node: d.Node, Attempt: d.Attempt, State: protocol.StateSucceeded}
		switch d.Spec.Name {
		case "c":
			r.Outputs = map[string]string{"token": "tok-" + d.Node}
		case "d":
			if action.Command != "kubeadm join --token tok-m1" {
				t.Errorf("d rendered to %q", action.Command)
			}
		}
		return r
	}
	sim.run(1) // answer one at a time, so steps would overlap if order were not kept
	if p := h.plan("p1"); p.State != PlanSucceeded {
		t.Fatalf("plan %s", p.State)
	}
	var names []string
	for _, d := range sim.log {
		names = append(names, d.Spec.Name)
	}
	if got := strings.Join(names, ","); got != "a,a,a,a,b,b,b,c,d,d,d" {
		t.Fatalf("dispatch order %s", got)
	}
	sim.dispatchedOnce()
}

func TestSchedulerParallel(t *testing.T) {
	for _, c := range []struct {
		parallel   int
		firstRound int
		maxOut     int
	}{
		{0, 4, 4},
		{1, 1, 1},
		{2, 2, 2},
		{3, 3, 3},
		{9, 4, 4},
	} {
		t.Run(fmt.Sprint("parallel ", c.parallel), func(t *testing.T) {
			h := newFSMHarness(t)
			registerTestNodes(h)
			h.must(SubmitPlan{PlanID: "p1", Now: 1, Spec: protocol.PlanSpec{Name: "p", Phases: []protocol.PhaseSpec{
				{Name: "a", Parallel: c.parallel, Steps: []protocol.StepSpec{mkStep("s1", protocol.Selector{}), mkStep("s2", protocol.Selector{})}}}}})
			if first := h.f.Schedule(Scheduler{}, 0, nil, nil); len(first.Dispatch) != c.firstRound {
				t.Fatalf("first round dispatches %d, want %d", len(first.Dispatch), c.firstRound)
			}
			sim := newSimulation(t, h)
			sim.run(1)
			if h.plan("p1").State != PlanSucceeded {
				t.Fatal("plan did not succeed")
			}
			for _, key := range []string{"p1/0/0", "p1/0/1"} {
				if sim.maxOut[key] != c.maxOut {
					t.Errorf("%s: at most %d out at once, want %d", key, sim.maxOut[key], c.maxOut)
				}
			}
			var order []string
			for _, d := range sim.log {
				order = append(order, d.Node)
			}
			if got := strings.Join(order, ","); got != "m1,n1,n2,n3,m1,n1,n2,n3" {
				t.Errorf("node order %s", got)
			}
			sim.dispatchedOnce()
		})
	}
}

func TestSchedulerBackoff(t *testing.T) {
	h := mkOnePlan(t, protocol.RetryPolicy{Attempts: 3, BackoffMs: 1000}, false, false)
	const id = "p1/0/0/m1"
	expect := func(now int64, attempt int) {
		t.Helper()
		s := h.f.Schedule(Scheduler{}, now, nil, nil)
		switch {
		case attempt == 0 && len(s.Dispatch) != 0:
			t.Fatalf("at %d: dispatched %+v during backoff", now, s.Dispatch)
		case attempt > 0 && (len(s.Dispatch) != 1 || s.Dispatch[0].StepID != id || s.Dispatch[0].Attempt != attempt):
			t.Fatalf("at %d: %+v, want attempt %d of %s", now, s.Dispatch, attempt, id)
		}
		if attempt > 0 {
			h.must(MarkDispatched{Now: now, Entries: []DispatchEntry{s.Dispatch[0].Entry(1)}})
		}
	}
	expect(0, 1)
	h.play(id, evResult(1, protocol.StateFailed, 10)) // next try at 1010
	expect(1009, 0)
	expect(1010, 2)
	h.play(id, evResult(2, protocol.StateFailed, 1020)) // next try at 1020+2000
	expect(3019, 0)
	expect(3020, 3)
	h.play(id, evResult(3, protocol.StateFailed, 3030))
	expect(1<<40, 0)
	if h.plan("p1").State != PlanFailed {
		t.Fatal("plan not failed after the last attempt")
	}
}

func TestSchedulerUnreachable(t *testing.T) {
	for _, c := range []struct {
		name    string
		retry   protocol.RetryPolicy
		n2      string // n2's state at the end
		n3      string
		plan    string
		removed bool // n2 removed from the registry instead of down
	}{
		{"no retry", protocol.RetryPolicy{}, protocol.StateFailed, protocol.StateSkipped, PlanFailed, false},
		{"unregistered node", protocol.RetryPolicy{}, protocol.StateFailed, protocol.StateSkipped, PlanFailed, true},
		{"retried, then fails", protocol.RetryPolicy{Attempts: 3, BackoffMs: 10}, protocol.StateFailed, protocol.StateSucceeded, PlanFailed, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newFSMHarness(t)
			registerTestNodes(h)
			s := mkStep("s", roleSel("node"))
			s.Retry = c.retry
			h.must(SubmitPlan{PlanID: "p1", Now: 1, Spec: protocol.PlanSpec{Name: "p", Phases: []protocol.PhaseSpec{
				{Name: "a", Parallel: 1, Steps: []protocol.StepSpec{s}}}}})
			sim := newSimulation(t, h)
			if c.removed {
				h.must(RemoveNode{ID: "n2"})
			} else {
				sim.down = func(node string) bool { return node == "n2" }
			}
			// Round 1: n1 takes the only slot; n2 is not looked at yet.
			first := h.f.Schedule(Scheduler{}, sim.now, nil, sim.down)
			if len(first.Dispatch) != 1 || first.Dispatch[0].Node != "n1" || len(first.Unreachable) != 0 {
				t.Fatalf("first round %+v", first)
			}
			sim.run(1)
			p := h.plan("p1")
			runs := p.Phases[0].Steps[0].Runs
			if runs["n2"].State != c.n2 || runs["n3"].State != c.n3 || p.State != c.plan {
				t.Fatalf("n2 %s n3 %s plan %s, want %s %s %s", runs["n2"].State, runs["n3"].State, p.State, c.n2, c.n3, c.plan)
			}
			if runs["n2"].Code != protocol.CodeNodeUnreachable || runs["n2"].Error != "node unreachable" {
				t.Errorf("n2 failed with %q %q", runs["n2"].Code, runs["n2"].Error)
			}
			want := max(1, c.retry.Attempts)
			if runs["n2"].Attempt != want {
				t.Errorf("n2 used %d attempts, want %d", runs["n2"].Attempt, want)
			}
			for _, d := range sim.log {
				if d.Node == "n2" {
					t.Errorf("dispatched to the unreachable node: %+v", d)
				}
			}
		})
	}
}

func TestSchedulerInFlight(t *testing.T) {
	h := newFSMHarness(t)
	registerTestNodes(h)
	h.must(SubmitPlan{PlanID: "p1", Now: 1, Spec: protocol.PlanSpec{Name: "p", Phases: []protocol.PhaseSpec{
		{Name: "a", Parallel: 2, Steps: []protocol.StepSpec{mkStep("s", roleSel("node"))}}}}})
	s := h.f.Schedule(Scheduler{}, 0, map[string]bool{"p1/0/0/n1": true}, nil)
	if len(s.Dispatch) != 1 || s.Dispatch[0].Node != "n2" {
		t.Fatalf("with n1 in flight: %+v", s.Dispatch)
	}
	all := map[string]bool{"p1/0/0/n1": true, "p1/0/0/n2": true}
	if s := h.f.Schedule(Scheduler{}, 0, all, nil); len(s.Dispatch) != 0 {
		t.Fatalf("with two in flight: %+v", s.Dispatch)
	}
	if got := s.StepIDs(); !got["p1/0/0/n2"] || len(got) != 1 {
		t.Fatalf("StepIDs %v", got)
	}
}

func TestSchedulerResendsOverdue(t *testing.T) {
	h := newFSMHarness(t)
	registerTestNodes(h)
	s1 := mkStep("s1", protocol.Selector{Nodes: []string{"n1", "n2"}})
	s1.TimeoutMs, s1.Retry = 1000, protocol.RetryPolicy{Attempts: 3}
	h.must(SubmitPlan{PlanID: "p1", Now: 1, Spec: protocol.PlanSpec{Name: "p", Phases: []protocol.PhaseSpec{{Name: "a", Steps: []protocol.StepSpec{s1}}}}})
	h.must(MarkDispatched{Now: 100, Entries: []DispatchEntry{{StepID: "p1/0/0/n1", Attempt: 1}, {StepID: "p1/0/0/n2", Attempt: 1}}})
	h.play("p1/0/0/n2", evResult(1, protocol.StateRunning, 150))
	sc := Scheduler{Grace: 500}
	down := func(node string) bool { return node == "n2" }

	if s := h.f.Schedule(sc, 1600, nil, down); !s.Empty() {
		t.Fatalf("within timeout+grace: %+v", s)
	}
	s := h.f.Schedule(sc, 1601, nil, down)
	if len(s.Dispatch) != 0 || len(s.Resend) != 1 || len(s.Unreachable) != 1 {
		t.Fatalf("overdue: %+v", s)
	}
	if r := s.Resend[0]; r.StepID != "p1/0/0/n1" || r.Attempt != 1 || r.Spec.TimeoutMs != 1000 {
		t.Errorf("resend %+v", r)
	}
	if u := s.Unreachable[0]; u.StepID != "p1/0/0/n2" || u.Attempt != 1 || u.State != protocol.StateInterrupted || u.Code != protocol.CodeNodeUnreachable {
		t.Errorf("unreachable %+v", u)
	}
	if s := h.f.Schedule(sc, 1601, s.StepIDs(), down); !s.Empty() {
		t.Errorf("in flight still offered: %+v", s)
	}
	// The package-level call leaves overdue node-steps to the caller.
	if d, u := NextDispatches(h.f.StateCopy(), 1<<40, nil, down); len(d)+len(u) != 0 {
		t.Errorf("NextDispatches offered %v %v", d, u)
	}
	// The step may have run on n2: not idempotent, so no automatic retry.
	h.must(RecordResults{Now: 1602, Results: s.Unreachable})
	if ns := h.nodeStep("p1/0/0/n2"); ns.State != protocol.StateInterrupted {
		t.Fatalf("n2 is %s", ns.State)
	}
	// Steps without a timeout use the scheduler's default.
	h2 := mkOnePlan(t, protocol.RetryPolicy{}, false, false)
	h2.play("p1/0/0/m1", evMark(1, 0))
	if s := h2.f.Schedule(Scheduler{DefaultTimeout: 100, Grace: 1}, 101, nil, nil); len(s.Resend) != 0 {
		t.Fatalf("resent early: %+v", s)
	}
	if s := h2.f.Schedule(Scheduler{DefaultTimeout: 100, Grace: 1}, 102, nil, nil); len(s.Resend) != 1 {
		t.Fatalf("not resent: %+v", s)
	}
	if s := h2.f.Schedule(Scheduler{}, DefaultStepTimeout+DefaultResendGrace, nil, nil); len(s.Resend) != 0 {
		t.Fatalf("defaults: resent early: %+v", s)
	}
}

func TestSchedulerRunsPlansIndependently(t *testing.T) {
	h := newFSMHarness(t)
	registerTestNodes(h)
	spec := protocol.PlanSpec{Name: "p", Phases: []protocol.PhaseSpec{
		{Name: "a", Parallel: 1, Steps: []protocol.StepSpec{mkStep("s1", roleSel("node")), mkStep("s2", roleSel("master"))}}}}
	h.must(SubmitPlan{PlanID: "bad", Now: 1, Spec: spec})
	h.must(SubmitPlan{PlanID: "good", Now: 2, Spec: spec})
	first := h.f.Schedule(Scheduler{}, 0, nil, nil)
	if len(first.Dispatch) != 2 || first.Dispatch[0].PlanID != "bad" || first.Dispatch[1].PlanID != "good" {
		t.Fatalf("first round %+v", first.Dispatch)
	}
	sim := newSimulation(t, h)
	sim.agent = func(d Dispatch, _ protocol.Action) protocol.StepResult {
		r := protocol.StepResult{StepID: d.StepID, Node: d.Node, Attempt: d.Attempt, State: protocol.StateSucceeded}
		if d.PlanID == "bad" && d.Node == "n2" {
			r.State, r.ExitCode = protocol.StateFailed, 1
		}
		return r
	}
	sim.run(2)
	if bad, good := h.plan("bad"), h.plan("good"); bad.State != PlanFailed || good.State != PlanSucceeded {
		t.Fatalf("bad %s, good %s", bad.State, good.State)
	}
	for _, d := range sim.log {
		if d.PlanID == "bad" && (d.Node == "n3" || d.Node == "m1") {
			t.Errorf("dispatched %s after its plan failed", d.StepID)
		}
	}
	if s := h.f.Schedule(Scheduler{}, 1<<40, nil, nil); !s.Empty() {
		t.Fatalf("ended plans still scheduled: %+v", s)
	}
	sim.dispatchedOnce()
}

func TestDispatchMessage(t *testing.T) {
	spec := mkStep("s", roleSel("node"))
	spec.TimeoutMs, spec.Idempotent = 5000, true
	d := Dispatch{StepID: "p1/0/0/n1", PlanID: "p1", Node: "n1", Spec: spec, Attempt: 2}
	m := d.Message(shellAction("rendered"), 7, "m1")
	want := protocol.StepDispatch{StepID: "p1/0/0/n1", PlanID: "p1", Node: "n1", Action: shellAction("rendered"),
		TimeoutMs: 5000, Idempotent: true, Attempt: 2, Term: 7, Leader: "m1"}
	if !reflect.DeepEqual(*m, want) {
		t.Fatalf("message %+v", m)
	}
	if e := d.Entry(7); e != (DispatchEntry{StepID: "p1/0/0/n1", Attempt: 2, Term: 7}) {
		t.Fatalf("entry %+v", e)
	}
}

// The dispatcher schedules from CloneActive: it must give the same
// schedule as the whole state, and leave finished plans out.
func TestCloneActiveSchedulesLikeTheWholeState(t *testing.T) {
	h := newFSMHarness(t)
	registerTestNodes(h)
	spec := protocol.PlanSpec{Name: "p", Phases: []protocol.PhaseSpec{{Name: "p", Steps: []protocol.StepSpec{mkStep("a", roleSel("node"))}}}}
	h.must(SubmitPlan{PlanID: "done", Now: 1, Spec: spec})
	newSimulation(t, h).run(10)
	h.must(SubmitPlan{PlanID: "live", Now: 2, Spec: spec})
	full := h.f.StateCopy()
	act := full.CloneActive()
	if !reflect.DeepEqual(act.Order, []string{"live"}) || len(act.Plans) != 1 || len(act.Nodes) != len(full.Nodes) {
		t.Fatalf("active copy holds plans %v and %d nodes", act.Order, len(act.Nodes))
	}
	a := Scheduler{}.Next(full, 5, nil, nil)
	b := Scheduler{}.Next(act, 5, nil, nil)
	if !reflect.DeepEqual(a, b) || len(a.Dispatch) == 0 {
		t.Fatalf("whole state schedules %+v, active copy %+v", a, b)
	}
}
