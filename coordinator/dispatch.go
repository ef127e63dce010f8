package coordinator

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/drove-project/drove/protocol"
)

// dispatcher is the leader's step engine for one term. Each round it asks
// the scheduler what may run, records "dispatched" in raft BEFORE sending
// (invariant 3), sends each StepDispatch as a NATS request to the node, and
// commits the replies in batches. Losing leadership cancels its context;
// the next leader re-sends whatever is still dispatched, and agents answer
// repeats from their journals, so nothing runs twice.
type dispatcher struct {
	c    *Coordinator
	term uint64
	log  *slog.Logger

	mu       sync.Mutex
	inFlight map[string]bool      // step IDs awaiting a reply
	retryAt  map[string]time.Time // dispatched steps to re-send (no reply, agent away)
	requests map[string]*request  // step ID → the request out for it

	results chan protocol.StepResult
	wake    chan struct{}
}

// Timing of the dispatcher. Each request waits at most pollWait (the agent
// answers "running" just before if the step goes on, and the leader asks
// again at once: a long poll); a send that finds no agent, or no answer, is
// re-sent every resendEvery until the agent answers or gossip declares the
// node dead. Re-sends are safe: the agent's journal answers repeats.
const (
	pollWait    = 10 * time.Second
	resendEvery = 500 * time.Millisecond
	maxBatch    = 512
	maxCommits  = 4 // RecordResults entries in raft at once
)

func newDispatcher(c *Coordinator, term uint64) *dispatcher {
	return &dispatcher{
		c: c, term: term, log: c.log.With("term", term),
		inFlight: map[string]bool{}, retryAt: map[string]time.Time{}, requests: map[string]*request{},
		results: make(chan protocol.StepResult, 4096), wake: make(chan struct{}, 1),
	}
}

func (d *dispatcher) wakeUp() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

func (d *dispatcher) run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		d.commitLoop(ctx)
	}()
	tick := time.NewTicker(d.interval())
	defer tick.Stop()
	for {
		d.round(ctx)
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case <-tick.C:
		case <-d.wake:
		}
	}
}

func (d *dispatcher) interval() time.Duration {
	if d.c.cfg.Fast {
		return 20 * time.Millisecond
	}
	return 100 * time.Millisecond
}

// round schedules and sends whatever may run now.
func (d *dispatcher) round(ctx context.Context) {
	st := d.c.fsm.ActiveCopy()
	now := time.Now()
	d.mu.Lock()
	inFlight := make(map[string]bool, len(d.inFlight))
	for k := range d.inFlight {
		inFlight[k] = true
	}
	d.mu.Unlock()
	next, unreachable := NextDispatches(st, now.UnixMilli(), inFlight, d.nodeDown)
	// New attempts: record them in raft first, then send.
	if len(next) > 0 {
		entries := make([]DispatchEntry, 0, len(next))
		for _, n := range next {
			entries = append(entries, DispatchEntry{StepID: n.StepID, Attempt: n.Attempt, Term: d.term})
		}
		resp, err := d.c.apply(ctx, CmdMarkDispatched, &MarkDispatched{Entries: entries, Now: now.UnixMilli()})
		if err != nil {
			d.log.Warn("record dispatch", "err", err)
			return
		}
		// A result committed since the copy was taken can have ended the
		// plan (its pending steps skipped): raft refused to mark those, and
		// they must not be sent.
		ignored := map[string]bool{}
		if br, ok := resp.(*BatchResponse); ok {
			for _, id := range br.Ignored {
				ignored[id] = true
			}
		}
		// The copy taken above still holds what send needs (specs, nodes,
		// outputs of earlier steps): MarkDispatched changed none of it.
		for _, n := range next {
			if !ignored[n.StepID] {
				d.send(ctx, st, n.PlanID, n.StepID, n.Attempt)
			}
		}
	}
	// Fail steps on dead nodes after this round's dispatches are recorded,
	// so their siblings in the same step are not skipped by the failure.
	for _, r := range unreachable {
		d.fail(r)
	}
	// Steps recorded as dispatched but not awaiting a reply from us: sent by
	// a previous leader, or our send found no agent. Re-send the same attempt.
	for _, p := range st.OrderedPlans() {
		for _, ph := range p.Phases {
			for _, step := range ph.Steps {
				for _, ns := range step.Runs {
					if ns.State != protocol.StateDispatched {
						continue
					}
					d.mu.Lock()
					busy := d.inFlight[ns.StepID] // live: includes what this round just sent
					at, waiting := d.retryAt[ns.StepID]
					d.mu.Unlock()
					if busy {
						continue
					}
					if waiting && now.Before(at) {
						continue
					}
					if d.nodeDown(ns.Node) {
						d.fail(unreachableResult(ns))
						continue
					}
					d.send(ctx, st, p.ID, ns.StepID, ns.Attempt)
				}
			}
		}
	}
}

