package coordinator

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"text/template"

	"github.com/drove-project/drove/protocol"
)

// Template errors, matched with errors.Is.
var (
	// ErrMissingOutput: a template asked for an output no node reported.
	ErrMissingOutput = errors.New("missing output")
	// ErrTemplate: a template does not parse or does not execute.
	ErrTemplate = errors.New("bad template")
)

// TemplateData is what a step's templates see as dot.
type TemplateData struct {
	Node   string // the node ID the step runs on
	PlanID string
	StepID string
}

// Render expands the templates in an action for one node-step: Command,
// Content, Dir and the values of Env. Besides the fields of TemplateData,
// a template may call
//
//	{{output "stepName" "outputName"}}
//
// which gives the named output of that step of the same plan, from the
// first node, in node order, that succeeded and reported it. An output
// that is missing fails rendering with ErrMissingOutput; the dispatcher
// turns that into a failed step.
//
// After rendering, the node's entries of the step's NodeEnv (resolved to
// node IDs at submit) are set over Env as they are: they are not
// templates.
func Render(plan *Plan, ns NodeStep, a protocol.Action) (protocol.Action, error) {
	data := TemplateData{Node: ns.Node, PlanID: plan.ID, StepID: ns.StepID}
	output := func(step, name string) (string, error) {
		st, ok := plan.StepByName(step)
		if !ok {
			return "", fmt.Errorf("%w: plan %s has no step %q", ErrMissingOutput, plan.ID, step)
		}
		v, ok := st.Output(name)
		if !ok {
			return "", fmt.Errorf("%w: no node that succeeded step %q reported output %q", ErrMissingOutput, step, name)
		}
		return v, nil
	}
	out := a
	out.Env = maps.Clone(a.Env)
	err := eachTemplate(&out, func(field string, text *string) error {
		s, err := execute(field, *text, output, data)
		*text = s
		return err
	})
	if err != nil {
		return protocol.Action{}, fmt.Errorf("render step %s: %w", ns.StepID, err)
	}
	if _, st, err := plan.NodeStep(ns.StepID); err == nil {
		if env := st.Spec.NodeEnv[ns.Node]; len(env) > 0 {
			if out.Env == nil {
				out.Env = make(map[string]string, len(env))
			}
			maps.Copy(out.Env, env)
		}
	}
	return out, nil
}

// eachTemplate calls fn for every templated field of a, in a fixed order.
func eachTemplate(a *protocol.Action, fn func(field string, text *string) error) error {
	for _, f := range []struct {
		name string
		text *string
	}{{"command", &a.Command}, {"content", &a.Content}, {"dir", &a.Dir}} {
		if err := fn(f.name, f.text); err != nil {
			return err
		}
	}
	for _, k := range slices.Sorted(maps.Keys(a.Env)) {
		v := a.Env[k]
		if err := fn("env "+k, &v); err != nil {
			return err
		}
		a.Env[k] = v
	}
	return nil
}

func parseTemplate(field, text string, output func(step, name string) (string, error)) (*template.Template, error) {
	t, err := template.New(field).Option("missingkey=error").Funcs(template.FuncMap{"output": output}).Parse(text)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrTemplate, field, err)
	}
	return t, nil
}

func execute(field, text string, output func(step, name string) (string, error), data TemplateData) (string, error) {
	if !strings.Contains(text, "{{") {
		return text, nil
	}
	t, err := parseTemplate(field, text, output)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	if err := t.Execute(&b, data); err != nil {
		if errors.Is(err, ErrMissingOutput) {
			return "", fmt.Errorf("%s: %w", field, err)
		}
		return "", fmt.Errorf("%w: %s: %w", ErrTemplate, field, err)
	}
	return b.String(), nil
}

// checkTemplates parses and dry-runs the templates of an action at submit
// time, and checks that every {{output "step" ...}} with a literal step
// name names a step in earlier (the steps that finish before this one).
func checkTemplates(a protocol.Action, earlier map[string]bool) error {
	a.Env = maps.Clone(a.Env)
	dry := func(string, string) (string, error) { return "", nil }
	return eachTemplate(&a, func(field string, text *string) error {
		if !strings.Contains(*text, "{{") {
			return nil
		}
		t, err := parseTemplate(field, *text, dry)
		if err != nil {
			return err
		}
		for _, tt := range t.Templates() {
			if tt.Tree == nil {
				continue
			}
			var bad error
			protocol.OutputCalls(tt.Tree.Root, func(step, _ string) {
				if bad == nil && !earlier[step] {
					bad = fmt.Errorf("%w: %s: output of step %q, which does not run before this one", ErrTemplate, field, step)
				}
			})
			if bad != nil {
				return bad
			}
		}
		if err := t.Execute(discard{}, TemplateData{}); err != nil {
			return fmt.Errorf("%w: %s: %w", ErrTemplate, field, err)
		}
		return nil
	})
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
