package agent

import (
	"context"
	"slices"
	"time"

	"github.com/drove-project/drove/protocol"
)

// Announcing: every session reports its progress to the tracker (the
// coordinator leader) over the agent's control connection, every
// announce interval and at once when something changes, and learns its
// peers, how many full copies are out, and whether the distribution is
// done.

// haveBytes is how many bytes of the distribution this node holds
// verified, and whether that is all of them.
func (ss *session) haveBytes() (int64, bool) {
	var have int64
	for _, bs := range ss.order {
		bs.mu.RLock()
		if bs.partial == nil {
			have += bs.bp.Size
		} else {
			have += bs.partial.HaveBytes()
		}
		bs.mu.RUnlock()
	}
	return have, have == ss.total
}

// announceSample is what the previous announce saw, for the rate.
type announceSample struct {
	at         time.Time
	downloaded int64
}

// announce reports progress to the tracker and records its answer.
func (ss *session) announce(ctx context.Context, last announceSample, leaving bool) announceSample {
	s := ss.sw
	now := announceSample{at: time.Now(), downloaded: ss.downloaded.Load()}
	if s.cfg.Control == nil {
		return now
	}
	have, complete := ss.haveBytes()
	ss.mu.Lock()
	if !last.at.IsZero() {
		if dt := now.at.Sub(last.at).Seconds(); dt > 0 {
			ss.rateBps = int64(float64(now.downloaded-last.downloaded) / dt)
		}
	}
	a := protocol.SwarmAnnounce{
		Distribution: ss.dist.ID,
		Peer:         protocol.SwarmPeer{ID: s.cfg.NodeID, Addr: s.cfg.DataAddr, Labels: s.cfg.Labels, Seed: ss.seed},
		Have:         have, Total: ss.total, Complete: complete,
		Uploaded: ss.uploaded.Load(), Downloaded: now.downloaded,
		RateBps: ss.rateBps, Connected: ss.connected, Leaving: leaving, SeedsOnly: ss.dist.SeedsOnly,
	}
	ss.mu.Unlock()
	b, err := protocol.Encode(&a)
	if err != nil {
		ss.log.Error("encode announce", "err", err)
		return now
	}
	rctx, cancel := context.WithTimeout(ctx, max(2*s.cfg.AnnounceInterval, 2*time.Second))
	defer cancel()
	reply, err := s.cfg.Control.RequestWithContext(rctx, protocol.APISubject, b)
	var peers protocol.SwarmPeers
	if err == nil {
		err = protocol.DecodeAs(reply.Data, &peers)
	}
	if err != nil {
		if ctx.Err() == nil && !leaving {
			ss.log.Debug("announce to tracker", "err", err)
		}
		return now
	}
	if leaving {
		return now
	}
	ss.mu.Lock()
	ss.peers, ss.done, ss.copiesOut = peers.Peers, peers.Done, peers.CopiesOut
	if now.at.After(ss.answered) { // announces may overlap (a kick)
		ss.answered = now.at
	}
	ss.notifyLocked()
	ss.mu.Unlock()
	return now
}

// trackerState is a snapshot of the tracker's last answer, with the
// channel that is closed when a newer one arrives.
func (ss *session) trackerState() (peers []protocol.SwarmPeer, done bool, copiesOut int, changed <-chan struct{}) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.peers, ss.done, ss.copiesOut, ss.changed
}

// ban records that peer served a bad piece in this distribution.
func (ss *session) ban(peer string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if !slices.Contains(ss.banned, peer) {
		ss.banned = append(ss.banned, peer)
	}
}

func (ss *session) isBanned(peer string) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return slices.Contains(ss.banned, peer)
}

func (ss *session) bannedPeers() []string {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return slices.Clone(ss.banned)
}

func (ss *session) setConnected(n int) {
	ss.mu.Lock()
	ss.connected = n
	ss.mu.Unlock()
}

// stats builds a call's Stats.
func (ss *session) stats(started time.Time, downloaded int64, pieces int) Stats {
	return Stats{
		Downloaded: downloaded, Uploaded: ss.uploaded.Load(), Pieces: pieces,
		Banned: ss.bannedPeers(), Duration: time.Since(started),
	}
}