// fail queues a result the leader itself decided (node unreachable, a
// template that does not render), once: the step counts as in flight until
// the result is committed.
func (d *dispatcher) fail(r protocol.StepResult) {
	d.mu.Lock()
	d.inFlight[r.StepID] = true
	d.mu.Unlock()
	d.results <- r
}

// unreachableResult ends a step that was sent to a node that has since
// died. It may have run there, so it is interrupted, not failed: only an
// idempotent step is tried again (on the node's return or a retry).
func unreachableResult(ns *NodeStep) protocol.StepResult {
	return protocol.StepResult{StepID: ns.StepID, Node: ns.Node, Attempt: ns.Attempt, State: protocol.StateInterrupted,
		ExitCode: -1, Code: protocol.CodeNodeUnreachable, Error: "node unreachable: gossip reports " + ns.Node + " failed"}
}

// nodeDown reports whether gossip has declared the node dead or gone.
func (d *dispatcher) nodeDown(node string) bool {
	for _, m := range d.c.cfg.Members.Members() {
		if m.ID == node {
			return m.State == "dead" || m.State == "left"
		}
	}
	return false // not (yet) in our gossip view: do not fail it
}

// send renders and sends one step; the reply arrives on d.results.
func (d *dispatcher) send(ctx context.Context, st *State, planID, stepID string, attempt int) {
	p, ok := st.Plans[planID]
	if !ok {
		return
	}
	ns, step, err := p.NodeStep(stepID)
	if err != nil {
		return
	}
	action, err := Render(p, *ns, step.Spec.Action)
	if err != nil {
		d.fail(protocol.StepResult{StepID: stepID, Node: ns.Node, Attempt: attempt, State: protocol.StateFailed,
			ExitCode: -1, Code: protocol.CodeBadRequest, Error: "render step: " + err.Error()})
		return
	}
	wait := pollWait
	msg := &protocol.StepDispatch{StepID: stepID, PlanID: planID, Node: ns.Node, Action: action,
		TimeoutMs: step.Spec.TimeoutMs, Idempotent: step.Spec.Idempotent, Attempt: attempt,
		Term: d.term, Leader: d.c.cfg.NodeID, WaitMs: wait.Milliseconds()}
	b, err := protocol.Encode(msg)
	if err != nil {
		d.log.Error("encode dispatch", "step", stepID, "err", err)
		return
	}
	d.mu.Lock()
	d.inFlight[stepID] = true
	delete(d.retryAt, stepID)
	d.mu.Unlock()
	rctx, cancel := context.WithTimeout(ctx, wait)
	req := &request{node: ns.Node, cancel: cancel}
	d.mu.Lock()
	d.requests[stepID] = req
	d.mu.Unlock()
	go func() {
		defer cancel()
		resp, err := d.c.cfg.NATS.RequestWithContext(rctx, protocol.NodeStepSubject(ns.Node), b)
		d.mu.Lock()
		if d.requests[stepID] == req {
			delete(d.requests, stepID)
		}
		again := req.again
		d.mu.Unlock()
		if err != nil && again {
			d.mu.Lock()
			delete(d.inFlight, stepID)
			d.mu.Unlock()
			d.wakeUp()
			return
		}
		if err != nil {
			if ctx.Err() == nil {
				level := slog.LevelDebug
				if !errors.Is(err, nats.ErrNoResponders) {
					level = slog.LevelWarn
				}
				d.log.Log(ctx, level, "step not answered; will re-send", "step", stepID, "node", ns.Node, "err", err)
			}
			d.later(stepID)
			return
		}
		var res protocol.StepResult
		if err := protocol.DecodeAs(resp.Data, &res); err != nil {
			var pe *protocol.Error
			if errors.As(err, &pe) && pe.Code == protocol.CodeStaleTerm {
				d.log.Warn("agent saw a newer term: this leader is stale", "node", ns.Node)
			} else {
				d.log.Warn("bad step reply", "step", stepID, "err", err)
			}
			d.later(stepID)
			return
		}
		if res.State == protocol.StateRunning {
			// Long poll: ask again right away.
			d.mu.Lock()
			delete(d.inFlight, stepID)
			d.mu.Unlock()
			d.wakeUp()
			return
		}
		if res.State == protocol.StateRejected {
			d.log.Warn("agent rejected step", "step", stepID, "code", res.Code, "err", res.Error)
			d.later(stepID)
			return
		}
		select {
		case d.results <- res:
		case <-ctx.Done():
		}
	}()
}

