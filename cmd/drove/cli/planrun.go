package cli

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/drove-project/drove/coordinator/runtime"
	"github.com/drove-project/drove/protocol"
)

// errPlanFailed: a submitted plan ended with a failed step.
var errPlanFailed = errors.New("plan failed")

// runPlan is one plan of a run; a run submits its plans one after another.
type runPlan struct {
	ID   string
	Spec protocol.PlanSpec
	// Dist is what the plan's distribute step carries (its ID is the
	// plan's); nil when the plan has none.
	Dist *protocol.Distribution
	// Hosts are the hosts its selectors name, for the dry-run view.
	Hosts []runtime.Host
	// BestEffort: hosts without an alive agent are left out (scale-down,
	// delete) instead of failing the run.
	BestEffort bool
}

// planIDs makes plan IDs; tests replace it for stable output.
var planIDs = func() string { return protocol.NewPlanID(time.Now()) }

// withDist is d carrying its own copy of base, with the plan's ID.
func withDist(d runtime.Desired, base *protocol.Distribution, id string) runtime.Desired {
	if base != nil {
		dist := *base
		dist.ID, dist.Seeds = id, nil
		d.Distribution = &dist
	}
	return d
}

// plansFor turns a change into the plans that make it, in order:
// hosts out (ScaleDown of the applied state), files re-rendered on the
// hosts that stay, hosts in (ScaleUp). applied is needed only when hosts
// are removed.
func plansFor(ch change, rt runtime.Runtime, next runtime.Desired, applied *runtime.Desired, dist *protocol.Distribution) ([]runPlan, error) {
	switch ch.Kind {
	case changeNone:
		return nil, nil
	case changeInstall:
		id := planIDs()
		d := withDist(next, dist, id)
		spec, err := rt.Install(d)
		if err != nil {
			return nil, fmt.Errorf("plan the install: %w", err)
		}
		return []runPlan{{ID: id, Spec: spec, Dist: d.Distribution, Hosts: next.Hosts}}, nil
	}
	var out []runPlan
	if len(ch.Removed) > 0 {
		if applied == nil {
			return nil, errors.New("plan the scale-down: the applied state is unknown")
		}
		spec, err := rt.ScaleDown(*applied, ch.Removed)
		if err != nil {
			return nil, fmt.Errorf("plan the removal of %s: %w", strings.Join(ch.Removed, ", "), err)
		}
		out = append(out, runPlan{ID: planIDs(), Spec: spec, Hosts: applied.Hosts, BestEffort: true})
	}
	kept := slices.DeleteFunc(slices.Clone(next.Hosts), func(h runtime.Host) bool { return slices.Contains(ch.Added, h.IP) })
	if ch.Rerender && len(kept) > 0 {
		id := planIDs()
		d := withDist(next, dist, id)
		d.Hosts = kept
		spec, err := rerenderPlan(rt, d)
		if err != nil {
			return nil, err
		}
		out = append(out, runPlan{ID: id, Spec: spec, Dist: d.Distribution, Hosts: kept})
	}
	if len(ch.Added) > 0 {
		id := planIDs()
		d := withDist(next, dist, id)
		var added []runtime.Host
		for _, h := range next.Hosts {
			if slices.Contains(ch.Added, h.IP) {
				added = append(added, h)
			}
		}
		spec, err := rt.ScaleUp(d, added)
		if err != nil {
			return nil, fmt.Errorf("plan the joining of %s: %w", strings.Join(ch.Added, ", "), err)
		}
		out = append(out, runPlan{ID: id, Spec: spec, Dist: d.Distribution, Hosts: next.Hosts})
	}
	return out, nil
}

// rerenderPlan delivers the image and renders its files again on every
// host of d: the distribute and render phases of an install.
func rerenderPlan(rt runtime.Runtime, d runtime.Desired) (protocol.PlanSpec, error) {
	full, err := rt.Install(d)
	if err != nil {
		return protocol.PlanSpec{}, fmt.Errorf("plan the re-render: %w", err)
	}
	spec := protocol.PlanSpec{Name: "render " + d.Image}
	for _, ph := range full.Phases {
		// Labels and taints too: a host's may be what changed (the
		// Kubernetes runtimes set them idempotently; taints ending in "-"
		// are removed).
		if ph.Name == "distribute" || ph.Name == "render" || ph.Name == "labels-taints" {
			spec.Phases = append(spec.Phases, ph)
		}
	}
	if err := runtime.Check(spec); err != nil {
		return protocol.PlanSpec{}, fmt.Errorf("plan the re-render: %w", err)
	}
	return spec, nil
}

