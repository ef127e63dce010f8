package agent

import (
	"context"
	"fmt"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/drove-project/drove/protocol"
)

// Seed serves dist from the node's store: the node is one of dist.Seeds
// and must hold every blob (else the error, wrapping ErrNotSeed, names the
// missing ones). It unpacks the image like Fetch does, then returns as
// soon as the tracker reports one complete copy out in the swarm
// (SwarmPeers.CopiesOut >= 1) or the distribution done; it goes on
// serving in the background until the tracker says the distribution is
// done (see Swarm). ctx bounds the wait.
func (s *Swarm) Seed(ctx context.Context, dist *protocol.Distribution) (Stats, error) {
	started := time.Now()
	if err := checkDistribution(dist); err != nil {
		return Stats{}, fmt.Errorf("seed: %w", err)
	}
	var missing []string
	for _, bp := range dist.Blobs {
		if h, err := v1.NewHash(bp.Digest); err != nil || !s.cfg.Store.HasBlob(h) {
			missing = append(missing, bp.Digest)
		}
	}
	if len(missing) > 0 {
		return Stats{}, fmt.Errorf("seed %s: this node's store lacks %d of the %d blobs of image %s (%s): %s: %w",
			dist.ID, len(missing), len(dist.Blobs), dist.Image, dist.ImageDigest, strings.Join(missing, ", "), ErrNotSeed)
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	ss, err := s.acquire(dist)
	if err != nil {
		return Stats{Duration: time.Since(started)}, fmt.Errorf("seed %s: %w", dist.ID, err)
	}
	defer ss.release()
	ss.log.Info("seeding distribution", "digest", dist.ImageDigest, "bytes", ss.total)
	if err := s.unpack(ctx, dist, nil); err != nil {
		return ss.stats(started, 0, 0), fmt.Errorf("seed %s: %w", dist.ID, err)
	}
	for {
		_, done, copies, changed := ss.trackerState()
		if done || copies >= 1 {
			st := ss.stats(started, 0, 0)
			ss.log.Info("a full copy is out; seed step done, serving on", "uploaded", st.Uploaded, "copies", copies)
			return st, nil
		}
		select {
		case <-ctx.Done():
			return ss.stats(started, 0, 0), fmt.Errorf("seed %s: no peer holds a full copy yet: %w", dist.ID, context.Cause(ctx))
		case <-changed:
		}
	}
}
