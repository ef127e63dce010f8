package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/drove-project/drove/layers/store"
	"github.com/drove-project/drove/protocol"
)

// ErrNoSwarm: a distribute step reached an agent whose swarm is not up
// (it has not connected to the coordinators yet).
var ErrNoSwarm = errors.New("swarm not running on this agent")

// DistributeAction runs protocol.ActionDistribute steps: Seed when this
// node is one of the distribution's seeds, Fetch otherwise. Outputs:
// downloaded and uploaded (bytes), pieces (verified by this step), banned
// (peer IDs, comma-separated) and rootfs (where the image is unpacked).
type DistributeAction struct {
	// Swarm returns the agent's swarm, or nil while it has none.
	Swarm func() *Swarm
}

// Run implements Action.
func (d DistributeAction) Run(ctx context.Context, a protocol.Action, out io.Writer) (int, map[string]string, error) {
	if a.Distribution == nil {
		return 1, nil, errors.New("distribute: the step carries no distribution")
	}
	var sw *Swarm
	if d.Swarm != nil {
		sw = d.Swarm()
	}
	if sw == nil {
		return 1, nil, fmt.Errorf("distribute %s: %w", a.Distribution.ID, ErrNoSwarm)
	}
	dist := a.Distribution
	seed := slices.Contains(dist.Seeds, sw.cfg.NodeID)
	var st Stats
	var err error
	if seed {
		fmt.Fprintf(out, "seeding %s (%s, %d blobs)\n", dist.Image, dist.ImageDigest, len(dist.Blobs))
		st, err = sw.Seed(ctx, dist)
	} else {
		fmt.Fprintf(out, "fetching %s (%s, %d blobs)\n", dist.Image, dist.ImageDigest, len(dist.Blobs))
		st, err = sw.Fetch(ctx, dist)
	}
	outputs := map[string]string{
		"downloaded": strconv.FormatInt(st.Downloaded, 10),
		"uploaded":   strconv.FormatInt(st.Uploaded, 10),
		"pieces":     strconv.Itoa(st.Pieces),
		"banned":     strings.Join(st.Banned, ","),
	}
	if !st.Verified.IsZero() {
		outputs["verified_at"] = strconv.FormatInt(st.Verified.UnixMilli(), 10)
	}
	if len(st.Banned) > 0 {
		fmt.Fprintf(out, "banned peers that served bad pieces: %s\n", strings.Join(st.Banned, ", "))
	}
	if err != nil {
		return 1, outputs, err
	}
	outputs["rootfs"] = sw.RootFS(dist.ImageDigest)
	fmt.Fprintf(out, "done in %s: downloaded %d bytes, uploaded %d bytes, %d pieces; unpacked into %s\n",
		st.Duration.Round(1e6), st.Downloaded, st.Uploaded, st.Pieces, outputs["rootfs"])
	return 0, outputs, nil
}

// startSwarm opens the agent's store and starts its swarm on the data
// endpoint, announcing over nc (the connection to the coordinators).
func (a *Agent) startSwarm(nc *nats.Conn) (*Swarm, error) {
	st, err := store.Open(filepath.Join(a.cfg.DataDir, "store"))
	if err != nil {
		return nil, fmt.Errorf("start swarm: %w", err)
	}
	sw, err := NewSwarm(SwarmConfig{
		NodeID:              a.id,
		DataAddr:            net.JoinHostPort(a.cfg.AdvertiseAddr, strconv.Itoa(a.data.Port())),
		DataURL:             a.data.ClientURL(),
		InProcess:           a.data.s,
		Labels:              a.cfg.Labels,
		DataDir:             a.cfg.DataDir,
		Store:               st,
		Control:             nc,
		Token:               a.cfg.Token,
		UploadLimit:         a.cfg.UploadLimit,
		DownloadConcurrency: a.cfg.DownloadConcurrency,
		Fast:                a.cfg.Fast,
		Log:                 a.log,
	})
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	a.swarm = sw
	a.mu.Unlock()
	return sw, nil
}
