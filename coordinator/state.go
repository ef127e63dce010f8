package coordinator

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/drove-project/drove/protocol"
)

// Plan states. A plan is pending until its first node-step is dispatched,
// running until every node-step succeeded or one failed for good.
const (
	PlanPending   = protocol.StatePending
	PlanRunning   = protocol.StateRunning
	PlanSucceeded = protocol.StateSucceeded
	PlanFailed    = protocol.StateFailed
)

// MaxOutputTail is how much of a step's output the state keeps: the tail,
// for status. Raft holds metadata, not bulk; the agent keeps the whole
// output and its digest.
const MaxOutputTail = 4 << 10

// MaxOutputsSize bounds the named outputs of one node-step (keys plus
// values). A step that reports more fails: outputs feed later steps through
// raft and must stay small (a join token, a certificate key).
const MaxOutputsSize = 64 << 10

// State is the coordinator's replicated state: the node registry and the
// plans. Only Apply and Restore change it; readers get copies.
type State struct {
	Nodes map[string]*Node `json:"nodes"`
	Plans map[string]*Plan `json:"plans"`
	Order []string         `json:"order"` // plan IDs in submit order
	// Revision is the applied cluster revision: the one the latest plan
	// that succeeded with a revision carried (Serial 0: none yet).
	Revision protocol.ClusterRevision `json:"revision"`
}

// NewState returns an empty State.
func NewState() *State {
	return &State{Nodes: map[string]*Node{}, Plans: map[string]*Plan{}}
}

// Node is a registered node.
type Node struct {
	Member     protocol.Member `json:"member"`
	Registered int64           `json:"registered"` // unix ms of the first registration
	Updated    int64           `json:"updated"`    // unix ms of the latest one
}

// Plan is a submitted plan with its steps resolved to nodes.
type Plan struct {
	ID      string  `json:"id"`
	Name    string  `json:"name"`
	Created int64   `json:"created"` // unix ms, stamped by the proposer
	State   string  `json:"state"`   // PlanPending, PlanRunning, PlanSucceeded, PlanFailed
	Phases  []Phase `json:"phases"`
	// Revision, when set, becomes State.Revision when the plan succeeds
	// (PlanSubmit.Revision, as submitted).
	Revision *protocol.ClusterRevision `json:"revision,omitempty"`
}

// Phase is an ordered group of steps.
type Phase struct {
	Name     string `json:"name"`
	Parallel int    `json:"parallel,omitempty"` // 0: all nodes at once
	Steps    []Step `json:"steps"`
}

// Step is one step of a plan and its runs, one per node.
type Step struct {
	Spec  protocol.StepSpec    `json:"spec"`
	Nodes []string             `json:"nodes"` // resolved node IDs, sorted
	Runs  map[string]*NodeStep `json:"runs"`  // by node ID
}

// NodeStep is one step on one node: the unit that is dispatched, retried
// and journaled by the agent.
type NodeStep struct {
	StepID       string             `json:"stepID"` // <plan>/<phase idx>/<step idx>/<node>
	Node         string             `json:"node"`
	State        string             `json:"state"`             // protocol.State*
	Attempt      int                `json:"attempt,omitempty"` // the latest attempt dispatched or reported; 0 before the first
	Term         uint64             `json:"term,omitempty"`    // raft term of the latest dispatch
	DispatchedAt int64              `json:"dispatchedAt,omitempty"`
	FinishedAt   int64              `json:"finishedAt,omitempty"`
	NotBefore    int64              `json:"notBefore,omitempty"` // retry backoff: not dispatched before this (unix ms)
	ExitCode     int                `json:"exitCode,omitempty"`
	Output       string             `json:"output,omitempty"` // at most MaxOutputTail bytes, the tail
	OutputDigest string             `json:"outputDigest,omitempty"`
	Outputs      map[string]string  `json:"outputs,omitempty"`
	Error        string             `json:"error,omitempty"`
	Code         protocol.ErrorCode `json:"code,omitempty"`
}

// ErrBadStepID is returned for a step ID that is not <plan>/<phase>/<step>/<node>.
var ErrBadStepID = errors.New("malformed step ID")

// MakeStepID names the run of step stepIdx of phase phaseIdx of a plan on a node.
func MakeStepID(planID string, phaseIdx, stepIdx int, node string) string {
	return planID + "/" + strconv.Itoa(phaseIdx) + "/" + strconv.Itoa(stepIdx) + "/" + node
}