// bindPlan names nodes by their IDs: the runtimes address hosts by IP,
// the coordinators resolve node IDs and names. Entries that are no
// address of ids (a seed's node ID) stay. With bestEffort, hosts without
// an agent are left out of every step (steps and phases left empty go);
// without, they are an error.
func bindPlan(spec protocol.PlanSpec, ids map[string]string, hostIPs []string, bestEffort bool) (protocol.PlanSpec, []string, error) {
	var skipped []string
	isHost := func(n string) bool { return slices.Contains(hostIPs, n) }
	out := protocol.PlanSpec{Name: spec.Name}
	for _, ph := range spec.Phases {
		nph := ph
		nph.Steps = nil
		for _, st := range ph.Steps {
			nst := st
			nst.Target.Nodes = nil
			for _, n := range st.Target.Nodes {
				id, ok := ids[n]
				switch {
				case ok:
					n = id
				case isHost(n) && bestEffort:
					skipped = appendNew(skipped, n)
					continue
				case isHost(n):
					return protocol.PlanSpec{}, nil, fmt.Errorf("host %s runs no alive drove agent", n)
				}
				nst.Target.Nodes = appendNew(nst.Target.Nodes, n)
			}
			if len(st.Target.Nodes) > 0 && len(nst.Target.Nodes) == 0 {
				continue
			}
			if st.NodeEnv != nil {
				nst.NodeEnv = map[string]map[string]string{}
				for k, v := range st.NodeEnv {
					if id, ok := ids[k]; ok {
						nst.NodeEnv[id] = v
					} else if !isHost(k) {
						nst.NodeEnv[k] = v
					}
				}
			}
			nph.Steps = append(nph.Steps, nst)
		}
		if len(nph.Steps) > 0 {
			out.Phases = append(out.Phases, nph)
		}
	}
	return out, skipped, nil
}

// seedDistribute makes the nodes seeds (they hold the image and serve
// it) of the plan's distribution and targets of its distribute step.
func seedDistribute(p *runPlan, seeds []string) {
	if p.Dist == nil {
		return
	}
	p.Dist.Seeds = appendAll(p.Dist.Seeds, seeds)
	for i := range p.Spec.Phases {
		for j := range p.Spec.Phases[i].Steps {
			st := &p.Spec.Phases[i].Steps[j]
			if st.Action.Kind == protocol.ActionDistribute {
				st.Action.Distribution = p.Dist
				st.Target.Nodes = appendAll(st.Target.Nodes, seeds)
			}
		}
	}
}

func appendAll(list, more []string) []string {
	for _, s := range more {
		list = appendNew(list, s)
	}
	return list
}

// submitAndFollow submits p (recording rev when it succeeds), shows its
// progress until it settles, and returns its detail; a failed plan is an
// error naming the failed step, its node and the end of its output.
func submitAndFollow(ctx context.Context, g *Globals, cf *clientFlags, nc *nats.Conn, p runPlan, rev *protocol.ClusterRevision, names map[string]string) (protocol.PlanDetail, error) {
	var sub protocol.PlanSubmitted
	if err := cf.call(ctx, nc, &protocol.PlanSubmit{Plan: p.Spec, PlanID: p.ID, Revision: rev}, &sub); err != nil {
		return protocol.PlanDetail{}, fmt.Errorf("submit plan %q: %w", p.Spec.Name, err)
	}
	fmt.Fprintf(g.Err, "plan %s submitted: %s (%s)\n", sub.PlanID, p.Spec.Name, plural(len(p.Spec.Phases), "phase"))
	detail, err := followPlan(ctx, g, cf, nc, sub.PlanID, p.Dist)
	if err != nil {
		return detail, fmt.Errorf("follow plan %s: %w", sub.PlanID, err)
	}
	if detail.Summary.State != "succeeded" {
		return detail, planFailure(detail, names)
	}
	return detail, nil
}

// followPlan shows the plan's progress until it settles: the image's
// delivery per node while it runs, then a line per finished phase.
func followPlan(ctx context.Context, g *Globals, cf *clientFlags, nc *nats.Conn, id string, dist *protocol.Distribution) (protocol.PlanDetail, error) {
	show := newDistProgress(g.Err, g.Quiet)
	defer show.close()
	delivering := dist != nil
	reported := map[string]bool{}
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		var detail protocol.PlanDetail
		if err := cf.call(ctx, nc, &protocol.PlanGetRequest{PlanID: id}, &detail); err != nil {
			return detail, err
		}
		if delivering {
			var ds protocol.DistributionStatus
			if err := cf.call(ctx, nc, &protocol.DistributionStatusRequest{Distribution: id}, &ds); err == nil {
				for _, d := range ds.Distributions {
					for _, p := range d.Peers {
						if !p.Peer.Seed && !slices.Contains(dist.Seeds, p.Peer.ID) {
							show.update(p)
						}
					}
				}
			}
		}
		for _, ph := range detail.Phases {
			done := len(ph.Steps) > 0
			for _, s := range ph.Steps {
				if finalState(s.State) {
					if ph.Name == "distribute" {
						show.finish(s.Node, stepErr(s))
					}
				} else {
					done = false
				}
			}
			if !done || reported[ph.Name] {
				continue
			}
			reported[ph.Name] = true
			if ph.Name == "distribute" && delivering {
				show.close()
				delivering = false
			}
			if !g.Quiet {
				fmt.Fprintln(g.Err, phaseLine(ph))
			}
		}
		if detail.Settled() {
			return detail, nil
		}
		select {
		case <-ctx.Done():
			return detail, ctx.Err()
		case <-tick.C:
		}
	}
}

