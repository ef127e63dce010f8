package coordinator

import (
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sync"

	"github.com/hashicorp/raft"

	"github.com/drove-project/drove/protocol"
)

// Business errors that Apply returns (raft hands them back as the future's
// Response). Match them with errors.Is; ErrorCode maps them to wire codes.
var (
	ErrInvalidPlan    = errors.New("invalid plan")
	ErrPlanExists     = errors.New("plan already exists")
	ErrNoNodes        = errors.New("no node matches")
	ErrUnknownPlan    = errors.New("unknown plan")
	ErrUnknownStep    = errors.New("unknown step")
	ErrUnknownNode    = errors.New("unknown node")
	ErrInvalidNode    = errors.New("invalid node")
	ErrNotRetryable   = errors.New("step is not failed, interrupted or skipped")
	ErrNothingToRetry = errors.New("nothing to retry")
)

// ErrorCode maps an error from Apply (or from this package's validation)
// to a stable wire code.
func ErrorCode(err error) protocol.ErrorCode {
	var pe *protocol.Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &pe):
		return pe.Code
	case errors.Is(err, ErrNoNodes):
		return protocol.CodeNoNodes
	case errors.Is(err, ErrUnknownPlan), errors.Is(err, ErrUnknownStep), errors.Is(err, ErrUnknownNode):
		return protocol.CodeNotFound
	case errors.Is(err, ErrInvalidPlan), errors.Is(err, ErrPlanExists), errors.Is(err, ErrInvalidNode),
		errors.Is(err, ErrNotRetryable), errors.Is(err, ErrNothingToRetry), errors.Is(err, ErrBadStepID),
		errors.Is(err, ErrMissingOutput), errors.Is(err, ErrTemplate):
		return protocol.CodeBadRequest
	}
	return protocol.CodeInternal
}

// BatchResponse is what Apply returns for MarkDispatched and RecordResults:
// how many entries changed state, and the step IDs of those it ignored
// (stale, duplicate, unknown).
type BatchResponse struct {
	Applied int
	Ignored []string
}

// handler applies one decoded command to the state. It returns an error,
// and leaves the state unchanged, when the command is refused.
type handler func(s *State, index uint64, req any) (any, error)

var handlers = map[CommandType]handler{}

// registerCommand installs the handler of t. Domain files call it from
// init(); a second registration for t panics, as does a handler whose
// request type is not t's.
func registerCommand[T any](t CommandType, fn func(s *State, index uint64, req *T) (any, error)) {
	if _, dup := handlers[t]; dup {
		panic(fmt.Sprintf("coordinator: command %s registered twice", t))
	}
	if rt, ok := commandTypes[t]; !ok || rt != reflect.TypeFor[T]() {
		panic(fmt.Sprintf("coordinator: handler for %s takes %v", t, reflect.TypeFor[T]()))
	}
	handlers[t] = func(s *State, index uint64, req any) (any, error) { return fn(s, index, req.(*T)) }
}

// FSM is the coordinator's raft state machine. Apply, Snapshot and Restore
// are called by raft; the other methods are for readers (API, dispatcher)
// and return copies, so they may run concurrently with Apply.
type FSM struct {
	log *slog.Logger

	mu      sync.RWMutex
	state   *State
	changed chan struct{} // closed and replaced on every change
}

var _ raft.FSM = (*FSM)(nil)

// NewFSM returns an FSM with empty state.
func NewFSM(log *slog.Logger) *FSM {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &FSM{log: log, state: NewState(), changed: make(chan struct{})}
}

