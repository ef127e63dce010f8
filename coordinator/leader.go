package coordinator

import (
	"context"
	"reflect"
	"time"

	"github.com/hashicorp/raft"

	"github.com/drove-project/drove/protocol"
)

// leaderLoop runs while this coordinator leads: first a barrier so the FSM
// has applied everything committed before, then the dispatcher and the
// membership reconciler, until ctx is cancelled by a loss of leadership.
func (c *Coordinator) leaderLoop(ctx context.Context) {
	term := c.raft.CurrentTerm()
	log := c.log.With("term", term)
	if err := c.raft.Barrier(30 * time.Second).Error(); err != nil {
		log.Warn("barrier after gaining leadership", "err", err)
		return
	}
	log.Info("leading")
	d := newDispatcher(c, term)
	c.mu.Lock()
	c.dispatch = d
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.dispatch = nil
		c.mu.Unlock()
		log.Info("no longer leading")
	}()
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.run(ctx)
	}()
	tick := time.NewTicker(c.pollInterval())
	defer tick.Stop()
	deadSince := map[string]time.Time{} // voters gossip reports dead, since when we saw it
	for {
		c.reconcileNodes(ctx)
		c.reconcileVoters(ctx, deadSince)
		select {
		case <-ctx.Done():
			<-done
			return
		case <-tick.C:
		}
	}
}

// reconcileNodes registers gossip members in the FSM's node registry (new
// ones, and ones whose roles, labels or addresses changed).
func (c *Coordinator) reconcileNodes(ctx context.Context) {
	known := map[string]protocol.Member{}
	for _, m := range c.fsm.Nodes() {
		known[m.ID] = m
	}
	now := time.Now().UnixMilli()
	for _, m := range c.cfg.Members.Members() {
		if m.State != "alive" {
			continue
		}
		old, ok := known[m.ID]
		m.State = ""
		old.State = ""
		if ok && reflect.DeepEqual(old, m) {
			continue
		}
		if _, err := c.apply(ctx, CmdRegisterNode, &RegisterNode{Member: m, Now: now}); err != nil {
			c.log.Warn("register node", "node", m.ID, "err", err)
		}
	}
}

// reconcileVoters adds alive coordinators that are not voters yet and
// removes voters that left gracefully. A voter gossip reports dead is
// removed once it has been dead for RemoveDeadAfter, one at a time, and
// only while most voters are alive: a voter that merely restarts keeps
// its seat, and the cluster never shrinks below the quorum it needs. A
// removed coordinator that comes back is added again.
func (c *Coordinator) reconcileVoters(ctx context.Context, deadSince map[string]time.Time) {
	f := c.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return
	}
	voters := map[string]raft.Server{}
	for _, s := range f.Configuration().Servers {
		voters[string(s.ID)] = s
	}
	members := c.cfg.Members.Members()
	alive := 0
	for _, m := range members {
		if _, ok := voters[m.ID]; ok && m.State == "alive" {
			alive++
		}
	}
	now := time.Now()
	stillDead := map[string]bool{}
	for _, m := range members {
		if !m.Coord || m.RaftPort == 0 {
			continue
		}
		s, isVoter := voters[m.ID]
		switch {
		case m.State == "alive" && (!isVoter || s.Address != raftAddress(m)):
			if err := c.raft.AddVoter(raft.ServerID(m.ID), raftAddress(m), 0, 10*time.Second).Error(); err != nil {
				c.log.Warn("add voter", "peer", m.ID, "err", err)
			} else {
				c.log.Info("added voter", "peer", m.ID)
			}
		case m.State == "left" && isVoter && m.ID != c.cfg.NodeID:
			if err := c.raft.RemoveServer(raft.ServerID(m.ID), 0, 10*time.Second).Error(); err != nil {
				c.log.Warn("remove voter", "peer", m.ID, "err", err)
			} else {
				c.log.Info("removed voter that left", "peer", m.ID)
			}
		case m.State == "dead" && isVoter && m.ID != c.cfg.NodeID && c.cfg.RemoveDeadAfter > 0:
			stillDead[m.ID] = true
			since, ok := deadSince[m.ID]
			if !ok {
				deadSince[m.ID] = now
				continue
			}
			if now.Sub(since) < c.cfg.RemoveDeadAfter || alive*2 <= len(voters)-1 {
				continue
			}
			if err := c.raft.RemoveServer(raft.ServerID(m.ID), 0, 10*time.Second).Error(); err != nil {
				c.log.Warn("remove dead voter", "peer", m.ID, "err", err)
				continue
			}
			c.log.Warn("removed voter dead for too long", "peer", m.ID, "dead", now.Sub(since).Round(time.Second))
			delete(deadSince, m.ID)
			return // one at a time: recount before removing another
		}
	}
	for id := range deadSince {
		if !stillDead[id] {
			delete(deadSince, id)
		}
	}
}
