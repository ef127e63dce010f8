package coordinator

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/drove-project/drove/protocol"
)

func TestResolveSelector(t *testing.T) {
	h := newFSMHarness(t)
	registerTestNodes(h)
	st := h.f.StateCopy()
	for _, c := range []struct {
		name string
		sel  protocol.Selector
		want string // comma-separated node IDs, or the error text
	}{
		{"empty selects all", protocol.Selector{}, "m1,n1,n2,n3"},
		{"ids, sorted", protocol.Selector{Nodes: []string{"n2", "n1"}}, "n1,n2"},
		{"by name", protocol.Selector{Nodes: []string{"host-n3"}}, "n3"},
		{"id and name of one node", protocol.Selector{Nodes: []string{"n3", "host-n3"}}, "n3"},
		{"one role", roleSel("master"), "m1"},
		{"any of roles", roleSel("master", "node"), "m1,n1,n2,n3"},
		{"one label", protocol.Selector{Labels: map[string]string{"zone": "a"}}, "m1,n1,n2"},
		{"all labels", protocol.Selector{Labels: map[string]string{"zone": "a", "disk": "ssd"}}, "n1"},
		{"role and label", protocol.Selector{Roles: []string{"node"}, Labels: map[string]string{"zone": "a"}}, "n1,n2"},
		{"nodes and role disjoint", protocol.Selector{Nodes: []string{"n3"}, Roles: []string{"master"}}, "no node matches the target (nodes=n3 roles=master)"},
		{"unknown node", protocol.Selector{Nodes: []string{"n1", "ghost"}}, `no node matches: node "ghost" is not registered`},
		{"unknown role", roleSel("gpu"), "no node matches the target (roles=gpu)"},
		{"empty label value is not absence", protocol.Selector{Labels: map[string]string{"disk": ""}}, "no node matches the target (label disk=)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := st.Resolve(c.sel)
			if err != nil {
				if !errors.Is(err, ErrNoNodes) || err.Error() != c.want {
					t.Fatalf("error %q, want %q", err, c.want)
				}
				return
			}
			if s := strings.Join(got, ","); s != c.want {
				t.Fatalf("got %s, want %s", s, c.want)
			}
		})
	}
}

func mkValidSpec() protocol.PlanSpec {
	return protocol.PlanSpec{Name: "install", Phases: []protocol.PhaseSpec{
		{Name: "one", Steps: []protocol.StepSpec{mkStep("a", roleSel("master"))}},
		{Name: "two", Steps: []protocol.StepSpec{mkStep("b", roleSel("node"))}},
	}}
}

func TestValidatePlanSpec(t *testing.T) {
	for _, c := range []struct {
		name   string
		change func(*protocol.PlanSpec)
		want   string // in the error; "" means valid
	}{
		{"valid", func(*protocol.PlanSpec) {}, ""},
		{"no name", func(s *protocol.PlanSpec) { s.Name = "" }, "the plan has no name"},
		{"no phases", func(s *protocol.PlanSpec) { s.Phases = nil }, `plan "install" has no phases`},
		{"phase without name", func(s *protocol.PlanSpec) { s.Phases[1].Name = "" }, "phase 1 has no name"},
		{"phase twice", func(s *protocol.PlanSpec) { s.Phases[1].Name = "one" }, `phase "one" appears twice`},
		{"phase without steps", func(s *protocol.PlanSpec) { s.Phases[1].Steps = nil }, `phase "two" has no steps`},
		{"negative parallel", func(s *protocol.PlanSpec) { s.Phases[0].Parallel = -1 }, `phase "one": parallel -1 is negative`},
		{"step without name", func(s *protocol.PlanSpec) { s.Phases[1].Steps[0].Name = "" }, `phase "two": step 0 has no name`},
		{"duplicate step across phases", func(s *protocol.PlanSpec) { s.Phases[1].Steps[0].Name = "a" }, `phase "two" step "a": another step has the same name`},
		{"no action kind", func(s *protocol.PlanSpec) { s.Phases[0].Steps[0].Action.Kind = "" }, `phase "one" step "a": the action has no kind`},
		{"negative attempts", func(s *protocol.PlanSpec) { s.Phases[0].Steps[0].Retry.Attempts = -2 }, "retry attempts -2 is negative"},
		{"negative backoff", func(s *protocol.PlanSpec) { s.Phases[0].Steps[0].Retry.BackoffMs = -5 }, "retry backoff -5 ms is negative"},
		{"negative timeout", func(s *protocol.PlanSpec) { s.Phases[0].Steps[0].TimeoutMs = -1 }, "timeout -1 ms is negative"},
		{"template syntax", func(s *protocol.PlanSpec) { s.Phases[0].Steps[0].Action.Command = "echo {{" }, `phase "one" step "a": bad template: command`},
		{"unknown function", func(s *protocol.PlanSpec) { s.Phases[0].Steps[0].Action.Dir = "{{nope}}" }, `function "nope" not defined`},
		{"unknown field", func(s *protocol.PlanSpec) { s.Phases[0].Steps[0].Action.Env = map[string]string{"X": "{{.Nodes}}"} }, "env X"},
		{"output of a later step", func(s *protocol.PlanSpec) {
			s.Phases[0].Steps[0].Action.Command = `echo {{output "b" "x"}}`
		}, `output of step "b", which does not run before this one`},
		{"output of itself", func(s *protocol.PlanSpec) {
			s.Phases[0].Steps[0].Action.Content = `{{if true}}{{output "a" "x"}}{{end}}`
		}, `output of step "a"`},
		{"output of an unknown step", func(s *protocol.PlanSpec) {
			s.Phases[1].Steps[0].Action.Command = `{{with .Node}}{{output "zz" "x" | printf "%s"}}{{end}}`
		}, `output of step "zz"`},
		{"output of an earlier step", func(s *protocol.PlanSpec) {
			s.Phases[1].Steps[0].Action.Command = `join {{output "a" "token"}} on {{.Node}} ({{.PlanID}} {{.StepID}})`
		}, ""},
		{"earlier step in the same phase", func(s *protocol.PlanSpec) {
			s.Phases[1].Steps = append(s.Phases[1].Steps, protocol.StepSpec{Name: "c", Action: shellAction(`{{output "b" "x"}}`)})
		}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := mkValidSpec()
			c.change(&s)
			err := ValidatePlanSpec(s)
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.want == "":
			case err == nil:
				t.Fatalf("accepted, want %q", c.want)
			case !errors.Is(err, ErrInvalidPlan) || !strings.Contains(err.Error(), c.want):
				t.Fatalf("error %q, want ErrInvalidPlan with %q", err, c.want)
			}
		})
	}
}

