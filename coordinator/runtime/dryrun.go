package runtime

import (
	"fmt"
	"slices"
	"strings"

	"github.com/drove-project/drove/protocol"
)

// DryRunPlan is what a plan will run, in order: its JSON is
// {"phases":[{"name","parallel","steps":[{"node","action","command"}]}]}.
type DryRunPlan struct {
	Phases []DryRunPhase `json:"phases"`
}

// DryRunPhase is one phase; Steps has one entry per node per step.
type DryRunPhase struct {
	Name     string       `json:"name"`
	Parallel int          `json:"parallel"`
	Steps    []DryRunStep `json:"steps"`
}

// DryRunStep is one step on one node: the node's address (or the
// selector's entry), the action kind, and the shell command or a short
// description of a non-shell action.
type DryRunStep struct {
	Node    string `json:"node"`
	Action  string `json:"action"`
	Command string `json:"command"`
}

// DryRun lists what plan runs on which node, in execution order. hosts
// resolve selectors by role or label; node names are listed as given.
func DryRun(plan protocol.PlanSpec, hosts []Host) DryRunPlan {
	out := DryRunPlan{Phases: make([]DryRunPhase, 0, len(plan.Phases))}
	for _, ph := range plan.Phases {
		p := DryRunPhase{Name: ph.Name, Parallel: ph.Parallel, Steps: []DryRunStep{}}
		for _, st := range ph.Steps {
			desc := describe(st.Action)
			for _, node := range targets(st.Target, hosts) {
				p.Steps = append(p.Steps, DryRunStep{Node: node, Action: st.Action.Kind, Command: desc})
			}
		}
		out.Phases = append(out.Phases, p)
	}
	return out
}

// targets are the nodes a selector picks among hosts: Nodes as listed
// (filtered by Roles and Labels when hosts know them), else the hosts
// that match.
func targets(sel protocol.Selector, hosts []Host) []string {
	match := func(h Host) bool {
		if len(sel.Roles) > 0 && !slices.ContainsFunc(sel.Roles, h.HasRole) {
			return false
		}
		for k, v := range sel.Labels {
			if got, ok := h.Labels[k]; !ok || got != v {
				return false
			}
		}
		return true
	}
	var out []string
	if len(sel.Nodes) > 0 {
		for _, n := range sel.Nodes {
			i := slices.IndexFunc(hosts, func(h Host) bool { return h.IP == n || h.Name != "" && h.Name == n })
			if i < 0 || match(hosts[i]) {
				out = append(out, n)
			}
		}
		return out
	}
	for _, h := range hosts {
		if match(h) {
			out = append(out, h.IP)
		}
	}
	return out
}

// describe is the command of a shell action, or a line about another.
func describe(a protocol.Action) string {
	switch a.Kind {
	case kindShell:
		return a.Command
	case kindWriteFile:
		return fmt.Sprintf("write %s (%d bytes, mode %#o)", a.Path, len(a.Content), fileMode(a.Mode))
	case protocol.ActionDistribute:
		if d := a.Distribution; d != nil {
			return fmt.Sprintf("fetch %s (%s, %d blobs)", d.Image, d.ImageDigest, len(d.Blobs))
		}
		return "fetch the image"
	case kindRender:
		paths := make([]string, len(a.Configs))
		for i, c := range a.Configs {
			paths[i] = c.Path
		}
		s := "render templates in " + a.Rootfs
		if len(paths) > 0 {
			s += "; apply configs " + strings.Join(paths, ", ")
		}
		return s
	case kindAPILB:
		if b := a.Env[EnvAPILBBackends]; b != "" {
			return "serve 127.0.0.1:" + apiServerPort + " → " + b
		}
		return "stop the API load balancer"
	default:
		return a.Kind
	}
}

func fileMode(m uint32) uint32 {
	if m == 0 {
		return 0o644
	}
	return m
}
