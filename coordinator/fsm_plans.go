package coordinator

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/drove-project/drove/protocol"
)

func init() {
	registerCommand(CmdSubmitPlan, applySubmitPlan)
	registerCommand(CmdMarkDispatched, applyMarkDispatched)
	registerCommand(CmdRecordResults, applyRecordResults)
	registerCommand(CmdRetrySteps, applyRetrySteps)
}

// maxBackoffMs caps the doubled retry wait (unless the policy's first wait
// is already longer).
const maxBackoffMs = 60 * 60 * 1000

// applySubmitPlan validates a plan, resolves its targets and adds it.
func applySubmitPlan(s *State, _ uint64, req *SubmitPlan) (any, error) {
	if !protocol.ValidID(req.PlanID) || strings.Contains(req.PlanID, "/") {
		return nil, fmt.Errorf("submit plan: %w: plan ID %q", ErrInvalidPlan, req.PlanID)
	}
	if _, dup := s.Plans[req.PlanID]; dup {
		return nil, fmt.Errorf("submit plan: %w: %s", ErrPlanExists, req.PlanID)
	}
	if err := ValidateRevision(req.Revision); err != nil {
		return nil, fmt.Errorf("submit plan %s: %w", req.PlanID, err)
	}
	p, err := s.ResolvePlan(req.PlanID, req.Spec, req.Now)
	if err != nil {
		return nil, fmt.Errorf("submit plan %s: %w", req.PlanID, err)
	}
	if req.Revision != nil {
		rev := *req.Revision
		p.Revision = &rev
	}
	s.Plans[p.ID] = p
	s.Order = append(s.Order, p.ID)
	return nil, nil
}

// ValidatePlanSpec checks what can be checked without the registry: names,
// limits, templates and the steps their outputs come from. The API calls it
// before proposing; Apply calls it again.
func ValidatePlanSpec(spec protocol.PlanSpec) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidPlan, fmt.Sprintf(format, args...))
	}
	if spec.Name == "" {
		return bad("the plan has no name")
	}
	if len(spec.Phases) == 0 {
		return bad("plan %q has no phases", spec.Name)
	}
	phases := map[string]bool{}
	steps := map[string]bool{} // steps that run before the one being checked
	for i, ph := range spec.Phases {
		if ph.Name == "" {
			return bad("phase %d has no name", i)
		}
		if phases[ph.Name] {
			return bad("phase %q appears twice", ph.Name)
		}
		phases[ph.Name] = true
		if ph.Parallel < 0 {
			return bad("phase %q: parallel %d is negative", ph.Name, ph.Parallel)
		}
		if len(ph.Steps) == 0 {
			return bad("phase %q has no steps", ph.Name)
		}
		for j, st := range ph.Steps {
			if st.Name == "" {
				return bad("phase %q: step %d has no name", ph.Name, j)
			}
			where := fmt.Sprintf("phase %q step %q", ph.Name, st.Name)
			if steps[st.Name] {
				return bad("%s: another step has the same name", where)
			}
			switch {
			case st.Action.Kind == "":
				return bad("%s: the action has no kind", where)
			case st.Retry.Attempts < 0:
				return bad("%s: retry attempts %d is negative", where, st.Retry.Attempts)
			case st.Retry.BackoffMs < 0:
				return bad("%s: retry backoff %d ms is negative", where, st.Retry.BackoffMs)
			case st.TimeoutMs < 0:
				return bad("%s: timeout %d ms is negative", where, st.TimeoutMs)
			}
			if err := checkTemplates(st.Action, steps); err != nil {
				return fmt.Errorf("%w: %s: %w", ErrInvalidPlan, where, err)
			}
			steps[st.Name] = true
		}
	}
	return nil
}

