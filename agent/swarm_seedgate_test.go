package agent

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/drove-project/drove/internal/testnats"
	"github.com/drove-project/drove/protocol"
)

// A receiver that starts before the node holding most of the image (one
// installed from media) has announced does not take that part from the
// seed: its seed link waits for the tracker's answer to an announce sent
// seedSettle after the fetch began, and for the other peer's pieces. The
// seed then uploads about the one blob only it holds, not the rest.
func TestSwarmSeedGateSparesSeed(t *testing.T) {
	ctl := testnats.Start(t)
	tr := startTracker(t, ctl)
	seed := newSwarmNode(t, ctl, "seed", nil)
	media := newSwarmNode(t, ctl, "media", nil)
	recv := newSwarmNode(t, ctl, "receiver", nil)
	dist, _ := testImage(t, seed.st, "dist-gate", protocol.TransferUnit, 2<<20, 16<<20)
	dist.Seeds = []string{"seed"}
	small, big := dist.Blobs[2], dist.Blobs[3] // the layers, in manifest order
	// The media node holds every blob but the small layer.
	for _, b := range dist.Blobs {
		if b.Digest == small.Digest {
			continue
		}
		h, _ := v1.NewHash(b.Digest)
		f, err := seed.st.OpenBlob(h)
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = media.st.WriteBlob(t.Context(), f, h)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
	}

	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	run := func(n *swarmNode) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var out bytes.Buffer
			act := DistributeAction{Swarm: func() *Swarm { return n.sw }}
			if _, _, err := act.Run(ctx, protocol.Action{Kind: protocol.ActionDistribute, Distribution: dist}, &out); err != nil {
				errs <- err
			}
		}()
	}
	run(seed)
	eventually(t, 10*time.Second, "the seed to announce", func() bool { _, ok := tr.lastOf("seed"); return ok })
	run(recv)
	// The receiver's first announce is answered with the seed alone.
	eventually(t, 10*time.Second, "the receiver to announce", func() bool { _, ok := tr.lastOf("receiver"); return ok })
	run(media)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	want := seed.sw.RootFS(dist.ImageDigest)
	for _, n := range []*swarmNode{recv, media} {
		assertHasImage(t, n, dist, want)
	}
	seed.sw.mu.Lock()
	ss := seed.sw.sessions[dist.ID]
	seed.sw.mu.Unlock()
	if ss == nil {
		t.Fatal("the seed no longer serves the distribution")
	}
	up := ss.uploaded.Load()
	t.Logf("small layer %d bytes, big layer %d bytes; the seed uploaded %d", small.Size, big.Size, up)
	if up < small.Size || up >= small.Size+big.Size/2 {
		t.Fatalf("the seed uploaded %d bytes, want about the small layer only (%d), not the media node's big layer (%d)", up, small.Size, big.Size)
	}
}

// The gate opens once the tracker answered an announce sent seedSettle
// after the fetch began and every non-seed link told its pieces, or after
// seedHold whatever happened; once open it stays open.
func TestSeedWait(t *testing.T) {
	start := time.Now()
	newF := func(age time.Duration, answeredAfter time.Duration, links ...*link) *fetch {
		f := &fetch{ss: &session{}, started: start.Add(-age), links: map[string]*link{}}
		if answeredAfter >= 0 {
			f.ss.answered = f.started.Add(answeredAfter)
		}
		for _, l := range links {
			f.links[l.peer.ID] = l
		}
		return f
	}
	peer := func(id string, seed, ready bool) *link {
		return &link{peer: protocol.SwarmPeer{ID: id, Seed: seed}, ready: ready}
	}
	for _, tc := range []struct {
		name     string
		f        *fetch
		wantOpen bool
	}{
		{"no answer yet", newF(50*time.Millisecond, -1), false},
		{"only the answers of the first announces", newF(500*time.Millisecond, seedSettle/2, peer("m", false, true)), false},
		{"settled, a peer has not told its pieces", newF(500*time.Millisecond, seedSettle, peer("m", false, false), peer("o", true, true)), false},
		{"settled, peers told theirs (a seed's does not count)", newF(500*time.Millisecond, seedSettle, peer("m", false, true), peer("o", true, false)), true},
		{"settled, no peer but seeds", newF(500*time.Millisecond, 2*seedSettle, peer("o", true, false)), true},
		{"held long enough without a tracker", newF(seedHold, -1, peer("m", false, false)), true},
	} {
		wait := tc.f.seedWait()
		if (wait == 0) != tc.wantOpen {
			t.Errorf("%s: seedWait %v, want open %v", tc.name, wait, tc.wantOpen)
		}
		if !tc.wantOpen && (wait <= 0 || wait > seedHold) {
			t.Errorf("%s: seedWait %v, want within (0, %v]", tc.name, wait, seedHold)
		}
		if tc.wantOpen {
			tc.f.ss.answered = time.Time{}
			tc.f.links["late"] = peer("late", false, false)
			if w := tc.f.seedWait(); w != 0 {
				t.Errorf("%s: the open gate closed again (%v)", tc.name, w)
			}
		}
	}
}