// ParseStepID splits a step ID made by MakeStepID. The node part may itself
// contain slashes; plan IDs never do.
func ParseStepID(id string) (planID string, phaseIdx, stepIdx int, node string, err error) {
	parts := strings.SplitN(id, "/", 4)
	if len(parts) != 4 || parts[0] == "" || parts[3] == "" {
		return "", 0, 0, "", fmt.Errorf("%w: %q", ErrBadStepID, id)
	}
	phaseIdx, err1 := strconv.Atoi(parts[1])
	stepIdx, err2 := strconv.Atoi(parts[2])
	if err1 != nil || err2 != nil || phaseIdx < 0 || stepIdx < 0 ||
		strconv.Itoa(phaseIdx) != parts[1] || strconv.Itoa(stepIdx) != parts[2] {
		return "", 0, 0, "", fmt.Errorf("%w: %q", ErrBadStepID, id)
	}
	return parts[0], phaseIdx, stepIdx, parts[3], nil
}

// finalFailure reports whether a node-step state is a failure that stays:
// failures that will be retried are stored as pending.
func finalFailure(state string) bool {
	return state == protocol.StateFailed || state == protocol.StateInterrupted
}

// final reports whether a node-step is done for now: succeeded, failed for
// good, or skipped.
func final(state string) bool {
	return state == protocol.StateSucceeded || state == protocol.StateSkipped || finalFailure(state)
}

// outstanding reports whether a node-step has been sent and not answered.
func outstanding(state string) bool {
	return state == protocol.StateDispatched || state == protocol.StateRunning
}

// SortedNodes returns the registry in node ID order.
func (s *State) SortedNodes() []*Node {
	ids := slices.Sorted(maps.Keys(s.Nodes))
	out := make([]*Node, len(ids))
	for i, id := range ids {
		out[i] = s.Nodes[id]
	}
	return out
}

// OrderedPlans returns the plans in submit order.
func (s *State) OrderedPlans() []*Plan {
	out := make([]*Plan, 0, len(s.Order))
	for _, id := range s.Order {
		out = append(out, s.Plans[id])
	}
	return out
}

// Clone returns a deep copy of s.
func (s *State) Clone() *State {
	c := &State{
		Nodes:    make(map[string]*Node, len(s.Nodes)),
		Plans:    make(map[string]*Plan, len(s.Plans)),
		Order:    slices.Clone(s.Order),
		Revision: s.Revision,
	}
	for id, n := range s.Nodes {
		c.Nodes[id] = n.Clone()
	}
	for id, p := range s.Plans {
		c.Plans[id] = p.Clone()
	}
	return c
}

// CloneActive returns a deep copy of the nodes and of the plans the
// dispatcher still has work in: pending or running, or with a node-step
// out on a node. Finished plans pile up over a cluster's life; a dispatcher
// round should not copy them all.
func (s *State) CloneActive() *State {
	c := &State{Nodes: make(map[string]*Node, len(s.Nodes)), Plans: map[string]*Plan{}, Revision: s.Revision}
	for id, n := range s.Nodes {
		c.Nodes[id] = n.Clone()
	}
	for _, id := range s.Order {
		p := s.Plans[id]
		if p == nil || !p.active() {
			continue
		}
		c.Plans[id] = p.Clone()
		c.Order = append(c.Order, id)
	}
	return c
}

// active reports whether p is pending or running or has a node-step out.
func (p *Plan) active() bool {
	if p.State == PlanPending || p.State == PlanRunning {
		return true
	}
	out := false
	p.eachNodeStep(func(ns *NodeStep, _ *Step) { out = out || outstanding(ns.State) })
	return out
}

// Clone returns a deep copy of n.
func (n *Node) Clone() *Node {
	c := *n
	c.Member = cloneMember(n.Member)
	return &c
}

func cloneMember(m protocol.Member) protocol.Member {
	m.Roles = slices.Clone(m.Roles)
	m.Labels = maps.Clone(m.Labels)
	return m
}

// Clone returns a deep copy of p.
func (p *Plan) Clone() *Plan {
	c := *p
	if p.Revision != nil {
		rev := *p.Revision
		c.Revision = &rev
	}
	c.Phases = make([]Phase, len(p.Phases))
	for i, ph := range p.Phases {
		cp := ph
		cp.Steps = make([]Step, len(ph.Steps))
		for j, st := range ph.Steps {
			cs := Step{Spec: cloneStepSpec(st.Spec), Nodes: slices.Clone(st.Nodes), Runs: make(map[string]*NodeStep, len(st.Runs))}
			for node, ns := range st.Runs {
				cs.Runs[node] = ns.Clone()
			}
			cp.Steps[j] = cs
		}
		c.Phases[i] = cp
	}
	return &c
}

// Clone returns a deep copy of ns.
func (ns *NodeStep) Clone() *NodeStep {
	c := *ns
	c.Outputs = maps.Clone(ns.Outputs)
	return &c
}