// ResolvePlan validates spec and resolves every step's target against the
// registry, giving a pending plan. Each step's NodeEnv is resolved too: its
// keys (node ID, name or address) become the IDs of the step's nodes they
// name (see resolveNodeEnv). Nothing in s changes.
func (s *State) ResolvePlan(id string, spec protocol.PlanSpec, now int64) (*Plan, error) {
	if err := ValidatePlanSpec(spec); err != nil {
		return nil, err
	}
	p := &Plan{ID: id, Name: spec.Name, Created: now, State: PlanPending, Phases: make([]Phase, len(spec.Phases))}
	for i, ph := range spec.Phases {
		phase := Phase{Name: ph.Name, Parallel: ph.Parallel, Steps: make([]Step, len(ph.Steps))}
		for j, ss := range ph.Steps {
			nodes, err := s.Resolve(ss.Target)
			if err != nil {
				return nil, fmt.Errorf("phase %q step %q: %w", ph.Name, ss.Name, err)
			}
			nodeEnv, err := s.resolveNodeEnv(ss.NodeEnv, nodes)
			if err != nil {
				return nil, fmt.Errorf("%w: phase %q step %q: %w", ErrInvalidPlan, ph.Name, ss.Name, err)
			}
			st := Step{Spec: cloneStepSpec(ss), Nodes: nodes, Runs: make(map[string]*NodeStep, len(nodes))}
			st.Spec.NodeEnv = nodeEnv
			for _, node := range nodes {
				st.Runs[node] = &NodeStep{StepID: MakeStepID(id, i, j, node), Node: node, State: protocol.StatePending}
			}
			phase.Steps[j] = st
		}
		p.Phases[i] = phase
	}
	return p, nil
}

// resolveNodeEnv rewrites a step's NodeEnv with node IDs as keys. A key
// names every node of the step whose ID, name or address it is (an address
// several nodes share gives each of them the entries). A key that names
// none of the step's nodes, or two keys that name the same node, are
// errors: the env would be lost, or which one wins would be a guess. The
// values are copied as they are; they are not templates.
func (s *State) resolveNodeEnv(nodeEnv map[string]map[string]string, nodes []string) (map[string]map[string]string, error) {
	if len(nodeEnv) == 0 {
		return nil, nil
	}
	out := make(map[string]map[string]string, len(nodeEnv))
	from := map[string]string{} // node ID -> the key that named it
	for _, key := range slices.Sorted(maps.Keys(nodeEnv)) {
		matched := false
		for _, id := range nodes {
			n := s.Nodes[id]
			if n == nil || !nameMatches(n.Member, key) {
				continue
			}
			matched = true
			if prev, dup := from[id]; dup {
				return nil, fmt.Errorf("nodeEnv keys %q and %q both name node %s: give its env under one key", prev, key, id)
			}
			from[id] = key
			out[id] = maps.Clone(nodeEnv[key])
		}
		if !matched {
			return nil, fmt.Errorf("nodeEnv key %q names none of the step's nodes (%s): use a node ID, name or address the step targets",
				key, strings.Join(nodes, ", "))
		}
	}
	return out, nil
}