func TestSubmitPlan(t *testing.T) {
	h := newFSMHarness(t)
	registerTestNodes(h)
	spec := mkValidSpec()
	spec.Phases[1].Parallel = 2
	h.must(SubmitPlan{PlanID: "p1", Spec: spec, Now: 42})
	p := h.plan("p1")
	if p.State != PlanPending || p.Created != 42 || p.Name != "install" || p.Phases[1].Parallel != 2 {
		t.Fatalf("plan: %+v", p)
	}
	st := p.Phases[1].Steps[0]
	if !slices.Equal(st.Nodes, []string{"n1", "n2", "n3"}) {
		t.Fatalf("nodes: %v", st.Nodes)
	}
	for _, node := range st.Nodes {
		ns := st.Runs[node]
		if ns.StepID != "p1/1/0/"+node || ns.Node != node || ns.State != protocol.StatePending || ns.Attempt != 0 {
			t.Errorf("node-step: %+v", ns)
		}
	}
	// The spec is kept, not shared with the request.
	spec.Phases[1].Steps[0].Target.Roles[0] = "changed"
	if h.plan("p1").Phases[1].Steps[0].Spec.Target.Roles[0] != "node" {
		t.Error("plan shares memory with the request")
	}

	for _, c := range []struct {
		name string
		req  SubmitPlan
		want error
		text string
	}{
		{"same ID", SubmitPlan{PlanID: "p1", Spec: mkValidSpec()}, ErrPlanExists, "p1"},
		{"empty ID", SubmitPlan{PlanID: "", Spec: mkValidSpec()}, ErrInvalidPlan, "plan ID"},
		{"slash in ID", SubmitPlan{PlanID: "a/b", Spec: mkValidSpec()}, ErrInvalidPlan, "plan ID"},
		{"dot in ID", SubmitPlan{PlanID: "a.b", Spec: mkValidSpec()}, ErrInvalidPlan, "plan ID"},
		{"invalid spec", SubmitPlan{PlanID: "p2", Spec: protocol.PlanSpec{Name: "x"}}, ErrInvalidPlan, "no phases"},
		{"step matches nothing", SubmitPlan{PlanID: "p2", Spec: protocol.PlanSpec{Name: "x", Phases: []protocol.PhaseSpec{
			{Name: "ok", Steps: []protocol.StepSpec{mkStep("fine", roleSel("node"))}},
			{Name: "gpu", Steps: []protocol.StepSpec{mkStep("train", roleSel("gpu"))}}}}}, ErrNoNodes, `phase "gpu" step "train"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := h.refused(c.req)
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.text) {
				t.Fatalf("error %q, want %v naming %q", err, c.want, c.text)
			}
		})
	}
	if n := len(h.f.Plans()); n != 1 {
		t.Fatalf("%d plans after refusals", n)
	}
}

// fsmEvent is one command in a node-step's history: a dispatch of an attempt
// or a result for one.
type fsmEvent struct {
	mark    int    // attempt to dispatch, or 0
	state   string // result state, when mark is 0
	attempt int
	now     int64
}

func evMark(attempt int, now int64) fsmEvent { return fsmEvent{mark: attempt, now: now} }
func evResult(attempt int, state string, now int64) fsmEvent {
	return fsmEvent{state: state, attempt: attempt, now: now}
}

// onePlan submits plan p1 with one step "s" on m1 (and on n1 when two),
// with the given retry policy.
func mkOnePlan(t *testing.T, retry protocol.RetryPolicy, idempotent, two bool) *fsmHarness {
	h := newFSMHarness(t)
	registerTestNodes(h)
	sel := protocol.Selector{Nodes: []string{"m1"}}
	if two {
		sel.Nodes = append(sel.Nodes, "n1")
	}
	s := mkStep("s", sel)
	s.Retry, s.Idempotent = retry, idempotent
	h.must(SubmitPlan{PlanID: "p1", Now: 1, Spec: protocol.PlanSpec{Name: "p", Phases: []protocol.PhaseSpec{{Name: "a", Steps: []protocol.StepSpec{s}}}}})
	return h
}

func (h *fsmHarness) play(stepID string, evs ...fsmEvent) (applied int) {
	for _, e := range evs {
		if e.mark > 0 {
			applied += h.batch(MarkDispatched{Now: e.now, Entries: []DispatchEntry{{StepID: stepID, Attempt: e.mark, Term: 3}}}).Applied
			continue
		}
		r := mkResult(stepID, e.attempt, e.state)
		r.Outputs = map[string]string{"o": e.state}
		r.Error = "because " + e.state
		applied += h.batch(RecordResults{Now: e.now, Term: 3, Results: []protocol.StepResult{r}}).Applied
	}
	return applied
}

func TestResultTransitions(t *testing.T) {
	const id = "p1/0/0/m1"
	retry3 := protocol.RetryPolicy{Attempts: 3, BackoffMs: 100}
	for _, c := range []struct {
		name       string
		retry      protocol.RetryPolicy
		idempotent bool
		events     []fsmEvent
		state      string
		attempt    int
		notBefore  int64
		plan       string
	}{
		{"dispatched", retry3, false, []fsmEvent{evMark(1, 10)}, protocol.StateDispatched, 1, 0, PlanRunning},
		{"running", retry3, false, []fsmEvent{evMark(1, 10), evResult(1, protocol.StateRunning, 11)}, protocol.StateRunning, 1, 0, PlanRunning},
		{"succeeded", retry3, false, []fsmEvent{evMark(1, 10), evResult(1, protocol.StateSucceeded, 20)}, protocol.StateSucceeded, 1, 0, PlanSucceeded},
		{"failed, retried after backoff", retry3, false, []fsmEvent{evMark(1, 10), evResult(1, protocol.StateFailed, 1000)}, protocol.StatePending, 1, 1100, PlanRunning},
		{"second failure doubles backoff", retry3, false, []fsmEvent{evMark(1, 10), evResult(1, protocol.StateFailed, 1000), evMark(2, 1100),
			evResult(2, protocol.StateFailed, 2000)}, protocol.StatePending, 2, 2200, PlanRunning},
		{"last attempt fails for good", retry3, false, []fsmEvent{evMark(1, 10), evResult(1, protocol.StateFailed, 1000), evMark(2, 1100),
			evResult(2, protocol.StateFailed, 2000), evMark(3, 2200), evResult(3, protocol.StateFailed, 3000)}, protocol.StateFailed, 3, 0, PlanFailed},
		{"no retry policy", protocol.RetryPolicy{}, false, []fsmEvent{evMark(1, 10), evResult(1, protocol.StateFailed, 20)}, protocol.StateFailed, 1, 0, PlanFailed},
		{"one attempt is no retry", protocol.RetryPolicy{Attempts: 1, BackoffMs: 5}, false, []fsmEvent{evMark(1, 10), evResult(1, protocol.StateFailed, 20)}, protocol.StateFailed, 1, 0, PlanFailed},
		{"interrupted idempotent is retried", retry3, true, []fsmEvent{evMark(1, 10), evResult(1, protocol.StateInterrupted, 50)}, protocol.StatePending, 1, 150, PlanRunning},
		{"interrupted non-idempotent stops", retry3, false, []fsmEvent{evMark(1, 10), evResult(1, protocol.StateInterrupted, 50)}, protocol.StateInterrupted, 1, 0, PlanFailed},
		{"failed before dispatch (unreachable), retried", retry3, false, []fsmEvent{evResult(1, protocol.StateFailed, 50)}, protocol.StatePending, 1, 150, PlanRunning},
		{"failed before dispatch, no retry", protocol.RetryPolicy{}, false, []fsmEvent{evResult(1, protocol.StateFailed, 50)}, protocol.StateFailed, 1, 0, PlanFailed},
		{"success after retries", retry3, false, []fsmEvent{evMark(1, 10), evResult(1, protocol.StateFailed, 1000), evMark(2, 1100),
			evResult(2, protocol.StateSucceeded, 1200)}, protocol.StateSucceeded, 2, 0, PlanSucceeded},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := mkOnePlan(t, c.retry, c.idempotent, false)
			if applied := h.play(id, c.events...); applied != len(c.events) {
				t.Fatalf("%d of %d events applied", applied, len(c.events))
			}
			ns := h.nodeStep(id)
			if ns.State != c.state || ns.Attempt != c.attempt || ns.NotBefore != c.notBefore {
				t.Errorf("node-step %s attempt %d notBefore %d, want %s %d %d", ns.State, ns.Attempt, ns.NotBefore, c.state, c.attempt, c.notBefore)
			}
			if p := h.plan("p1"); p.State != c.plan {
				t.Errorf("plan %s, want %s", p.State, c.plan)
			}
			switch ns.State {
			case protocol.StateSucceeded:
				if ns.Outputs["o"] != protocol.StateSucceeded {
					t.Errorf("outputs not kept: %v", ns.Outputs)
				}
			case protocol.StateFailed, protocol.StateInterrupted, protocol.StatePending:
				if len(ns.Outputs) != 0 {
					t.Errorf("a failed attempt keeps outputs: %v", ns.Outputs)
				}
			}
		})
	}
}

func TestStaleAndDuplicateResults(t *testing.T) {
	const id = "p1/0/0/m1"
	retry3 := protocol.RetryPolicy{Attempts: 3, BackoffMs: 100}
	for _, c := range []struct {
		name      string
		retry     protocol.RetryPolicy
		history   []fsmEvent
		late      protocol.StepResult
		applied   bool
		state     string
		notBefore int64
		plan      string
	}{
		{"older attempt", retry3, []fsmEvent{evMark(1, 10), evResult(1, protocol.StateFailed, 20), evMark(2, 200)},
			mkResult(id, 1, protocol.StateSucceeded), false, protocol.StateDispatched, 0, PlanRunning},
		{"repeat of a success", retry3, []fsmEvent{evMark(1, 10), evResult(1, protocol.StateSucceeded, 20)},
			mkResult(id, 1, protocol.StateFailed), false, protocol.StateSucceeded, 0, PlanSucceeded},
		{"repeat of a failure waiting for retry", retry3, []fsmEvent{evMark(1, 10), evResult(1, protocol.StateFailed, 20)},
			mkResult(id, 1, protocol.StateFailed), false, protocol.StatePending, 120, PlanRunning},
		{"late success of a failed attempt", protocol.RetryPolicy{}, []fsmEvent{evMark(1, 10), evResult(1, protocol.StateFailed, 20)},
			mkResult(id, 1, protocol.StateSucceeded), true, protocol.StateSucceeded, 0, PlanSucceeded},
		{"late success of an attempt waiting for retry", retry3, []fsmEvent{evMark(1, 10), evResult(1, protocol.StateFailed, 20)},
			mkResult(id, 1, protocol.StateSucceeded), true, protocol.StateSucceeded, 0, PlanSucceeded},
		{"newer attempt than dispatched", retry3, []fsmEvent{evMark(1, 10)},
			mkResult(id, 2, protocol.StateSucceeded), false, protocol.StateDispatched, 0, PlanRunning},
		{"newer attempt of a final step", protocol.RetryPolicy{}, []fsmEvent{evMark(1, 10), evResult(1, protocol.StateFailed, 20)},
			mkResult(id, 2, protocol.StateSucceeded), false, protocol.StateFailed, 0, PlanFailed},
		{"running after the end", retry3, []fsmEvent{evMark(1, 10), evResult(1, protocol.StateSucceeded, 20)},
			mkResult(id, 1, protocol.StateRunning), false, protocol.StateSucceeded, 0, PlanSucceeded},
		{"running before dispatch", retry3, nil,
			mkResult(id, 1, protocol.StateRunning), false, protocol.StatePending, 0, PlanPending},
		{"attempt zero", retry3, nil,
			mkResult(id, 0, protocol.StateFailed), false, protocol.StatePending, 0, PlanPending},
		{"wrong node", retry3, []fsmEvent{evMark(1, 10)},
			protocol.StepResult{StepID: id, Node: "n1", Attempt: 1, State: protocol.StateSucceeded}, false, protocol.StateDispatched, 0, PlanRunning},
		{"not a result state", retry3, []fsmEvent{evMark(1, 10)},
			mkResult(id, 1, protocol.StateRejected), false, protocol.StateDispatched, 0, PlanRunning},
		{"unknown step", retry3, []fsmEvent{evMark(1, 10)},
			mkResult("p1/0/5/m1", 1, protocol.StateSucceeded), false, protocol.StateDispatched, 0, PlanRunning},
		{"unknown plan", retry3, []fsmEvent{evMark(1, 10)},
			mkResult("p9/0/0/m1", 1, protocol.StateSucceeded), false, protocol.StateDispatched, 0, PlanRunning},
		{"malformed step ID", retry3, []fsmEvent{evMark(1, 10)},
			protocol.StepResult{StepID: "garbage", Attempt: 1, State: protocol.StateSucceeded}, false, protocol.StateDispatched, 0, PlanRunning},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := mkOnePlan(t, c.retry, false, false)
			h.play(id, c.history...)
			r := h.batch(RecordResults{Now: 5000, Results: []protocol.StepResult{c.late}})
			if (r.Applied == 1) != c.applied || (len(r.Ignored) == 1) == c.applied {
				t.Fatalf("response %+v, want applied=%v", r, c.applied)
			}
			if !c.applied && r.Ignored[0] != c.late.StepID {
				t.Errorf("ignored %v", r.Ignored)
			}
			ns := h.nodeStep(id)
			if ns.State != c.state || ns.NotBefore != c.notBefore {
				t.Errorf("node-step %s notBefore %d, want %s %d", ns.State, ns.NotBefore, c.state, c.notBefore)
			}
			if p := h.plan("p1"); p.State != c.plan {
				t.Errorf("plan %s, want %s", p.State, c.plan)
			}
		})
	}
}

func TestMarkDispatched(t *testing.T) {
	h := mkOnePlan(t, protocol.RetryPolicy{Attempts: 3, BackoffMs: 10}, false, true)
	h.play("p1/0/0/n1", evMark(1, 5), evResult(1, protocol.StateSucceeded, 6))
	r := h.batch(MarkDispatched{Now: 50, Entries: []DispatchEntry{
		{StepID: "p1/0/0/m1", Attempt: 1, Term: 4},
		{StepID: "p1/0/0/m1", Attempt: 1, Term: 4}, // duplicate in the batch
		{StepID: "p1/0/0/n1", Attempt: 2, Term: 4}, // finished
		{StepID: "p1/0/0/zz", Attempt: 1, Term: 4}, // unknown
	}})
	if r.Applied != 1 || !slices.Equal(r.Ignored, []string{"p1/0/0/m1", "p1/0/0/n1", "p1/0/0/zz"}) {
		t.Fatalf("response %+v", r)
	}
	ns := h.nodeStep("p1/0/0/m1")
	if ns.State != protocol.StateDispatched || ns.Attempt != 1 || ns.Term != 4 || ns.DispatchedAt != 50 {
		t.Fatalf("node-step %+v", ns)
	}
	if h.plan("p1").State != PlanRunning {
		t.Fatalf("plan %s", h.plan("p1").State)
	}
	// A failed attempt waiting for its retry is marked with a newer
	// attempt only, and the new dispatch clears the old result.
	h.play("p1/0/0/m1", evResult(1, protocol.StateFailed, 60))
	if r := h.batch(MarkDispatched{Now: 70, Entries: []DispatchEntry{{StepID: "p1/0/0/m1", Attempt: 1}}}); r.Applied != 0 {
		t.Fatal("re-marked the same attempt")
	}
	h.play("p1/0/0/m1", evMark(2, 80))
	if ns := h.nodeStep("p1/0/0/m1"); ns.Attempt != 2 || ns.Error != "" || ns.NotBefore != 0 || ns.DispatchedAt != 80 {
		t.Fatalf("after re-dispatch: %+v", ns)
	}
}

// TestPlanFailsFastAndRecovers walks a plan through failure, partial and
// full retries.
func TestPlanFailsFastAndRecovers(t *testing.T) {
	h := newFSMHarness(t)
	registerTestNodes(h)
	h.must(SubmitPlan{PlanID: "p1", Now: 1, Spec: protocol.PlanSpec{Name: "p", Phases: []protocol.PhaseSpec{
		{Name: "a", Steps: []protocol.StepSpec{mkStep("s1", roleSel("node")), mkStep("s2", roleSel("master"))}}}}})
	states := func() string {
		var out []string
		h.plan("p1").eachNodeStep(func(ns *NodeStep, _ *Step) { out = append(out, ns.Node+":"+ns.State) })
		return h.plan("p1").State + " " + strings.Join(out, " ")
	}
	check := func(want string) {
		t.Helper()
		if got := states(); got != want {
			t.Fatalf("got  %s\nwant %s", got, want)
		}
	}
	h.must(MarkDispatched{Now: 2, Entries: []DispatchEntry{{StepID: "p1/0/0/n1", Attempt: 1}, {StepID: "p1/0/0/n2", Attempt: 1}}})
	h.play("p1/0/0/n1", evResult(1, protocol.StateFailed, 3))
	check("failed n1:failed n2:dispatched n3:skipped m1:skipped")
	h.play("p1/0/0/n2", evResult(1, protocol.StateFailed, 4))
	check("failed n1:failed n2:failed n3:skipped m1:skipped")

	// Retry one node: everything skipped comes back, the plan runs.
	h.must(RetrySteps{PlanID: "p1", StepID: "p1/0/0/n1", Now: 5})
	check("running n1:pending n2:failed n3:pending m1:pending")
	h.play("p1/0/0/n1", evMark(2, 6), evResult(2, protocol.StateSucceeded, 7))
	h.play("p1/0/0/n3", evMark(1, 6), evResult(1, protocol.StateSucceeded, 7))
	// n2 is still failed and nothing else in its step can run: failed again.
	check("failed n1:succeeded n2:failed n3:succeeded m1:skipped")

	// Retry everything.
	h.must(RetrySteps{PlanID: "p1", Now: 8})
	check("running n1:succeeded n2:pending n3:succeeded m1:pending")
	if ns := h.nodeStep("p1/0/0/n2"); ns.Attempt != 1 || ns.Error != "" || ns.Code != "" {
		t.Fatalf("retried node-step keeps its attempt and drops its error: %+v", ns)
	}
	h.play("p1/0/0/n2", evMark(2, 9), evResult(2, protocol.StateSucceeded, 10))
	check("running n1:succeeded n2:succeeded n3:succeeded m1:pending")
	h.play("p1/0/1/m1", evMark(1, 11), evResult(1, protocol.StateSucceeded, 12))
	check("succeeded n1:succeeded n2:succeeded n3:succeeded m1:succeeded")
	sum := h.f.Plans()[0]
	if sum.Steps != 4 || sum.Succeeded != 4 || sum.Failed != 0 {
		t.Fatalf("summary %+v", sum)
	}
}

func TestLateSuccessUnfailsPlan(t *testing.T) {
	h := newFSMHarness(t)
	registerTestNodes(h)
	h.must(SubmitPlan{PlanID: "p1", Now: 1, Spec: protocol.PlanSpec{Name: "p", Phases: []protocol.PhaseSpec{
		{Name: "a", Parallel: 1, Steps: []protocol.StepSpec{mkStep("s1", protocol.Selector{Nodes: []string{"n1", "n2"}})}}}}})
	// n1 was reported unreachable while it was in fact running the step.
	h.play("p1/0/0/n1", evMark(1, 2), evResult(1, protocol.StateInterrupted, 3))
	if p := h.plan("p1"); p.State != PlanFailed || p.Phases[0].Steps[0].Runs["n2"].State != protocol.StateSkipped {
		t.Fatalf("plan %s", p.State)
	}
	h.play("p1/0/0/n1", evResult(1, protocol.StateSucceeded, 4))
	p := h.plan("p1")
	if p.State != PlanRunning || p.Phases[0].Steps[0].Runs["n2"].State != protocol.StatePending {
		t.Fatalf("after the late success: plan %s, n2 %s", p.State, p.Phases[0].Steps[0].Runs["n2"].State)
	}
}

func TestRetrySteps(t *testing.T) {
	setup := func(t *testing.T) *fsmHarness {
		h := newFSMHarness(t)
		registerTestNodes(h)
		h.must(SubmitPlan{PlanID: "p1", Now: 1, Spec: protocol.PlanSpec{Name: "p", Phases: []protocol.PhaseSpec{
			{Name: "a", Steps: []protocol.StepSpec{mkStep("s1", roleSel("node")), mkStep("s2", roleSel("master"))}}}}})
		h.must(SubmitPlan{PlanID: "ok", Now: 1, Spec: mkValidSpec()})
		h.must(MarkDispatched{Now: 2, Entries: []DispatchEntry{{StepID: "p1/0/0/n1", Attempt: 1}, {StepID: "p1/0/0/n2", Attempt: 1}, {StepID: "p1/0/0/n3", Attempt: 1}}})
		h.must(RecordResults{Now: 3, Results: []protocol.StepResult{mkResult("p1/0/0/n1", 1, protocol.StateFailed),
			mkResult("p1/0/0/n2", 1, protocol.StateInterrupted), mkResult("p1/0/0/n3", 1, protocol.StateSucceeded)}})
		return h
	}
	for _, c := range []struct {
		name    string
		req     RetrySteps
		err     error
		pending []string // node-steps pending afterwards
	}{
		{"all", RetrySteps{PlanID: "p1"}, nil, []string{"p1/0/0/n1", "p1/0/0/n2", "p1/0/1/m1"}},
		{"by node-step", RetrySteps{PlanID: "p1", StepID: "p1/0/0/n2"}, nil, []string{"p1/0/0/n2", "p1/0/1/m1"}},
		{"by step name", RetrySteps{PlanID: "p1", StepID: "s1"}, nil, []string{"p1/0/0/n1", "p1/0/0/n2", "p1/0/1/m1"}},
		{"a skipped node-step behind a failure", RetrySteps{PlanID: "p1", StepID: "p1/0/1/m1"}, ErrNotRetryable, nil},
		{"unknown plan", RetrySteps{PlanID: "nope"}, ErrUnknownPlan, nil},
		{"unknown step name", RetrySteps{PlanID: "p1", StepID: "nope"}, ErrUnknownStep, nil},
		{"unknown node-step", RetrySteps{PlanID: "p1", StepID: "p1/0/0/zz"}, ErrUnknownStep, nil},
		{"node-step of another plan", RetrySteps{PlanID: "p1", StepID: "ok/0/0/m1"}, ErrUnknownStep, nil},
		{"malformed node-step", RetrySteps{PlanID: "p1", StepID: "p1/x/0/n1"}, ErrBadStepID, nil},
		{"succeeded node-step", RetrySteps{PlanID: "p1", StepID: "p1/0/0/n3"}, ErrNotRetryable, nil},
		{"nothing failed", RetrySteps{PlanID: "ok"}, ErrNothingToRetry, nil},
		{"skipped step behind a failure", RetrySteps{PlanID: "p1", StepID: "s2"}, ErrNotRetryable, nil},
		{"step with nothing to retry", RetrySteps{PlanID: "ok", StepID: "a"}, ErrNothingToRetry, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := setup(t)
			if c.err != nil {
				if err := h.refused(c.req); !errors.Is(err, c.err) {
					t.Fatalf("error %v, want %v", err, c.err)
				}
				return
			}
			h.must(c.req)
			p := h.plan("p1")
			if p.State != PlanRunning {
				t.Errorf("plan %s", p.State)
			}
			var pending []string
			p.eachNodeStep(func(ns *NodeStep, _ *Step) {
				if ns.State == protocol.StatePending {
					pending = append(pending, ns.StepID)
				}
			})
			if !slices.Equal(pending, c.pending) {
				t.Errorf("pending %v, want %v", pending, c.pending)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	for _, c := range []struct {
		first   int64
		attempt int
		want    int64
	}{
		{0, 1, 0},
		{100, 1, 100},
		{100, 2, 200},
		{100, 3, 400},
		{100, 10, 51200},
		{1000, 100, maxBackoffMs},
		{2 * maxBackoffMs, 5, 2 * maxBackoffMs},
		{1 << 62, 64, 1 << 62},
	} {
		if got := Backoff(c.first, c.attempt); got != c.want {
			t.Errorf("Backoff(%d, %d) = %d, want %d", c.first, c.attempt, got, c.want)
		}
	}
}

func TestOutputKeepsTail(t *testing.T) {
	h := mkOnePlan(t, protocol.RetryPolicy{}, false, false)
	h.play("p1/0/0/m1", evMark(1, 1))
	long := strings.Repeat("é", 3000) + "END" // 6003 bytes, two-byte runes
	r := mkResult("p1/0/0/m1", 1, protocol.StateSucceeded)
	r.Output, r.OutputDigest = long, "sha256:abc"
	h.must(RecordResults{Now: 2, Results: []protocol.StepResult{r}})
	ns := h.nodeStep("p1/0/0/m1")
	if len(ns.Output) > MaxOutputTail || !strings.HasSuffix(ns.Output, "END") || !utf8.ValidString(ns.Output) {
		t.Fatalf("output: %d bytes, valid %v", len(ns.Output), utf8.ValidString(ns.Output))
	}
	if len(ns.Output) < MaxOutputTail-1 || ns.OutputDigest != "sha256:abc" {
		t.Fatalf("output kept %d bytes, digest %q", len(ns.Output), ns.OutputDigest)
	}
}

func TestOutputsTooLargeFailStep(t *testing.T) {
	h := mkOnePlan(t, protocol.RetryPolicy{Attempts: 5}, false, false)
	h.play("p1/0/0/m1", evMark(1, 1))
	r := mkResult("p1/0/0/m1", 1, protocol.StateSucceeded)
	r.Outputs = map[string]string{"big": strings.Repeat("x", MaxOutputsSize)}
	h.must(RecordResults{Now: 2, Results: []protocol.StepResult{r}})
	ns := h.nodeStep("p1/0/0/m1")
	if ns.State != protocol.StateFailed || len(ns.Outputs) != 0 || !strings.Contains(ns.Error, "outputs") {
		t.Fatalf("node-step %+v", ns)
	}
	if h.plan("p1").State != PlanFailed {
		t.Fatal("plan not failed")
	}
}

func TestTail(t *testing.T) {
	for _, c := range []struct {
		in   string
		max  int
		want string
	}{
		{"short", 10, "short"},
		{"abcdef", 3, "def"},
		{"aé", 1, ""},         // the tail byte is half a rune
		{"xxé", 2, "é"},       // starts on a rune boundary
		{"a€b", 3, "b"},       // € is three bytes: cut inside it, skip to b
		{"a€b", 4, "€b"},      // exact
		{"€€", 4, "€"},        // skip the continuation bytes
		{"", 5, ""},           // empty
		{"abc", 3, "abc"},     // equal
		{"ab\xff", 1, "\xff"}, // not UTF-8: kept as it is
	} {
		if got := tail(c.in, c.max); got != c.want {
			t.Errorf("tail(%q, %d) = %q, want %q", c.in, c.max, got, c.want)
		}
	}
}

func TestDetailListsEveryNodeStep(t *testing.T) {
	h := mkOnePlan(t, protocol.RetryPolicy{}, false, true)
	r := mkResult("p1/0/0/n1", 1, protocol.StateFailed)
	r.ExitCode, r.Error, r.Output = 3, "exit 3", "boom"
	h.play("p1/0/0/n1", evMark(1, 1))
	h.must(RecordResults{Now: 2, Results: []protocol.StepResult{r}})
	d, _ := h.f.PlanDetail("p1")
	if d.Summary.State != PlanFailed || d.Summary.Failed != 1 || d.Summary.Steps != 2 || len(d.Phases) != 1 || d.Phases[0].Name != "a" {
		t.Fatalf("detail %+v", d)
	}
	got := map[string]protocol.NodeStepStatus{}
	for _, s := range d.Phases[0].Steps {
		got[s.Node] = s
	}
	if n1 := got["n1"]; n1.State != protocol.StateFailed || n1.ExitCode != 3 || n1.Error != "exit 3" || n1.Output != "boom" || n1.Step != "s" || n1.Attempt != 1 {
		t.Errorf("n1: %+v", n1)
	}
	if m1 := got["m1"]; m1.State != protocol.StateSkipped || m1.StepID != "p1/0/0/m1" {
		t.Errorf("m1: %+v", m1)
	}
}

func TestParseStepID(t *testing.T) {
	for _, c := range []struct {
		id     string
		ok     bool
		plan   string
		ph, st int
		node   string
	}{
		{"p1/0/2/n1", true, "p1", 0, 2, "n1"},
		{"p1/10/0/a/b", true, "p1", 10, 0, "a/b"},
		{"p1/0/0/", false, "", 0, 0, ""},
		{"/0/0/n1", false, "", 0, 0, ""},
		{"p1/-1/0/n1", false, "", 0, 0, ""},
		{"p1/01/0/n1", false, "", 0, 0, ""},
		{"p1/x/0/n1", false, "", 0, 0, ""},
		{"p1/0/n1", false, "", 0, 0, ""},
	} {
		plan, ph, st, node, err := ParseStepID(c.id)
		if (err == nil) != c.ok {
			t.Errorf("%q: err %v", c.id, err)
			continue
		}
		if c.ok && (plan != c.plan || ph != c.ph || st != c.st || node != c.node) {
			t.Errorf("%q: %s %d %d %s", c.id, plan, ph, st, node)
		}
		if c.ok && MakeStepID(plan, ph, st, node) != c.id {
			t.Errorf("%q does not round trip", c.id)
		}
		if !c.ok && !errors.Is(err, ErrBadStepID) {
			t.Errorf("%q: %v is not ErrBadStepID", c.id, err)
		}
	}
}

// registerAddressedNodes registers a1 (10.0.0.1, master), a2 (10.0.0.2)
// and a3 (10.0.0.3), with names host-a1..3.
func registerAddressedNodes(h *fsmHarness) {
	for i, role := range []string{"master", "node", "node"} {
		m := testMember(fmt.Sprintf("a%d", i+1), []string{role}, nil)
		m.Address = fmt.Sprintf("10.0.0.%d", i+1)
		h.must(RegisterNode{Member: m, Now: 1})
	}
}

func TestResolveByAddress(t *testing.T) {
	h := newFSMHarness(t)
	registerAddressedNodes(h)
	st := h.f.StateCopy()
	got, err := st.Resolve(protocol.Selector{Nodes: []string{"10.0.0.3", "host-a2"}})
	if err != nil || strings.Join(got, ",") != "a2,a3" {
		t.Fatalf("got %v, %v", got, err)
	}
	if _, err := st.Resolve(protocol.Selector{Nodes: []string{"10.0.0.9"}}); !errors.Is(err, ErrNoNodes) || !strings.Contains(err.Error(), "10.0.0.9") {
		t.Fatalf("unknown address: %v", err)
	}
}

func TestNodeEnvResolvedAtSubmit(t *testing.T) {
	h := newFSMHarness(t)
	registerAddressedNodes(h)
	step := mkStep("s", protocol.Selector{Nodes: []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"}})
	step.NodeEnv = map[string]map[string]string{
		"10.0.0.1": {"HostIP": "10.0.0.1"}, // by address
		"host-a2":  {"HostIP": "10.0.0.2"}, // by name
		"a3":       {"HostIP": "10.0.0.3", "T": "{{.Node}}"},
	}
	spec := protocol.PlanSpec{Name: "p", Phases: []protocol.PhaseSpec{{Name: "a", Steps: []protocol.StepSpec{step}}}}
	h.must(SubmitPlan{PlanID: "p1", Now: 1, Spec: spec})
	got := h.plan("p1").Phases[0].Steps[0].Spec.NodeEnv
	want := map[string]map[string]string{
		"a1": {"HostIP": "10.0.0.1"}, "a2": {"HostIP": "10.0.0.2"}, "a3": {"HostIP": "10.0.0.3", "T": "{{.Node}}"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("resolved nodeEnv %v, want %v", got, want)
	}
	step.NodeEnv["a3"]["HostIP"] = "changed"
	if h.plan("p1").Phases[0].Steps[0].Spec.NodeEnv["a3"]["HostIP"] != "10.0.0.3" {
		t.Fatal("the plan shares nodeEnv with the request")
	}

	for _, c := range []struct {
		name    string
		target  protocol.Selector
		nodeEnv map[string]map[string]string
		text    string
	}{
		{"key of no node", roleSel("node"), map[string]map[string]string{"10.0.0.9": {"K": "v"}}, `nodeEnv key "10.0.0.9" names none of the step's nodes (a2, a3)`},
		{"key of a node the step skips", roleSel("node"), map[string]map[string]string{"10.0.0.1": {"K": "v"}}, `"10.0.0.1"`},
		{"two keys for one node", roleSel("node"), map[string]map[string]string{"a2": {"K": "1"}, "10.0.0.2": {"K": "2"}}, `both name node a2`},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := protocol.StepSpec{Name: "s", Target: c.target, Action: shellAction("true"), NodeEnv: c.nodeEnv}
			err := h.refused(SubmitPlan{PlanID: "p2", Now: 2, Spec: protocol.PlanSpec{Name: "p", Phases: []protocol.PhaseSpec{{Name: "a", Steps: []protocol.StepSpec{s}}}}})
			if !errors.Is(err, ErrInvalidPlan) || !strings.Contains(err.Error(), c.text) || !strings.Contains(err.Error(), `step "s"`) {
				t.Fatalf("error %q, want ErrInvalidPlan with %q", err, c.text)
			}
		})
	}
}