func stepErr(s protocol.NodeStepStatus) error {
	if s.State == protocol.StateSucceeded {
		return nil
	}
	return errors.New(s.State)
}

// phaseLine sums up a finished phase: node-steps, failures, time taken.
func phaseLine(ph protocol.PhaseStatus) string {
	var first, last int64
	nodes := map[string]bool{}
	failed, skipped := 0, 0
	for _, s := range ph.Steps {
		nodes[s.Node] = true
		switch s.State {
		case protocol.StateSucceeded:
		case protocol.StateSkipped:
			skipped++
		default:
			failed++
		}
		if s.DispatchedAt > 0 && (first == 0 || s.DispatchedAt < first) {
			first = s.DispatchedAt
		}
		last = max(last, s.FinishedAt)
	}
	took := ""
	if first > 0 && last >= first {
		took = " in " + (time.Duration(last-first) * time.Millisecond).String()
	}
	var parts []string
	if failed > 0 {
		parts = append(parts, fmt.Sprintf("%d of %d failed", failed, len(ph.Steps)))
	}
	if skipped > 0 {
		parts = append(parts, fmt.Sprintf("%d skipped", skipped))
	}
	state := "done"
	if len(parts) > 0 {
		state = strings.Join(parts, ", ")
	}
	return fmt.Sprintf("phase %s: %s (%s on %s%s)", ph.Name, state, plural(len(ph.Steps), "step"), plural(len(nodes), "node"), took)
}

// outputTail is how many lines of a failed step's output an error quotes.
const outputTail = 20

// planFailure names the first failed node-step (in phase order) of a
// failed plan, with the end of its output.
func planFailure(d protocol.PlanDetail, names map[string]string) error {
	for _, ph := range d.Phases {
		for _, s := range ph.Steps {
			if s.State != protocol.StateFailed && s.State != protocol.StateInterrupted {
				continue
			}
			node := s.Node
			if ip := names[s.Node]; ip != "" && ip != s.Node {
				node += " (" + ip + ")"
			}
			msg := fmt.Sprintf("plan %s: phase %s, step %s on %s: %s", d.Summary.ID, ph.Name, s.Step, node, s.State)
			if s.State == protocol.StateFailed {
				msg += fmt.Sprintf(" (exit %d)", s.ExitCode) // an interrupted step has none
			}
			if s.Error != "" {
				msg += ": " + s.Error
			}
			if out := tail(s.Output, outputTail); out != "" {
				msg += "\n--- output (last lines) ---\n" + out
			}
			msg += fmt.Sprintf("\nfix the cause, then run the same command again (or drove retry %s)", d.Summary.ID)
			return &exitError{code: exitFailed, err: fmt.Errorf("%w: %s", errPlanFailed, msg)}
		}
	}
	return &exitError{code: exitFailed, err: fmt.Errorf("%w: plan %s ended %s: see drove plan show %s", errPlanFailed, d.Summary.ID, d.Summary.State, d.Summary.ID)}
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.TrimSpace(strings.Join(lines, "\n"))
}

// printLaunchOutput prints what the image's commands (the launch phase)
// printed, prefixed by node: the result of the install for the user.
func printLaunchOutput(g *Globals, d protocol.PlanDetail) {
	for _, ph := range d.Phases {
		if ph.Name != "launch" {
			continue
		}
		for _, s := range ph.Steps {
			for _, line := range strings.Split(strings.TrimRight(s.Output, "\n"), "\n") {
				if line != "" {
					fmt.Fprintf(g.Out, "%s: %s\n", s.Node, line)
				}
			}
		}
	}
}

// dryRunView lists what the plans run, in order, as one plan.
func dryRunView(plans []runPlan) runtime.DryRunPlan {
	out := runtime.DryRunPlan{Phases: []runtime.DryRunPhase{}}
	for _, p := range plans {
		out.Phases = append(out.Phases, runtime.DryRun(p.Spec, p.Hosts).Phases...)
	}
	return out
}

// printDryRun prints the view as JSON or as a table.
func printDryRun(g *Globals, view runtime.DryRunPlan, output string) error {
	if output == "json" {
		return writeStructured(g.Out, "json", view)
	}
	tw := tabwriter.NewWriter(g.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PHASE\tPARALLEL\tNODE\tACTION\tCOMMAND")
	for _, ph := range view.Phases {
		for _, s := range ph.Steps {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", ph.Name, ph.Parallel, s.Node, s.Action, oneLine(s.Command, 100))
		}
	}
	return tw.Flush()
}

// oneLine shortens a command to its first line of at most n characters.
func oneLine(s string, n int) string {
	line, rest, more := strings.Cut(strings.TrimSpace(s), "\n")
	if r := []rune(line); len(r) > n {
		line, more = string(r[:n]), true
	}
	if more || rest != "" {
		line += " …"
	}
	return line
}
