package runtime

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"text/template"

	"github.com/drove-project/drove/protocol"
)

// ErrBadPlan: Check found a plan the coordinator would refuse or could
// not run to the end.
var ErrBadPlan = errors.New("bad plan")

// outputRef is one {{output "step" "name"}} with literal arguments.
type outputRef struct{ step, name string }

// Check validates a plan as the coordinator will, and a little more:
// phase and step names present and unique, every phase with steps, every
// step with a kind and a target, no negative retry or timeout, NodeEnv
// keyed by the step's nodes, templates that parse and run, and every
// {{output "step" "name"}} reading a step that finished before (an
// earlier phase, or earlier in the same phase) and that prints that
// output (its command has a "::drove-output name=" line).
func Check(p protocol.PlanSpec) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrBadPlan, fmt.Sprintf(format, args...))
	}
	if p.Name == "" {
		return bad("the plan has no name")
	}
	if len(p.Phases) == 0 {
		return bad("the plan has no phases")
	}
	phaseNames := map[string]bool{}
	earlier := map[string]protocol.StepSpec{}
	for i, ph := range p.Phases {
		switch {
		case ph.Name == "":
			return bad("phase %d has no name", i)
		case phaseNames[ph.Name]:
			return bad("phase %q appears twice", ph.Name)
		case ph.Parallel < 0:
			return bad("phase %q: parallel %d is negative", ph.Name, ph.Parallel)
		case len(ph.Steps) == 0:
			return bad("phase %q has no steps", ph.Name)
		}
		phaseNames[ph.Name] = true
		for j, st := range ph.Steps {
			if st.Name == "" {
				return bad("phase %q: step %d has no name", ph.Name, j)
			}
			where := fmt.Sprintf("phase %q step %q", ph.Name, st.Name)
			if _, dup := earlier[st.Name]; dup {
				return bad("%s: another step has the same name", where)
			}
			if err := checkStep(st); err != nil {
				return bad("%s: %v", where, err)
			}
			refs, err := templateRefs(st.Action)
			if err != nil {
				return bad("%s: %v", where, err)
			}
			for _, r := range refs {
				src, ok := earlier[r.step]
				if !ok {
					return bad("%s: reads output %q of step %q, which does not run before it", where, r.name, r.step)
				}
				if src.Action.Kind != kindShell || !strings.Contains(src.Action.Command, outputPrefix+r.name+"=") {
					return bad("%s: reads output %q of step %q, which never prints it", where, r.name, r.step)
				}
			}
			earlier[st.Name] = st
		}
	}
	return nil
}

func checkStep(st protocol.StepSpec) error {
	switch {
	case st.Action.Kind == "":
		return errors.New("the action has no kind")
	case len(st.Target.Nodes) == 0 && len(st.Target.Roles) == 0 && len(st.Target.Labels) == 0:
		return errors.New("no target")
	case st.Retry.Attempts < 0 || st.Retry.BackoffMs < 0:
		return errors.New("negative retry")
	case st.TimeoutMs < 0:
		return errors.New("negative timeout")
	case st.Action.Kind == kindShell && st.Action.Command == "":
		return errors.New("a shell step without a command")
	case st.Action.Kind == kindWriteFile && st.Action.Path == "":
		return errors.New("a write-file step without a path")
	}
	for k := range st.NodeEnv {
		if len(st.Target.Nodes) > 0 && !slices.Contains(st.Target.Nodes, k) {
			return fmt.Errorf("nodeEnv for %q, which is not a target", k)
		}
	}
	return nil
}

// templateRefs parses and dry-runs the fields the coordinator renders
// (command, content, dir, env values) and returns their output calls.
func templateRefs(a protocol.Action) ([]outputRef, error) {
	fields := []struct{ name, text string }{{"command", a.Command}, {"content", a.Content}, {"dir", a.Dir}}
	for _, k := range slices.Sorted(maps.Keys(a.Env)) {
		fields = append(fields, struct{ name, text string }{"env " + k, a.Env[k]})
	}
	var refs []outputRef
	for _, f := range fields {
		if !strings.Contains(f.text, "{{") {
			continue
		}
		dry := func(string, string) (string, error) { return "", nil }
		t, err := template.New(f.name).Option("missingkey=error").Funcs(template.FuncMap{"output": dry}).Parse(f.text)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.name, err)
		}
		for _, tt := range t.Templates() {
			if tt.Tree != nil {
				protocol.OutputCalls(tt.Tree.Root, func(step, name string) {
					if name != "" {
						refs = append(refs, outputRef{step, name})
					}
				})
			}
		}
		data := struct{ Node, PlanID, StepID string }{}
		if err := t.Execute(discard{}, data); err != nil {
			return nil, fmt.Errorf("%s: %w", f.name, err)
		}
	}
	return refs, nil
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
