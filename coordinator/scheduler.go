package coordinator

import "github.com/drove-project/drove/protocol"

// Scheduler defaults, in milliseconds.
const (
	DefaultResendGrace = 30 * 1000      // added to a step's timeout before it is re-sent
	DefaultStepTimeout = 10 * 60 * 1000 // for steps without a timeout, when deciding re-sends
)

// Scheduler decides, from the state, what the leader does next. It is pure:
// it reads the state and the arguments only, and changes nothing. The zero
// value uses the defaults.
type Scheduler struct {
	Grace          int64 // ms added to a step's timeout before a node-step that is out is re-sent
	DefaultTimeout int64 // ms, the timeout of steps that have none, for re-sends
}

// Dispatch is one node-step to send.
type Dispatch struct {
	StepID  string
	PlanID  string
	Node    string
	Spec    protocol.StepSpec // a copy; its Action is not rendered yet
	Attempt int
}

// Entry is d as recorded by MarkDispatched.
func (d Dispatch) Entry(term uint64) DispatchEntry {
	return DispatchEntry{StepID: d.StepID, Attempt: d.Attempt, Term: term}
}

// Message is d as sent to the agent, with its action rendered.
func (d Dispatch) Message(action protocol.Action, term uint64, leader string) *protocol.StepDispatch {
	return &protocol.StepDispatch{
		StepID: d.StepID, PlanID: d.PlanID, Node: d.Node, Action: action,
		TimeoutMs: d.Spec.TimeoutMs, Idempotent: d.Spec.Idempotent,
		Attempt: d.Attempt, Term: term, Leader: leader,
	}
}

// Schedule is what the leader should do next.
type Schedule struct {
	// Dispatch: new attempts (stored attempt + 1). Commit them with
	// MarkDispatched, then send them.
	Dispatch []Dispatch
	// Resend: node-steps that were sent longer ago than their timeout plus
	// the grace without an answer. Send them again with the same attempt
	// (no raft write); the agent's journal answers a duplicate with the
	// recorded result.
	Resend []Dispatch
	// Unreachable: results to commit with RecordResults for node-steps
	// whose node is down or no longer registered. A pending node-step gets
	// a failed result for its next attempt (it was never sent, so it may be
	// retried); a node-step that was sent and is overdue gets an
	// interrupted result for its attempt (it may have run, so only an
	// idempotent step is retried).
	Unreachable []protocol.StepResult
}

// Empty reports whether there is nothing to do.
func (s Schedule) Empty() bool {
	return len(s.Dispatch) == 0 && len(s.Resend) == 0 && len(s.Unreachable) == 0
}

// NextDispatches is the dispatching half of Scheduler.Next with the
// default settings: new attempts, and failures for pending node-steps whose
// node is down. It leaves re-sends to the caller.
func NextDispatches(st *State, now int64, inFlight map[string]bool, down func(node string) bool) (dispatch []Dispatch, unreachable []protocol.StepResult) {
	s := Scheduler{}.next(st, now, inFlight, down, false)
	return s.Dispatch, s.Unreachable
}

// Next looks at every plan in submit order. For each pending or
// running plan it takes the current step (the first, in phase then step
// order, that has not succeeded on every node) and offers its pending
// node-steps whose backoff has passed, in node order, up to the phase's
// Parallel limit less the node-steps of that step already out (0 is no
// limit). A node-step whose node is down is failed as unreachable instead
// of dispatched, and does not take a slot.
//
// inFlight holds the step IDs the leader has proposed or sent and not yet
// seen settle in the state: they count as out and are not offered again.
// The leader keeps every step ID of a Schedule in inFlight until its raft
// entry is applied or its send has finished. down may be nil; a node that
// is not registered counts as down.
//
// Next also looks at every node-step that is out (dispatched or running)
// and not in flight: once it is older than its timeout (or DefaultTimeout)
// plus Grace it goes to Resend, or, when its node is down, to Unreachable.
func (sc Scheduler) Next(st *State, now int64, inFlight map[string]bool, down func(node string) bool) Schedule {
	return sc.next(st, now, inFlight, down, true)
}

func (sc Scheduler) next(st *State, now int64, inFlight map[string]bool, down func(node string) bool, overdue bool) Schedule {
	grace, defTimeout := sc.Grace, sc.DefaultTimeout
	if grace <= 0 {
		grace = DefaultResendGrace
	}
	if defTimeout <= 0 {
		defTimeout = DefaultStepTimeout
	}
	isDown := func(node string) bool {
		return st.Nodes[node] == nil || (down != nil && down(node))
	}
	var out Schedule
	for _, p := range st.OrderedPlans() {
		if p.State == PlanSucceeded {
			continue
		}
		p.eachNodeStep(func(ns *NodeStep, step *Step) {
			if !overdue || !outstanding(ns.State) || inFlight[ns.StepID] {
				return
			}
			timeout := step.Spec.TimeoutMs
			if timeout <= 0 {
				timeout = defTimeout
			}
			if now-ns.DispatchedAt <= timeout+grace {
				return
			}
			if isDown(ns.Node) {
				out.Unreachable = append(out.Unreachable, unreachable(ns, ns.Attempt, protocol.StateInterrupted))
				return
			}
			out.Resend = append(out.Resend, dispatchOf(p, step, ns, ns.Attempt))
		})
		if p.State != PlanPending && p.State != PlanRunning {
			continue
		}
		pi, si, ok := p.Current()
		if !ok {
			continue
		}
		phase := &p.Phases[pi]
		step := &phase.Steps[si]
		limited, slots := phase.Parallel > 0, phase.Parallel
		for _, node := range step.Nodes {
			ns := step.Runs[node]
			if outstanding(ns.State) || inFlight[ns.StepID] {
				slots--
			}
		}
		for _, node := range step.Nodes {
			if limited && slots <= 0 {
				break
			}
			ns := step.Runs[node]
			if ns.State != protocol.StatePending || inFlight[ns.StepID] || ns.NotBefore > now {
				continue
			}
			if isDown(node) {
				out.Unreachable = append(out.Unreachable, unreachable(ns, ns.Attempt+1, protocol.StateFailed))
				continue
			}
			out.Dispatch = append(out.Dispatch, dispatchOf(p, step, ns, ns.Attempt+1))
			slots--
		}
	}
	return out
}

func dispatchOf(p *Plan, step *Step, ns *NodeStep, attempt int) Dispatch {
	return Dispatch{StepID: ns.StepID, PlanID: p.ID, Node: ns.Node, Spec: cloneStepSpec(step.Spec), Attempt: attempt}
}

func unreachable(ns *NodeStep, attempt int, state string) protocol.StepResult {
	return protocol.StepResult{
		StepID: ns.StepID, Node: ns.Node, Attempt: attempt, State: state, ExitCode: -1,
		Error: "node unreachable", Code: protocol.CodeNodeUnreachable,
	}
}

// StepIDs returns the step IDs in s, for the leader's in-flight set.
func (s Schedule) StepIDs() map[string]bool {
	ids := map[string]bool{}
	for _, d := range s.Dispatch {
		ids[d.StepID] = true
	}
	for _, d := range s.Resend {
		ids[d.StepID] = true
	}
	for _, r := range s.Unreachable {
		ids[r.StepID] = true
	}
	return ids
}