// Resolve returns the IDs, sorted, of the registered nodes a selector
// picks. A node must match every non-empty field: Nodes by ID, name or
// address, any of Roles, all of Labels. A name in Nodes that is no registered node,
// or a selector that picks nothing, is an error.
func (s *State) Resolve(sel protocol.Selector) ([]string, error) {
	nodes := s.SortedNodes()
	for _, want := range sel.Nodes {
		if !slices.ContainsFunc(nodes, func(n *Node) bool { return nameMatches(n.Member, want) }) {
			return nil, fmt.Errorf("%w: node %q is not registered", ErrNoNodes, want)
		}
	}
	var out []string
	for _, n := range nodes {
		if selects(sel, n.Member) {
			out = append(out, n.Member.ID)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w the target %s", ErrNoNodes, describeSelector(sel))
	}
	return out, nil
}

// nameMatches reports whether want is the member's ID, name or address.
func nameMatches(m protocol.Member, want string) bool {
	return want == m.ID || (m.Name != "" && want == m.Name) || (m.Address != "" && want == m.Address)
}

func selects(sel protocol.Selector, m protocol.Member) bool {
	if len(sel.Nodes) > 0 && !slices.ContainsFunc(sel.Nodes, func(w string) bool { return nameMatches(m, w) }) {
		return false
	}
	if len(sel.Roles) > 0 && !slices.ContainsFunc(sel.Roles, func(r string) bool { return slices.Contains(m.Roles, r) }) {
		return false
	}
	for k, v := range sel.Labels {
		if got, ok := m.Labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

func describeSelector(sel protocol.Selector) string {
	var parts []string
	if len(sel.Nodes) > 0 {
		parts = append(parts, "nodes="+strings.Join(sel.Nodes, ","))
	}
	if len(sel.Roles) > 0 {
		parts = append(parts, "roles="+strings.Join(sel.Roles, ","))
	}
	for _, k := range slices.Sorted(maps.Keys(sel.Labels)) {
		parts = append(parts, "label "+k+"="+sel.Labels[k])
	}
	if len(parts) == 0 {
		return "(all nodes)"
	}
	return "(" + strings.Join(parts, " ") + ")"
}

// lookupNodeStep finds a node-step anywhere in s.
func (s *State) lookupNodeStep(stepID string) (*Plan, *Step, *NodeStep, bool) {
	planID, _, _, _, err := ParseStepID(stepID)
	if err != nil {
		return nil, nil, nil, false
	}
	p, ok := s.Plans[planID]
	if !ok {
		return nil, nil, nil, false
	}
	ns, st, err := p.NodeStep(stepID)
	if err != nil {
		return nil, nil, nil, false
	}
	return p, st, ns, true
}

// touched collects the plans a batch changed, in first-touch order, and
// whether one of them saw a node-step fail for good.
type touched struct {
	order []*Plan
	fail  map[*Plan]bool
}

func (t *touched) add(p *Plan, failed bool) {
	if t.fail == nil {
		t.fail = map[*Plan]bool{}
	}
	if _, seen := t.fail[p]; !seen {
		t.order = append(t.order, p)
	}
	t.fail[p] = t.fail[p] || failed
}

// settle settles each touched plan; a plan that succeeds now with a
// revision makes it the applied one, stamped with now (the command's time).
func (t *touched) settle(s *State, now int64) {
	for _, p := range t.order {
		was := p.State
		p.settle(t.fail[p])
		if was != PlanSucceeded && p.State == PlanSucceeded {
			s.recordRevision(p, now)
		}
	}
}

// applyMarkDispatched records that node-steps are about to be sent. Only a
// pending node-step with a newer attempt is marked; other entries (the step
// finished meanwhile, a duplicate) are ignored.
func applyMarkDispatched(s *State, _ uint64, req *MarkDispatched) (any, error) {
	resp := &BatchResponse{}
	var t touched
	for _, e := range req.Entries {
		p, _, ns, ok := s.lookupNodeStep(e.StepID)
		if !ok || ns.State != protocol.StatePending || e.Attempt <= ns.Attempt {
			resp.Ignored = append(resp.Ignored, e.StepID)
			continue
		}
		*ns = NodeStep{StepID: ns.StepID, Node: ns.Node, State: protocol.StateDispatched,
			Attempt: e.Attempt, Term: e.Term, DispatchedAt: req.Now}
		resp.Applied++
		t.add(p, false)
	}
	t.settle(s, req.Now)
	return resp, nil
}

// acceptResult decides whether a reported result changes a node-step. A
// result for an older attempt is stale. A result for the attempt that is
// out is taken. A newer attempt is taken only for a pending node-step (the
// scheduler fails a step on an unreachable node without dispatching it).
// A success for the latest attempt is always taken, even after a failure
// was recorded for it: the step's effect happened, so it must not run again.
func acceptResult(ns *NodeStep, r *protocol.StepResult) bool {
	if (r.Node != "" && r.Node != ns.Node) || r.Attempt < 1 {
		return false
	}
	switch r.State {
	case protocol.StateRunning, protocol.StateSucceeded, protocol.StateFailed, protocol.StateInterrupted:
	default:
		return false
	}
	switch {
	case r.Attempt < ns.Attempt:
		return false
	case r.Attempt > ns.Attempt:
		return ns.State == protocol.StatePending && r.State != protocol.StateRunning
	case outstanding(ns.State):
		return r.State != protocol.StateRunning || ns.State == protocol.StateDispatched
	default:
		return r.State == protocol.StateSucceeded && ns.State != protocol.StateSucceeded
	}
}

// applyRecordResults records what agents reported (or what the scheduler
// concluded for unreachable nodes), then settles each plan it touched.
func applyRecordResults(s *State, _ uint64, req *RecordResults) (any, error) {
	resp := &BatchResponse{}
	var t touched
	for i := range req.Results {
		r := &req.Results[i]
		p, st, ns, ok := s.lookupNodeStep(r.StepID)
		if !ok || !acceptResult(ns, r) {
			resp.Ignored = append(resp.Ignored, r.StepID)
			continue
		}
		resp.Applied++
		t.add(p, recordResult(ns, st, r, req.Now))
	}
	t.settle(s, req.Now)
	return resp, nil
}

// recordResult stores r in ns and reports whether ns has now failed for good.
func recordResult(ns *NodeStep, st *Step, r *protocol.StepResult, now int64) bool {
	ns.Attempt = r.Attempt
	if r.State == protocol.StateRunning {
		ns.State = protocol.StateRunning
		return false
	}
	ns.ExitCode, ns.Output, ns.OutputDigest = r.ExitCode, tail(r.Output, MaxOutputTail), r.OutputDigest
	ns.Error, ns.Code, ns.Outputs, ns.NotBefore, ns.FinishedAt = r.Error, r.Code, nil, 0, now
	if r.State == protocol.StateSucceeded {
		if size := outputsSize(r.Outputs); size > MaxOutputsSize {
			ns.State, ns.Code = protocol.StateFailed, protocol.CodeBadRequest
			ns.Error = fmt.Sprintf("the step reported %d bytes of outputs, more than the %d allowed", size, MaxOutputsSize)
			return true
		}
		ns.State, ns.Outputs = protocol.StateSucceeded, maps.Clone(r.Outputs)
		return false
	}
	// failed or interrupted: an interrupted step may have half run, so it
	// is tried again by itself only if it is idempotent.
	retry := r.Attempt < st.Spec.Retry.Attempts && (r.State == protocol.StateFailed || st.Spec.Idempotent)
	if retry {
		ns.State, ns.FinishedAt = protocol.StatePending, 0
		ns.NotBefore = addSaturating(now, Backoff(st.Spec.Retry.BackoffMs, r.Attempt))
		return false
	}
	ns.State = r.State
	return true
}

// Backoff is how long to wait before the try after attempt: the policy's
// first wait, doubled for each attempt after the first, capped at an hour
// (or at the first wait, when that is longer).
func Backoff(firstMs int64, attempt int) int64 {
	d := firstMs
	for i := 1; i < attempt && d < maxBackoffMs; i++ {
		d *= 2
	}
	return min(d, max(maxBackoffMs, firstMs))
}

func addSaturating(a, b int64) int64 {
	if b > 0 && a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

func outputsSize(o map[string]string) int {
	n := 0
	for k, v := range o {
		n += len(k) + len(v)
	}
	return n
}

// tail returns at most max bytes from the end of s, starting on a UTF-8
// character boundary.
func tail(s string, max int) string {
	if len(s) <= max {
		return s
	}
	s = s[len(s)-max:]
	for i := 0; i < len(s) && i < utf8.UTFMax; i++ {
		if s[i]&0xC0 != 0x80 { // not a continuation byte
			return s[i:]
		}
	}
	return s[min(len(s), utf8.UTFMax):]
}

// applyRetrySteps puts failed, interrupted or skipped node-steps back to
// pending. Their attempt is kept, so the next dispatch is attempt+1, and
// their retry policy does not apply again unless attempts remain. Every
// skipped node-step of the plan is un-skipped too: it was skipped only
// because of the failure.
func applyRetrySteps(s *State, _ uint64, req *RetrySteps) (any, error) {
	cur, ok := s.Plans[req.PlanID]
	if !ok {
		return nil, fmt.Errorf("retry: %w %s", ErrUnknownPlan, req.PlanID)
	}
	p := cur.Clone() // swapped in only if the retry lets the plan go on
	var targets []*NodeStep
	retryable := func(ns *NodeStep) bool { return finalFailure(ns.State) || ns.State == protocol.StateSkipped }
	switch {
	case req.StepID == "":
		p.eachNodeStep(func(ns *NodeStep, _ *Step) {
			if retryable(ns) {
				targets = append(targets, ns)
			}
		})
	case strings.Contains(req.StepID, "/"):
		ns, _, err := p.NodeStep(req.StepID)
		if err != nil {
			return nil, fmt.Errorf("retry: %w", err)
		}
		if !retryable(ns) {
			return nil, fmt.Errorf("retry %s: %w (it is %s)", req.StepID, ErrNotRetryable, ns.State)
		}
		targets = append(targets, ns)
	default:
		st, ok := p.StepByName(req.StepID)
		if !ok {
			return nil, fmt.Errorf("retry: %w %q in plan %s", ErrUnknownStep, req.StepID, p.ID)
		}
		for _, node := range st.Nodes {
			if retryable(st.Runs[node]) {
				targets = append(targets, st.Runs[node])
			}
		}
	}
	if len(targets) == 0 {
		return nil, fmt.Errorf("retry plan %s: %w: no step failed, was interrupted or skipped", p.ID, ErrNothingToRetry)
	}
	for _, ns := range targets {
		ns.reset()
	}
	p.eachNodeStep(func(ns *NodeStep, _ *Step) {
		if ns.State == protocol.StateSkipped {
			ns.reset()
		}
	})
	p.State = PlanRunning
	p.settle(false)
	if p.State == PlanSucceeded && cur.State != PlanSucceeded {
		s.recordRevision(p, req.Now)
	}
	if p.State == PlanFailed {
		pi, si, _ := p.Current()
		return nil, fmt.Errorf("retry plan %s: %w: step %q has failures that are not retried, so the plan cannot go on",
			p.ID, ErrNotRetryable, p.Phases[pi].Steps[si].Spec.Name)
	}
	s.Plans[p.ID] = p
	return nil, nil
}

// reset makes ns pending again, keeping its attempt and dispatch history.
func (ns *NodeStep) reset() {
	*ns = NodeStep{StepID: ns.StepID, Node: ns.Node, State: protocol.StatePending,
		Attempt: ns.Attempt, Term: ns.Term, DispatchedAt: ns.DispatchedAt}
}

// settle recomputes a plan's state after its node-steps changed. failNow
// says a node-step just failed for good: the plan fails and its pending
// node-steps are skipped (node-steps already out finish and are recorded).
func (p *Plan) settle(failNow bool) {
	if failNow {
		p.fail()
		return
	}
	pi, si, ok := p.Current()
	if !ok {
		p.State = PlanSucceeded
		return
	}
	started, failures := false, 0
	p.eachNodeStep(func(ns *NodeStep, _ *Step) {
		started = started || ns.Attempt > 0 || ns.State != protocol.StatePending
		if finalFailure(ns.State) {
			failures++
		}
	})
	if p.State == PlanFailed {
		if failures > 0 {
			return
		}
		// A late success replaced the only failure: carry on.
		p.eachNodeStep(func(ns *NodeStep, _ *Step) {
			if ns.State == protocol.StateSkipped {
				ns.reset()
			}
		})
	}
	// A failure left in the current step (after retrying only some of
	// its nodes) fails the plan once nothing else in that step can run.
	cur := &p.Phases[pi].Steps[si]
	stuck, work := false, false
	for _, node := range cur.Nodes {
		ns := cur.Runs[node]
		stuck = stuck || finalFailure(ns.State)
		work = work || ns.State == protocol.StatePending || outstanding(ns.State)
	}
	switch {
	case stuck && !work:
		p.fail()
	case started:
		p.State = PlanRunning
	default:
		p.State = PlanPending
	}
}

// fail marks p failed and skips its pending node-steps.
func (p *Plan) fail() {
	p.State = PlanFailed
	p.eachNodeStep(func(ns *NodeStep, _ *Step) {
		if ns.State == protocol.StatePending {
			ns.State, ns.NotBefore = protocol.StateSkipped, 0
		}
	})
}
