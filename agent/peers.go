package agent

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/drove-project/drove/internal/atomicfile"
)

// Peers an agent has seen are kept in <data>/peers.json, so that a restarted
// agent finds the cluster even when its --join seeds are down (or are
// itself): it joins through any member it knew.

func peersPath(dataDir string) string { return filepath.Join(dataDir, "peers.json") }

func loadPeers(dataDir string) []string {
	b, err := os.ReadFile(peersPath(dataDir))
	if err != nil {
		return nil
	}
	var peers []string
	if json.Unmarshal(b, &peers) != nil {
		return nil
	}
	return peers
}

// joinSeeds merges the configured seeds and the remembered peers, without
// this node's own address.
func (a *Agent) joinSeeds() []string {
	self := map[string]bool{a.gossip.Addr(): true}
	if a.cfg.GossipPort > 0 {
		self[net.JoinHostPort(a.cfg.AdvertiseAddr, strconv.Itoa(a.cfg.GossipPort))] = true
	}
	var out []string
	for _, s := range append(append([]string(nil), a.cfg.Join...), loadPeers(a.cfg.DataDir)...) {
		if !self[s] && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// reconnectDead tries to rejoin members gossip has declared dead, as serf's
// reconnect loop does: memberlist never probes a dead member again, so
// after a partition heals both sides would otherwise go on seeing each
// other dead.
func (a *Agent) reconnectDead(ctx context.Context) {
	var dead []string
	for _, m := range a.gossip.Members() {
		if m.ID != a.id && m.State == "dead" && m.GossipPort > 0 {
			dead = append(dead, net.JoinHostPort(m.Address, strconv.Itoa(m.GossipPort)))
		}
	}
	if len(dead) == 0 {
		return
	}
	jctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if n, err := a.gossip.Join(jctx, dead); err == nil && n > 0 {
		a.log.Info("reconnected to members gossip had declared dead", "answered", n)
	}
}

// rememberPeers writes the alive members' gossip addresses whenever they
// change, until ctx ends.
func (a *Agent) rememberPeers(ctx context.Context) {
	every := 10 * time.Second
	if a.cfg.Fast {
		every = time.Second
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	reconnectEvery := 30 * time.Second
	if a.cfg.Fast {
		reconnectEvery = 3 * time.Second
	}
	lastReconnect := time.Now()
	var last []string
	for {
		var peers []string
		for _, m := range a.gossip.Members() {
			if m.ID != a.id && m.State == "alive" && m.GossipPort > 0 {
				peers = append(peers, net.JoinHostPort(m.Address, strconv.Itoa(m.GossipPort)))
			}
		}
		sort.Strings(peers)
		if time.Since(lastReconnect) >= reconnectEvery {
			a.reconnectDead(ctx)
			lastReconnect = time.Now()
		}
		if len(peers) > 0 && !slices.Equal(peers, last) {
			if b, err := json.Marshal(peers); err == nil {
				if err := atomicfile.WriteFile(peersPath(a.cfg.DataDir), b, 0o600); err != nil {
					a.log.Warn("remember peers", "err", err)
				} else {
					last = peers
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
