package coordinator

import (
	"fmt"
	"testing"
	"time"

	"github.com/drove-project/drove/protocol"
)

func ann(dist, id, zone string, complete bool) *protocol.SwarmAnnounce {
	a := &protocol.SwarmAnnounce{Distribution: dist, Peer: protocol.SwarmPeer{ID: id, Addr: id + ":7950"}, Complete: complete}
	if zone != "" {
		a.Peer.Labels = map[string]string{"zone": zone}
	}
	return a
}

func TestTrackerPeerSets(t *testing.T) {
	tr := newTracker()
	now := time.Unix(1000, 0)
	for i := range 30 {
		zone := "a"
		if i%3 == 0 {
			zone = "b"
		}
		tr.announce(ann("d", fmt.Sprintf("n%02d", i), zone, false), now, false)
	}
	got := tr.announce(ann("d", "asker", "b", false), now, false)
	if len(got.Peers) != trackerPeers {
		t.Fatalf("%d peers, want %d", len(got.Peers), trackerPeers)
	}
	// The 10 peers in zone b come first, then zone a; never the asker.
	for i, p := range got.Peers {
		if p.ID == "asker" {
			t.Fatal("the asker got itself")
		}
		inB := p.Labels["zone"] == "b"
		if (i < 10) != inB {
			t.Fatalf("peer %d is %s in zone %s: same-zone peers must come first", i, p.ID, p.Labels["zone"])
		}
	}
	// Different askers get different random sets of the far peers.
	a := tr.announce(ann("d", "x1", "c", false), now, false)
	b := tr.announce(ann("d", "x2", "c", false), now, false)
	if fmt.Sprint(a.Peers) == fmt.Sprint(b.Peers) {
		t.Fatal("two askers got the same peer set: not random")
	}
}

func TestTrackerCopiesExpiryAndLeave(t *testing.T) {
	tr := newTracker()
	now := time.Unix(1000, 0)
	seed := ann("d", "seed", "", true)
	seed.Peer.Seed = true
	tr.announce(seed, now, false)
	tr.announce(ann("d", "n1", "", true), now, false)
	tr.announce(ann("d", "n2", "", false), now, false)
	got := tr.announce(ann("d", "n3", "", false), now, true)
	if got.CopiesOut != 1 || !got.Done || len(got.Peers) != 3 {
		t.Fatalf("%+v: want 1 copy out (seeds do not count), done, 3 peers", got)
	}
	star := ann("d", "n4", "", false)
	star.SeedsOnly = true
	if got := tr.announce(star, now, false); len(got.Peers) != 1 || got.Peers[0].ID != "seed" {
		t.Fatalf("a seeds-only announce got %+v", got.Peers)
	}
	// n2 leaves; the others stop announcing and expire.
	l := ann("d", "n2", "", false)
	l.Leaving = true
	tr.announce(l, now, false)
	later := now.Add(peerTTL + time.Second)
	got = tr.announce(ann("d", "n3", "", false), later, false)
	if len(got.Peers) != 0 {
		t.Fatalf("peers after expiry: %+v", got.Peers)
	}
	st := tr.status("", func(string) bool { return false })
	if len(st.Distributions) != 1 || len(st.Distributions[0].Peers) != 1 || st.Distributions[0].Peers[0].Peer.ID != "n3" {
		// n2 left at `now` and expired with the others: only n3 is fresh.
		t.Fatalf("status %+v", st)
	}
	tr.announce(ann("other", "z", "", false), later.Add(swarmTTL+time.Second), false)
	if st := tr.status("d", func(string) bool { return false }); len(st.Distributions) != 0 {
		t.Fatalf("a swarm nobody announced to for %s is still kept: %+v", swarmTTL, st)
	}
}

// TestTrackerOriginSeed: an origin — a seed that is no node, such as the
// CLI serving an image from its own store — is accepted and handed to the
// receivers, never counts as a copy out, and once it leaves is handed to
// no one while its last report stays visible.
func TestTrackerOriginSeed(t *testing.T) {
	tr := newTracker()
	now := time.Unix(1000, 0)
	origin := ann("d", "origin-laptop-4242", "", true)
	origin.Peer.Seed = true
	origin.Uploaded = 100
	if got := tr.announce(origin, now, false); got.CopiesOut != 0 || len(got.Peers) != 0 {
		t.Fatalf("origin alone: %+v, want no copies out and no peers", got)
	}
	got := tr.announce(ann("d", "n1", "", false), now, false)
	if len(got.Peers) != 1 || got.Peers[0].ID != "origin-laptop-4242" || !got.Peers[0].Seed || got.Peers[0].Addr == "" {
		t.Fatalf("receiver got %+v, want the origin as a seed with its address", got.Peers)
	}
	if got := tr.announce(ann("d", "n1", "", true), now, false); got.CopiesOut != 1 {
		t.Fatalf("after n1 completed: %d copies out, want 1 (the origin does not count)", got.CopiesOut)
	}
	leave := *origin
	leave.Leaving = true
	tr.announce(&leave, now, false)
	got = tr.announce(ann("d", "n2", "", false), now, false)
	if len(got.Peers) != 1 || got.Peers[0].ID != "n1" {
		t.Fatalf("after the origin left a receiver got %+v, want only n1", got.Peers)
	}
	st := tr.status("d", func(string) bool { return false })
	var found bool
	for _, p := range st.Distributions[0].Peers {
		if p.Peer.ID == "origin-laptop-4242" {
			found = p.Leaving && p.Uploaded == 100
		}
	}
	if !found {
		t.Fatalf("status lost the origin's last report: %+v", st)
	}
}
