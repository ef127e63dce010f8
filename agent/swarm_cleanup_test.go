package agent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/drove-project/drove/internal/testnats"
	"github.com/drove-project/drove/protocol"
)

// halfFetched runs a fetch from a slow seed and cancels it once the
// fetcher holds some but not all of the image verified, so partial blobs
// are on disk in <data>/swarm/<id>. It returns the fetcher and that
// directory.
func halfFetched(t *testing.T, ctl string, tr *fakeTracker, id string, tune func(*SwarmConfig)) (*swarmNode, string) {
	t.Helper()
	seed := newSwarmNode(t, ctl, "seed", func(c *SwarmConfig) { c.UploadLimit = 2 << 20 })
	f := newSwarmNode(t, ctl, "fetcher", tune)
	dist, size := testImage(t, seed.st, id, protocol.TransferUnit, 3<<20, 2<<20)
	dist.Seeds = []string{"seed"}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	go seed.sw.Seed(ctx, dist)
	fctx, fcancel := context.WithCancel(ctx)
	fetched := make(chan error, 1)
	go func() { _, err := f.sw.Fetch(fctx, dist); fetched <- err }()
	eventually(t, 30*time.Second, "the fetcher to hold part of the image", func() bool {
		a, ok := tr.lastOf("fetcher")
		return ok && a.Have >= protocol.TransferUnit
	})
	fcancel()
	if err := <-fetched; !errors.Is(err, context.Canceled) {
		t.Fatalf("fetch: %v, want it cancelled before the end", err)
	}
	dir := filepath.Join(f.dir, "swarm", dist.ID)
	if a, _ := tr.lastOf("fetcher"); a.Have >= size {
		t.Fatalf("the fetcher got the whole image (%d bytes) before it was cancelled", a.Have)
	}
	if entries, err := os.ReadDir(dir); err != nil || len(entries) == 0 {
		t.Fatalf("no partial blobs in %s after a cut-short fetch: %v %v", dir, entries, err)
	}
	return f, dir
}

func gone(dir string) bool {
	_, err := os.Stat(dir)
	return errors.Is(err, os.ErrNotExist)
}

// A distribution that will never finish on a node leaves nothing behind:
// its partial blobs are removed when the session ends because the
// tracker says the distribution is done, or because it lingered unused.
// An agent that merely stops keeps them, to resume after the restart.
func TestSwarmSessionEndRemovesPartials(t *testing.T) {
	t.Run("done", func(t *testing.T) {
		ctl := testnats.Start(t)
		tr := startTracker(t, ctl)
		f, dir := halfFetched(t, ctl, tr, "dist-cleanup-done", nil)
		// The default linger is ten minutes: only "done" ends it here.
		tr.setDone()
		eventually(t, 10*time.Second, "the session to end and "+dir+" to go", func() bool {
			return !f.sw.Serving("dist-cleanup-done") && gone(dir)
		})
	})
	t.Run("lingered", func(t *testing.T) {
		ctl := testnats.Start(t)
		tr := startTracker(t, ctl)
		f, dir := halfFetched(t, ctl, tr, "dist-cleanup-linger", func(c *SwarmConfig) { c.Linger = 300 * time.Millisecond })
		eventually(t, 10*time.Second, "the session to linger out and "+dir+" to go", func() bool {
			return !f.sw.Serving("dist-cleanup-linger") && gone(dir)
		})
	})
	t.Run("agent stops", func(t *testing.T) {
		ctl := testnats.Start(t)
		tr := startTracker(t, ctl)
		f, dir := halfFetched(t, ctl, tr, "dist-cleanup-close", nil)
		if err := f.sw.Close(); err != nil {
			t.Fatal(err)
		}
		if entries, err := os.ReadDir(dir); err != nil || len(entries) == 0 {
			t.Fatalf("partial blobs gone after the swarm closed (%v %v): a restart could not resume", entries, err)
		}
	})
}
