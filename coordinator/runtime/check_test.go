package runtime

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/drove-project/drove/protocol"
)

func shellStep(name, cmd string, nodes ...string) protocol.StepSpec {
	return protocol.StepSpec{Name: name, Target: protocol.Selector{Nodes: nodes}, Action: protocol.Action{Kind: kindShell, Command: cmd}}
}

func TestCheck(t *testing.T) {
	producer := shellStep("info", `printf '::drove-output token=%s\n' x`, "a")
	reader := shellStep("use", `join --token {{output "info" "token"}}`, "b")
	plan := func(phases ...protocol.PhaseSpec) protocol.PlanSpec {
		return protocol.PlanSpec{Name: "p", Phases: phases}
	}
	ph := func(name string, steps ...protocol.StepSpec) protocol.PhaseSpec {
		return protocol.PhaseSpec{Name: name, Steps: steps}
	}
	for _, tc := range []struct {
		name string
		plan protocol.PlanSpec
		want string // "" for valid
	}{
		{"valid", plan(ph("one", producer), ph("two", reader)), ""},
		{"same phase, later step", plan(ph("one", producer, reader)), ""},
		{"reader first", plan(ph("one", reader, producer)), `step "info", which does not run before it`},
		{"unknown step", plan(ph("one", reader)), "does not run before it"},
		{"output never printed", plan(ph("one", shellStep("info", "echo token=x", "a")), ph("two", reader)), "never prints it"},
		{"duplicate step", plan(ph("one", producer), ph("two", producer)), "another step has the same name"},
		{"duplicate phase", plan(ph("one", producer), ph("one", reader)), `phase "one" appears twice`},
		{"empty phase", plan(ph("one")), "has no steps"},
		{"no phases", plan(), "no phases"},
		{"no name", protocol.PlanSpec{Phases: []protocol.PhaseSpec{ph("one", producer)}}, "no name"},
		{"no target", plan(ph("one", shellStep("x", "true"))), "no target"},
		{"no kind", plan(ph("one", protocol.StepSpec{Name: "x", Target: protocol.Selector{Nodes: []string{"a"}}})), "no kind"},
		{"no command", plan(ph("one", shellStep("x", "", "a"))), "without a command"},
		{"bad template", plan(ph("one", shellStep("x", "echo {{nope}}", "a"))), `function "nope" not defined`},
		{"bad field", plan(ph("one", shellStep("x", "echo {{.Nope}}", "a"))), "Nope"},
		{"negative timeout", plan(ph("one", func() protocol.StepSpec { s := producer; s.TimeoutMs = -1; return s }())), "negative timeout"},
		{"nodeEnv for a stranger", plan(ph("one", func() protocol.StepSpec {
			s := producer
			s.NodeEnv = map[string]map[string]string{"z": {"A": "1"}}
			return s
		}())), `nodeEnv for "z"`},
		{"template in env", plan(ph("one", producer), ph("two", func() protocol.StepSpec {
			s := shellStep("e", "true", "b")
			s.Action.Env = map[string]string{"T": `{{output "info" "nothing"}}`}
			return s
		}())), "never prints it"},
		{"template in content", plan(ph("one", protocol.StepSpec{Name: "w", Target: protocol.Selector{Nodes: []string{"a"}},
			Action: protocol.Action{Kind: kindWriteFile, Path: "/x", Content: `{{output "later" "x"}}`}})), `step "later"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Check(tc.plan)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrBadPlan) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Check = %v, want ErrBadPlan with %q", err, tc.want)
			}
		})
	}
}

func TestDryRun(t *testing.T) {
	d := cluster3x3("kubernetes")
	p := install(t, d)
	dr := DryRun(p, d.Hosts)
	if len(dr.Phases) != len(p.Phases) {
		t.Fatalf("%d phases, want %d", len(dr.Phases), len(p.Phases))
	}
	for i, ph := range p.Phases {
		got := dr.Phases[i]
		want := 0
		for _, st := range ph.Steps {
			want += len(st.Target.Nodes)
		}
		if got.Name != ph.Name || got.Parallel != ph.Parallel || len(got.Steps) != want {
			t.Errorf("phase %s: %s parallel %d, %d entries; want %d", ph.Name, got.Name, got.Parallel, len(got.Steps), want)
		}
	}
	// join-workers: the load balancer on every worker, then the join on
	// every worker, in that order.
	var jw DryRunPhase
	for _, ph := range dr.Phases {
		if ph.Name == "join-workers" {
			jw = ph
		}
	}
	var order []string
	for _, s := range jw.Steps {
		order = append(order, s.Action+"@"+s.Node)
	}
	want := []string{"apilb@" + w0, "apilb@" + w1, "apilb@" + w2, "shell@" + w0, "shell@" + w1, "shell@" + w2}
	if !slices.Equal(order, want) {
		t.Errorf("join-workers entries %v, want %v", order, want)
	}
	if !strings.Contains(jw.Steps[0].Command, "127.0.0.1:6443 → 10.0.0.1:6443,") || !strings.Contains(jw.Steps[3].Command, "kubeadm join") {
		t.Errorf("commands: %q / %q", jw.Steps[0].Command, jw.Steps[3].Command)
	}

	b, err := json.Marshal(dr)
	if err != nil {
		t.Fatal(err)
	}
	var generic map[string][]map[string]any
	if err := json.Unmarshal(b, &generic); err != nil {
		t.Fatal(err)
	}
	for _, ph := range generic["phases"] {
		if keys := sortedKeys(ph); !slices.Equal(keys, []string{"name", "parallel", "steps"}) {
			t.Fatalf("phase keys %v", keys)
		}
		for _, s := range ph["steps"].([]any) {
			if keys := sortedKeys(s.(map[string]any)); !slices.Equal(keys, []string{"action", "command", "node"}) {
				t.Fatalf("step keys %v", keys)
			}
		}
	}
	if b, _ := json.Marshal(DryRun(protocol.PlanSpec{Phases: []protocol.PhaseSpec{{Name: "x"}}}, nil)); string(b) != `{"phases":[{"name":"x","parallel":0,"steps":[]}]}` {
		t.Errorf("empty phase JSON %s", b)
	}
}

func TestDryRunSelectors(t *testing.T) {
	hosts := cluster3x3("plain").Hosts
	p := protocol.PlanSpec{Name: "p", Phases: []protocol.PhaseSpec{{Name: "x", Steps: []protocol.StepSpec{
		{Name: "roles", Target: protocol.Selector{Roles: []string{"gpu"}}, Action: protocol.Action{Kind: kindWriteFile, Path: "/etc/x", Content: "abc"}},
		{Name: "nodes", Target: protocol.Selector{Nodes: []string{"seed-node", m0}}, Action: protocol.Action{Kind: "noop"}},
	}}}}
	var got []string
	for _, s := range DryRun(p, hosts).Phases[0].Steps {
		got = append(got, s.Node+" "+s.Command)
	}
	want := []string{w0 + " write /etc/x (3 bytes, mode 0644)", w1 + " write /etc/x (3 bytes, mode 0644)", w2 + " write /etc/x (3 bytes, mode 0644)",
		"seed-node noop", m0 + " noop"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

func sortedKeys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
