package runtime

import (
	"fmt"
	"strconv"

	"github.com/drove-project/drove/protocol"
)

// builder collects the phases of one plan.
type builder struct {
	plan  protocol.PlanSpec
	names map[string]bool // step names handed out by uniq
}

func newBuilder(name string) *builder {
	return &builder{plan: protocol.PlanSpec{Name: name}, names: map[string]bool{}}
}

// phase appends a phase of the steps that have targets; a phase left
// with no step is dropped.
func (b *builder) phase(name string, parallel int, steps ...protocol.StepSpec) {
	var keep []protocol.StepSpec
	for _, s := range steps {
		if s.Name != "" && (len(s.Target.Nodes) > 0 || len(s.Target.Roles) > 0 || len(s.Target.Labels) > 0) {
			keep = append(keep, s)
		}
	}
	if len(keep) == 0 {
		return
	}
	for _, s := range keep {
		b.names[s.Name] = true
	}
	b.plan.Phases = append(b.plan.Phases, protocol.PhaseSpec{Name: name, Parallel: parallel, Steps: keep})
}

// uniq returns base, or base-2, base-3... if a step already took it.
func (b *builder) uniq(base string) string {
	name := base
	for i := 2; b.names[name]; i++ {
		name = base + "-" + strconv.Itoa(i)
	}
	b.names[name] = true
	return name
}

// done checks the plan and returns it.
func (b *builder) done() (protocol.PlanSpec, error) {
	if len(b.plan.Phases) == 0 {
		return protocol.PlanSpec{}, fmt.Errorf("%w: plan %q: nothing to do", ErrInvalid, b.plan.Name)
	}
	if err := Check(b.plan); err != nil {
		return protocol.PlanSpec{}, fmt.Errorf("plan %q: %w", b.plan.Name, err)
	}
	return b.plan, nil
}