// Apply applies one committed log entry. An entry that does not decode
// panics: a corrupt or too-new log must stop this node rather than let its
// state diverge from the others'.
func (f *FSM) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	t, req, err := DecodeCommand(l.Data)
	if err == nil && handlers[t] == nil {
		err = fmt.Errorf("%w: no handler for %s", ErrUnknownCommand, t)
	}
	if err != nil {
		f.log.Error("raft log entry does not decode", "index", l.Index, "term", l.Term, "err", err)
		panic(fmt.Sprintf("coordinator: raft log entry %d (term %d) does not decode: %v", l.Index, l.Term, err))
	}
	f.mu.Lock()
	resp, err := handlers[t](f.state, l.Index, req)
	if err == nil {
		close(f.changed)
		f.changed = make(chan struct{})
	}
	f.mu.Unlock()
	if err != nil {
		f.log.Debug("command refused", "index", l.Index, "command", t.String(), "err", err)
		return err
	}
	if b, ok := resp.(*BatchResponse); ok && len(b.Ignored) > 0 {
		f.log.Debug("batch entries ignored", "index", l.Index, "command", t.String(), "applied", b.Applied, "ignored", len(b.Ignored))
	}
	return resp
}

// Changes returns a channel that is closed at the next change of state
// (an applied command or a restore). Take a new one after each wake-up.
func (f *FSM) Changes() <-chan struct{} {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.changed
}

// StateCopy returns a deep copy of the whole state.
func (f *FSM) StateCopy() *State {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.state.Clone()
}

// ActiveCopy returns State.CloneActive of the current state: what a
// dispatcher round needs.
func (f *FSM) ActiveCopy() *State {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.state.CloneActive()
}

// Nodes returns the registered members in node ID order.
func (f *FSM) Nodes() []protocol.Member {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]protocol.Member, 0, len(f.state.Nodes))
	for _, n := range f.state.SortedNodes() {
		out = append(out, cloneMember(n.Member))
	}
	return out
}

// Node returns a copy of one registered node.
func (f *FSM) Node(id string) (*Node, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	n, ok := f.state.Nodes[id]
	if !ok {
		return nil, false
	}
	return n.Clone(), true
}

// Plan returns a deep copy of one plan.
func (f *FSM) Plan(id string) (*Plan, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	p, ok := f.state.Plans[id]
	if !ok {
		return nil, false
	}
	return p.Clone(), true
}

// Plans summarises every plan, in submit order.
func (f *FSM) Plans() []protocol.PlanSummary {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]protocol.PlanSummary, 0, len(f.state.Order))
	for _, p := range f.state.OrderedPlans() {
		out = append(out, p.Summary())
	}
	return out
}

// PlanDetail returns one plan with every node-step.
func (f *FSM) PlanDetail(id string) (*protocol.PlanDetail, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	p, ok := f.state.Plans[id]
	if !ok {
		return nil, false
	}
	d := p.Detail()
	return &d, true
}

// Outputs returns the named outputs of a step of a plan, each from the
// first node, in node order, that succeeded and reported it.
func (f *FSM) Outputs(planID, stepName string) (map[string]string, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	p, ok := f.state.Plans[planID]
	if !ok {
		return nil, fmt.Errorf("%w %s", ErrUnknownPlan, planID)
	}
	st, ok := p.StepByName(stepName)
	if !ok {
		return nil, fmt.Errorf("%w %q in plan %s", ErrUnknownStep, stepName, planID)
	}
	return st.MergedOutputs(), nil
}

// Schedule runs the scheduler on the current state under the read lock,
// without copying the state.
func (f *FSM) Schedule(sc Scheduler, now int64, inFlight map[string]bool, down func(node string) bool) Schedule {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return sc.Next(f.state, now, inFlight, down)
}

// RenderDispatch renders the action of d against the current state (the
// outputs of earlier steps of its plan).
func (f *FSM) RenderDispatch(d Dispatch) (protocol.Action, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	p, ok := f.state.Plans[d.PlanID]
	if !ok {
		return protocol.Action{}, fmt.Errorf("render %s: %w %s", d.StepID, ErrUnknownPlan, d.PlanID)
	}
	ns, _, err := p.NodeStep(d.StepID)
	if err != nil {
		return protocol.Action{}, fmt.Errorf("render %s: %w", d.StepID, err)
	}
	return Render(p, *ns, d.Spec.Action)
}