// request is one StepDispatch out to a node.
type request struct {
	node   string
	cancel context.CancelFunc
	again  bool // cancelled by nodeConnected: re-send at once (under d.mu)
}

// nodeConnected cancels the requests out to node, whose NATS connection
// changed: a request routed to its old connection would otherwise wait out
// its whole long poll. They are re-sent at once (the agent's journal
// answers a repeat of a step it ran or is running).
func (d *dispatcher) nodeConnected(node string) {
	d.mu.Lock()
	n := 0
	for _, r := range d.requests {
		if r.node == node && !r.again {
			r.again = true
			r.cancel()
			n++
		}
	}
	d.mu.Unlock()
	if n > 0 {
		d.log.Info("node reconnected; re-sending its steps", "node", node, "steps", n)
	}
}

// later forgets an unanswered send and schedules the step's re-send.
func (d *dispatcher) later(stepID string) {
	d.mu.Lock()
	delete(d.inFlight, stepID)
	d.retryAt[stepID] = time.Now().Add(resendEvery)
	d.mu.Unlock()
}

// commitLoop commits results in batches: whatever has arrived when a
// commit slot is free goes into one entry. Up to maxCommits entries are in
// raft at once, so a result never waits for an unrelated commit to finish
// (raft itself groups concurrent entries into one disk write).
func (d *dispatcher) commitLoop(ctx context.Context) {
	slots := make(chan struct{}, maxCommits)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		var batch []protocol.StepResult
		select {
		case <-ctx.Done():
			return
		case r := <-d.results:
			batch = append(batch, r)
		}
		select {
		case <-ctx.Done():
			return
		case slots <- struct{}{}:
		}
	drain:
		for len(batch) < maxBatch {
			select {
			case r := <-d.results:
				batch = append(batch, r)
			default:
				break drain
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.commit(ctx, batch)
			<-slots
		}()
	}
}

// commit records one batch of results in raft; on failure it puts them
// back for a later batch unless leadership is gone.
func (d *dispatcher) commit(ctx context.Context, batch []protocol.StepResult) {
	resp, err := d.c.apply(ctx, CmdRecordResults, &RecordResults{Results: batch, Term: d.term, Now: time.Now().UnixMilli()})
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		d.log.Warn("commit step results", "results", len(batch), "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
		for _, r := range batch {
			select {
			case d.results <- r:
			case <-ctx.Done():
				return
			}
		}
		return
	}
	// A result raft ignored leaves its step dispatched: ask again, but not
	// at once, or an agent that keeps answering for an old attempt would
	// be asked in a tight loop.
	ignored := map[string]bool{}
	if br, ok := resp.(*BatchResponse); ok {
		for _, id := range br.Ignored {
			ignored[id] = true
		}
	}
	d.mu.Lock()
	for _, r := range batch {
		delete(d.inFlight, r.StepID)
		if ignored[r.StepID] {
			d.retryAt[r.StepID] = time.Now().Add(resendEvery)
		}
	}
	d.mu.Unlock()
	if len(ignored) > 0 {
		d.log.Warn("step results not taken; asking again later", "steps", len(ignored))
	}
	d.wakeUp()
}