func cloneStepSpec(s protocol.StepSpec) protocol.StepSpec {
	s.Target.Nodes = slices.Clone(s.Target.Nodes)
	s.Target.Roles = slices.Clone(s.Target.Roles)
	s.Target.Labels = maps.Clone(s.Target.Labels)
	s.Action.Env = maps.Clone(s.Action.Env)
	if s.NodeEnv != nil {
		env := make(map[string]map[string]string, len(s.NodeEnv))
		for k, v := range s.NodeEnv {
			env[k] = maps.Clone(v)
		}
		s.NodeEnv = env
	}
	return s
}

// NodeStep finds a node-step of p by its ID, with the step it belongs to.
func (p *Plan) NodeStep(stepID string) (*NodeStep, *Step, error) {
	planID, pi, si, node, err := ParseStepID(stepID)
	if err != nil {
		return nil, nil, err
	}
	if planID != p.ID || pi >= len(p.Phases) || si >= len(p.Phases[pi].Steps) {
		return nil, nil, fmt.Errorf("%w: %s in plan %s", ErrUnknownStep, stepID, p.ID)
	}
	st := &p.Phases[pi].Steps[si]
	ns, ok := st.Runs[node]
	if !ok {
		return nil, nil, fmt.Errorf("%w: %s in plan %s", ErrUnknownStep, stepID, p.ID)
	}
	return ns, st, nil
}

// StepByName finds a step of p by name.
func (p *Plan) StepByName(name string) (*Step, bool) {
	for i := range p.Phases {
		for j := range p.Phases[i].Steps {
			if p.Phases[i].Steps[j].Spec.Name == name {
				return &p.Phases[i].Steps[j], true
			}
		}
	}
	return nil, false
}

// Output returns the named output of a step: from the first node, in node
// order, that succeeded and reported it.
func (st *Step) Output(name string) (string, bool) {
	for _, node := range st.Nodes {
		ns := st.Runs[node]
		if ns == nil || ns.State != protocol.StateSucceeded {
			continue
		}
		if v, ok := ns.Outputs[name]; ok {
			return v, true
		}
	}
	return "", false
}

// MergedOutputs returns every output name of a step with the value Output
// gives it.
func (st *Step) MergedOutputs() map[string]string {
	out := map[string]string{}
	for _, node := range st.Nodes {
		ns := st.Runs[node]
		if ns == nil || ns.State != protocol.StateSucceeded {
			continue
		}
		for k, v := range ns.Outputs {
			if _, seen := out[k]; !seen {
				out[k] = v
			}
		}
	}
	return out
}

// Current returns the indexes of the plan's current step: the first, in
// phase order then step order, that has not succeeded on every node. ok is
// false when every step has.
func (p *Plan) Current() (phaseIdx, stepIdx int, ok bool) {
	for i := range p.Phases {
		for j := range p.Phases[i].Steps {
			st := &p.Phases[i].Steps[j]
			for _, node := range st.Nodes {
				if st.Runs[node].State != protocol.StateSucceeded {
					return i, j, true
				}
			}
		}
	}
	return 0, 0, false
}

// eachNodeStep calls fn for every node-step of p in a fixed order: phase,
// step, node ID.
func (p *Plan) eachNodeStep(fn func(ns *NodeStep, st *Step)) {
	for i := range p.Phases {
		for j := range p.Phases[i].Steps {
			st := &p.Phases[i].Steps[j]
			for _, node := range st.Nodes {
				fn(st.Runs[node], st)
			}
		}
	}
}

// Summary is p as a line in a list.
func (p *Plan) Summary() protocol.PlanSummary {
	sum := protocol.PlanSummary{ID: p.ID, Name: p.Name, State: p.State, Created: p.Created}
	p.eachNodeStep(func(ns *NodeStep, _ *Step) {
		sum.Steps++
		switch {
		case ns.State == protocol.StateSucceeded:
			sum.Succeeded++
		case finalFailure(ns.State):
			sum.Failed++
		}
	})
	return sum
}

// Detail is p with every node-step, for the API.
func (p *Plan) Detail() protocol.PlanDetail {
	d := protocol.PlanDetail{Summary: p.Summary(), Phases: make([]protocol.PhaseStatus, len(p.Phases))}
	for i, ph := range p.Phases {
		ps := protocol.PhaseStatus{Name: ph.Name, Steps: []protocol.NodeStepStatus{}}
		for _, st := range ph.Steps {
			for _, node := range st.Nodes {
				ns := st.Runs[node]
				ps.Steps = append(ps.Steps, protocol.NodeStepStatus{
					StepID: ns.StepID, Step: st.Spec.Name, Node: ns.Node, State: ns.State,
					Attempt: ns.Attempt, Term: ns.Term, ExitCode: ns.ExitCode, Output: ns.Output,
					Outputs: maps.Clone(ns.Outputs), Error: ns.Error,
					DispatchedAt: ns.DispatchedAt, FinishedAt: ns.FinishedAt,
				})
			}
		}
		d.Phases[i] = ps
	}
	return d
}
