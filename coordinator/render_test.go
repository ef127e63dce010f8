package coordinator

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/drove-project/drove/protocol"
)

// renderPlan returns a plan whose step "init" ran on n1 and n2: n1
// succeeded with only "other", n2 succeeded with "token"; n3 failed. Step
// "use" runs on m1.
func renderPlan(t *testing.T) (*fsmHarness, *Plan) {
	h := newFSMHarness(t)
	registerTestNodes(h)
	h.must(SubmitPlan{PlanID: "p1", Now: 1, Spec: protocol.PlanSpec{Name: "p", Phases: []protocol.PhaseSpec{
		{Name: "a", Steps: []protocol.StepSpec{mkStep("init", roleSel("node")), mkStep("use", roleSel("master"))}}}}})
	h.must(MarkDispatched{Now: 2, Entries: []DispatchEntry{{StepID: "p1/0/0/n1", Attempt: 1}, {StepID: "p1/0/0/n2", Attempt: 1}, {StepID: "p1/0/0/n3", Attempt: 1}}})
	n1 := mkResult("p1/0/0/n1", 1, protocol.StateSucceeded)
	n1.Outputs = map[string]string{"other": "o1", "both": "from-n1"}
	n2 := mkResult("p1/0/0/n2", 1, protocol.StateSucceeded)
	n2.Outputs = map[string]string{"token": "abc.123", "both": "from-n2"}
	n3 := mkResult("p1/0/0/n3", 1, protocol.StateRunning)
	h.must(RecordResults{Now: 3, Results: []protocol.StepResult{n1, n2, n3}})
	return h, h.plan("p1")
}

func TestRender(t *testing.T) {
	_, p := renderPlan(t)
	ns := *p.Phases[0].Steps[1].Runs["m1"]
	in := protocol.Action{
		Kind:    "write-file",
		Command: `join --token {{output "init" "token"}} --node {{.Node}} --plan {{.PlanID}} --step {{.StepID}}`,
		Content: `both={{output "init" "both"}} other={{output "init" "other" | printf "%q"}}`,
		Dir:     "/var/lib/{{.Node}}",
		Path:    "/etc/{{.Node}}", // not a template
		Env:     map[string]string{"TOKEN": `{{output "init" "token"}}`, "PLAIN": "a }} b"},
		Mode:    0o600,
	}
	got, err := Render(p, ns, in)
	if err != nil {
		t.Fatal(err)
	}
	want := protocol.Action{
		Kind:    "write-file",
		Command: "join --token abc.123 --node m1 --plan p1 --step p1/0/1/m1",
		Content: `both=from-n1 other="o1"`,
		Dir:     "/var/lib/m1",
		Path:    "/etc/{{.Node}}",
		Env:     map[string]string{"TOKEN": "abc.123", "PLAIN": "a }} b"},
		Mode:    0o600,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("rendered\n%+v\nwant\n%+v", got, want)
	}
	if in.Env["TOKEN"] != `{{output "init" "token"}}` {
		t.Fatal("Render changed its input")
	}
}

