package coordinator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/drove-project/drove/protocol"
)

// serveAPI answers CLI requests on protocol.APISubject (queue group: one
// coordinator takes each) and forwarded requests on its own subject.
// Requests that change or must read the latest state go to the leader.
func (c *Coordinator) serveAPI() error {
	// NATS runs a subscription's callbacks one at a time; each request
	// gets its own goroutine (at most apiConcurrency) so a slow raft
	// commit does not queue every other request behind it.
	sem := make(chan struct{}, apiConcurrency)
	handle := func(m *nats.Msg) {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			c.handleAPI(m)
		}()
	}
	for _, sub := range []struct{ subject, queue string }{
		{protocol.APISubject, protocol.APIQueue},
		{protocol.CoordinatorSubject(c.cfg.NodeID), ""},
	} {
		s, err := c.cfg.NATS.QueueSubscribe(sub.subject, sub.queue, handle)
		if err != nil {
			return fmt.Errorf("subscribe %s: %w", sub.subject, err)
		}
		c.subs = append(c.subs, s)
	}
	// Every coordinator hears agents' hellos; the leader re-sends what it
	// had out to a node that (re)connected.
	s, err := c.cfg.NATS.Subscribe(protocol.HelloSubject, c.handleHello)
	if err != nil {
		return fmt.Errorf("subscribe %s: %w", protocol.HelloSubject, err)
	}
	c.subs = append(c.subs, s)
	return c.cfg.NATS.Flush()
}

// handleHello tells the leader's dispatcher that a node (re)connected:
// requests it had out to that node may have gone to a connection that is
// gone, so they are sent again now instead of after their long poll.
func (c *Coordinator) handleHello(m *nats.Msg) {
	var h protocol.NodeHello
	if err := protocol.DecodeAs(m.Data, &h); err != nil {
		c.log.Debug("bad hello", "err", err)
		return
	}
	c.mu.Lock()
	d := c.dispatch
	c.mu.Unlock()
	if d != nil {
		d.nodeConnected(h.Node.ID)
	}
}

const (
	apiTimeout     = 30 * time.Second
	apiConcurrency = 64
)

func (c *Coordinator) handleAPI(msg *nats.Msg) {
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	reply := c.answer(ctx, msg)
	b, err := protocol.Encode(reply)
	if err != nil {
		b, _ = protocol.Encode(protocol.Errorf(protocol.CodeInternal, "encode reply: %v", err))
	}
	if err := msg.Respond(b); err != nil {
		c.log.Debug("reply to API request", "err", err)
	}
}

func (c *Coordinator) answer(ctx context.Context, msg *nats.Msg) protocol.Message {
	req, err := protocol.Decode(msg.Data)
	if err != nil {
		return protocol.Errorf(protocol.CodeBadRequest, "%v", err)
	}
	if _, ok := req.(*protocol.StatusRequest); ok {
		return c.status()
	}
	if !c.IsLeader() {
		return c.forward(ctx, msg.Data)
	}
	switch r := req.(type) {
	case *protocol.PlanSubmit:
		return c.submit(ctx, r)
	case *protocol.PlanListRequest:
		return &protocol.PlanList{Plans: c.fsm.Plans()}
	case *protocol.ClusterGetRequest:
		rev := c.fsm.Revision()
		return &rev
	case *protocol.PlanGetRequest:
		d, ok := c.fsm.PlanDetail(r.PlanID)
		if !ok {
			return protocol.Errorf(protocol.CodeNotFound, "no plan %q", r.PlanID)
		}
		return d
	case *protocol.SwarmAnnounce:
		if !protocol.ValidID(r.Distribution) || !protocol.ValidID(r.Peer.ID) || r.Peer.Addr == "" {
			return protocol.Errorf(protocol.CodeBadRequest, "announce: need a distribution ID, a peer ID and its data address")
		}
		return c.tracker.announce(r, time.Now(), c.distributionDone(r.Distribution))
	case *protocol.DistributionStatusRequest:
		return c.tracker.status(r.Distribution, c.distributionDone)
	case *protocol.RetryRequest:
		if _, err := c.apply(ctx, CmdRetrySteps, &RetrySteps{PlanID: r.PlanID, StepID: r.StepID, Now: time.Now().UnixMilli()}); err != nil {
			return asProtocolError(err)
		}
		c.wakeDispatcher()
		return &protocol.Ack{}
	}
	return protocol.Errorf(protocol.CodeBadRequest, "%s is not an API request", req.Type())
}

// forward passes a request to the leader's own subject.
func (c *Coordinator) forward(ctx context.Context, data []byte) protocol.Message {
	leader := c.Leader()
	if leader == "" {
		return protocol.Errorf(protocol.CodeNoLeader, "no raft leader right now; try again shortly")
	}
	if leader == c.cfg.NodeID {
		return protocol.Errorf(protocol.CodeNotLeader, "leadership is changing; try again")
	}
	resp, err := c.cfg.NATS.RequestWithContext(ctx, protocol.CoordinatorSubject(leader), data)
	if err != nil {
		return protocol.Errorf(protocol.CodeNoLeader, "forward to leader %s: %v", leader, err)
	}
	m, err := protocol.Decode(resp.Data)
	if err != nil {
		return protocol.Errorf(protocol.CodeInternal, "leader's reply: %v", err)
	}
	return m
}

func (c *Coordinator) submit(ctx context.Context, r *protocol.PlanSubmit) protocol.Message {
	// Resolve selectors against every node gossip sees alive now, not only
	// those the periodic reconcile has registered so far.
	c.reconcileNodes(ctx)
	id := r.PlanID
	if id == "" {
		id = protocol.NewPlanID(time.Now())
	} else if !protocol.ValidID(id) {
		return protocol.Errorf(protocol.CodeBadRequest, "plan ID %q: no dots, spaces or wildcards", id)
	}
	if _, err := c.apply(ctx, CmdSubmitPlan, &SubmitPlan{PlanID: id, Spec: r.Plan, Now: time.Now().UnixMilli(), Revision: r.Revision}); err != nil {
		if errors.Is(err, ErrPlanExists) && r.PlanID != "" {
			return &protocol.PlanSubmitted{PlanID: id} // a retry of a submit that went through
		}
		return asProtocolError(err)
	}
	c.wakeDispatcher()
	return &protocol.PlanSubmitted{PlanID: id}
}

func (c *Coordinator) status() *protocol.Status {
	st := &protocol.Status{
		Members: c.cfg.Members.Members(),
		Leader:  c.Leader(),
		Voters:  c.Voters(),
		Term:    c.raft.CurrentTerm(),
		Plans:   c.fsm.Plans(),
	}
	for i := range st.Members {
		_, st.Members[i].Registered = c.fsm.Node(st.Members[i].ID)
	}
	if c.cfg.Traffic != nil {
		st.NATSInBytes, st.NATSOutBytes = c.cfg.Traffic()
		st.Answerer = c.cfg.NodeID
	}
	return st
}

// distributionDone reports whether the plan carrying a distribution (they
// share their ID) has settled: seeds may stop serving.
func (c *Coordinator) distributionDone(id string) bool {
	d, ok := c.fsm.PlanDetail(id)
	return ok && d.Settled()
}

func (c *Coordinator) wakeDispatcher() {
	c.mu.Lock()
	d := c.dispatch
	c.mu.Unlock()
	if d != nil {
		d.wakeUp()
	}
}

func asProtocolError(err error) *protocol.Error {
	var pe *protocol.Error
	if errors.As(err, &pe) {
		return pe
	}
	return &protocol.Error{Code: ErrorCode(err), Message: err.Error()}
}