func TestRenderFailures(t *testing.T) {
	_, p := renderPlan(t)
	ns := *p.Phases[0].Steps[1].Runs["m1"]
	for _, c := range []struct {
		name   string
		action protocol.Action
		want   error
		text   []string
	}{
		{"missing output", shellAction(`x {{output "init" "nope"}}`), ErrMissingOutput,
			[]string{"p1/0/1/m1", "command", `step "init"`, `output "nope"`}},
		{"missing step", protocol.Action{Kind: "shell", Env: map[string]string{"A": `{{output "ghost" "x"}}`}}, ErrMissingOutput,
			[]string{"env A", `no step "ghost"`}},
		{"output of a step still running", shellAction(`{{output "use" "x"}}`), ErrMissingOutput, []string{`step "use"`}},
		{"bad syntax", protocol.Action{Kind: "shell", Dir: "{{"}, ErrTemplate, []string{"dir"}},
		{"execution error", protocol.Action{Kind: "shell", Content: "{{.Missing}}"}, ErrTemplate, []string{"content", "Missing"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Render(p, ns, c.action)
			if !errors.Is(err, c.want) {
				t.Fatalf("error %v, want %v", err, c.want)
			}
			for _, s := range c.text {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
		})
	}
}

func TestRenderDispatch(t *testing.T) {
	h, _ := renderPlan(t)
	h.must(RecordResults{Now: 4, Results: []protocol.StepResult{mkResult("p1/0/0/n3", 1, protocol.StateSucceeded)}})
	sched := h.f.Schedule(Scheduler{}, 10, nil, nil)
	if len(sched.Dispatch) != 1 {
		t.Fatalf("schedule %+v", sched)
	}
	d := sched.Dispatch[0]
	d.Spec.Action = shellAction(`echo {{output "init" "token"}} on {{.Node}}`)
	got, err := h.f.RenderDispatch(d)
	if err != nil || got.Command != "echo abc.123 on m1" {
		t.Fatalf("RenderDispatch: %q %v", got.Command, err)
	}
	d.PlanID = "nope"
	if _, err := h.f.RenderDispatch(d); !errors.Is(err, ErrUnknownPlan) {
		t.Fatalf("unknown plan: %v", err)
	}
}

func TestRenderMergesNodeEnv(t *testing.T) {
	h := newFSMHarness(t)
	registerAddressedNodes(h)
	step := protocol.StepSpec{Name: "s", Target: protocol.Selector{Nodes: []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"}},
		Action: protocol.Action{Kind: "shell", Command: "echo $HostIP",
			Env: map[string]string{"HostIP": "none", "Cluster": "c-{{.Node}}", "Keep": "k"}},
		NodeEnv: map[string]map[string]string{
			"10.0.0.1": {"HostIP": "10.0.0.1", "Raw": "{{.Node}} {{output \"x\" \"y\"}}"},
			"host-a2":  {"HostIP": "10.0.0.2"},
		}}
	h.must(SubmitPlan{PlanID: "p1", Now: 1, Spec: protocol.PlanSpec{Name: "p", Phases: []protocol.PhaseSpec{{Name: "a", Steps: []protocol.StepSpec{step}}}}})
	p := h.plan("p1")
	st := p.Phases[0].Steps[0]
	for _, c := range []struct {
		node string
		want map[string]string
	}{
		// NodeEnv over Env, and NodeEnv values passed as they are.
		{"a1", map[string]string{"HostIP": "10.0.0.1", "Cluster": "c-a1", "Keep": "k", "Raw": "{{.Node}} {{output \"x\" \"y\"}}"}},
		{"a2", map[string]string{"HostIP": "10.0.0.2", "Cluster": "c-a2", "Keep": "k"}},
		{"a3", map[string]string{"HostIP": "none", "Cluster": "c-a3", "Keep": "k"}},
	} {
		got, err := Render(p, *st.Runs[c.node], st.Spec.Action)
		if err != nil {
			t.Fatalf("%s: %v", c.node, err)
		}
		if !reflect.DeepEqual(got.Env, c.want) {
			t.Errorf("%s: env %v, want %v", c.node, got.Env, c.want)
		}
	}
	if st.Spec.Action.Env["HostIP"] != "none" || len(st.Spec.NodeEnv["a1"]) != 2 {
		t.Fatal("Render changed the plan")
	}

	// A step without Env of its own still gets the node's.
	step.Action.Env = nil
	h.must(SubmitPlan{PlanID: "p2", Now: 2, Spec: protocol.PlanSpec{Name: "p", Phases: []protocol.PhaseSpec{{Name: "a", Steps: []protocol.StepSpec{step}}}}})
	p2 := h.plan("p2")
	got, err := Render(p2, *p2.Phases[0].Steps[0].Runs["a2"], p2.Phases[0].Steps[0].Spec.Action)
	if err != nil || !reflect.DeepEqual(got.Env, map[string]string{"HostIP": "10.0.0.2"}) {
		t.Fatalf("env %v, %v", got.Env, err)
	}
}
