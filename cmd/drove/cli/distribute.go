package cli

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/drove-project/drove/internal/progress"
	"github.com/drove-project/drove/layers/swarm"
	"github.com/drove-project/drove/protocol"
)

type distributeOptions struct {
	Roles     []string
	Nodes     []string
	SeedNodes []string
	PieceSize int64
	Timeout   time.Duration
	Origin    originOptions // when no --seed-node: the CLI serves the image
}

func newDistributeCmd(g *Globals) *cobra.Command {
	o := &distributeOptions{}
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "distribute IMAGE",
		Short: "Deliver an image to nodes peer-to-peer",
		Long: `distribute delivers a cluster image from the local store to the chosen
nodes (all, or --roles / --nodes) through the swarm: every node serves the
pieces it holds to the others from its own data endpoint, so delivery to
many nodes takes about as long as to one. Each node verifies every piece
and every blob, keeps them in its store and unpacks the image into
<data>/rootfs/<image digest>/.

The origin is this machine: it serves the image from its local store on a
data endpoint of its own (at --origin-addr, by default its address on the
connection to the coordinators) until one node holds a full copy, then
leaves the nodes to serve each other; keep this command running until then.
With --seed-node the origin is instead one or more nodes whose store already
holds the image (e.g. after "drove load" there). Piece hashes are computed
here from the local store and recorded with the plan; a seed's blobs must
match them. Progress is shown per node (bytes, rate, connected peers) while
the plan runs.`,
		Example: `  drove distribute my/cluster:v1
  drove distribute my/cluster:v1 --origin-addr 10.0.0.5:7960
  drove distribute my/cluster:v1 --roles node --seed-node m1`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(o.SeedNodes) > 0 && o.Origin.Addr != "" {
				return usageErrorf("--origin-addr is for serving the image from here; with --seed-node the seeds serve it")
			}
			if o.Origin.Addr != "" {
				if _, _, err := parseOriginAddr(o.Origin.Addr); err != nil {
					return usageErrorf("%v", err)
				}
			}
			if o.PieceSize != 0 && (o.PieceSize < protocol.TransferUnit || o.PieceSize%protocol.TransferUnit != 0) {
				return usageErrorf("--piece-size must be a multiple of %d", protocol.TransferUnit)
			}
			return runDistribute(cmd.Context(), g, &cf, o, args[0])
		},
	}
	cf.add(cmd.Flags())
	f := cmd.Flags()
	f.StringSliceVar(&o.Roles, "roles", nil, "deliver to nodes with any of these roles (default: every node)")
	f.StringSliceVar(&o.Nodes, "nodes", nil, "deliver to these nodes (IDs or names)")
	f.StringSliceVar(&o.SeedNodes, "seed-node", nil, "node(s) whose store holds the image and serve it first (default: this machine serves it)")
	o.Origin.addFlags(f)
	f.Int64Var(&o.PieceSize, "piece-size", 0, "bytes per hashed piece, a multiple of 1 MiB (default: 4 MiB, smaller for blobs under 256 MiB so each has 64 pieces)")
	f.DurationVar(&o.Timeout, "step-timeout", time.Hour, "how long a node may take")
	return cmd
}

// distribution reads the image from the local store and describes it: the
// piece hashes of every blob.
func distribution(ctx context.Context, g *Globals, image, id string, pieceSize int64) (*protocol.Distribution, error) {
	s, err := g.Store()
	if err != nil {
		return nil, err
	}
	e, err := s.Resolve(image)
	if err != nil {
		return nil, err
	}
	blobs, err := swarm.ImageBlobs(ctx, s, e.Descriptor.Digest, pieceSize)
	if err != nil {
		return nil, fmt.Errorf("describe %s: %w", image, err)
	}
	return &protocol.Distribution{ID: id, Image: image, ImageDigest: e.Descriptor.Digest.String(), Blobs: blobs}, nil
}

// targets resolves --roles/--nodes against the members now alive, and adds
// the seeds.
func (o *distributeOptions) targets(st *protocol.Status) ([]string, error) {
	var out []string
	for _, m := range st.Members {
		if m.State != "alive" {
			continue
		}
		if len(o.Nodes) > 0 && !slices.Contains(o.Nodes, m.ID) && !slices.Contains(o.Nodes, m.Name) {
			continue
		}
		if len(o.Roles) > 0 && !slices.ContainsFunc(o.Roles, func(r string) bool { return slices.Contains(m.Roles, r) }) {
			continue
		}
		out = append(out, m.ID)
	}
	for _, s := range o.SeedNodes {
		if !slices.ContainsFunc(st.Members, func(m protocol.Member) bool { return m.ID == s && m.State == "alive" }) {
			return nil, fmt.Errorf("seed node %q is not an alive member", s)
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	if len(out) == len(o.SeedNodes) {
		return nil, fmt.Errorf("no alive node matches --roles %v --nodes %v besides the seeds", o.Roles, o.Nodes)
	}
	sort.Strings(out)
	return out, nil
}

func runDistribute(ctx context.Context, g *Globals, cf *clientFlags, o *distributeOptions, image string) error {
	id := protocol.NewPlanID(time.Now())
	dist, err := distribution(ctx, g, image, id, o.PieceSize)
	if err != nil {
		return err
	}
	dist.Seeds = o.SeedNodes
	nc, err := cf.connect(g)
	if err != nil {
		return err
	}
	defer nc.Close()
	var st protocol.Status
	if err := cf.call(ctx, nc, &protocol.StatusRequest{}, &st); err != nil {
		return err
	}
	targets, err := o.targets(&st)
	if err != nil {
		return err
	}
	receivers := len(targets) - len(o.SeedNodes)
	if len(o.SeedNodes) == 0 {
		if o.Origin.Token, err = cf.token(g); err != nil {
			return err
		}
		_, stop, err := startOrigin(ctx, g, nc, dist, o.Origin)
		if err != nil {
			return err
		}
		defer stop()
	}
	spec := DistributePlan(dist, targets, o.Timeout)
	var sub protocol.PlanSubmitted
	if err := cf.call(ctx, nc, &protocol.PlanSubmit{Plan: spec, PlanID: id}, &sub); err != nil {
		return err
	}
	var total int64
	for _, b := range dist.Blobs {
		total += b.Size
	}
	fmt.Fprintf(g.Err, "distributing %s (%s in %d blobs) to %d nodes from %s: plan %s\n",
		image, progress.HumanBytes(total), len(dist.Blobs), receivers, strings.Join(dist.Seeds, ","), id)
	detail, seeds, err := followDistribution(ctx, g, cf, nc, id, dist.Seeds)
	if err != nil {
		return err
	}
	printDistributeResult(g, detail)
	printSeedUploads(g, detail, seeds, total)
	if detail.Summary.State != "succeeded" {
		return &exitError{code: exitFailed, err: fmt.Errorf("distribution %s failed on %d of %d nodes", id, detail.Summary.Failed, detail.Summary.Steps)}
	}
	return nil
}

// DistributePlan is the plan that delivers dist to targets: one step on
// all of them at once (seeds included: they serve).
func DistributePlan(dist *protocol.Distribution, targets []string, timeout time.Duration) protocol.PlanSpec {
	return protocol.PlanSpec{Name: "distribute " + dist.Image, Phases: []protocol.PhaseSpec{{
		Name: "distribute",
		Steps: []protocol.StepSpec{{
			Name: "distribute", Target: protocol.Selector{Nodes: targets}, Idempotent: true,
			// A node that restarts mid-transfer resumes from its verified
			// pieces: trying again is cheap and safe.
			Retry:     protocol.RetryPolicy{Attempts: 3, BackoffMs: 1000},
			Action:    protocol.Action{Kind: protocol.ActionDistribute, Distribution: dist},
			TimeoutMs: timeout.Milliseconds(),
		}},
	}}}
}

// followDistribution shows each receiving node's progress until the plan
// settles, and returns its detail and the last announce of every seed the
// tracker listed (the origin is no plan step: this is what it did).
func followDistribution(ctx context.Context, g *Globals, cf *clientFlags, nc *nats.Conn, id string, seeds []string) (protocol.PlanDetail, map[string]protocol.PeerProgress, error) {
	show := newDistProgress(g.Err, g.Quiet)
	defer show.close()
	seen := map[string]protocol.PeerProgress{}
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		var ds protocol.DistributionStatus
		if err := cf.call(ctx, nc, &protocol.DistributionStatusRequest{Distribution: id}, &ds); err == nil {
			for _, d := range ds.Distributions {
				for _, p := range d.Peers {
					if p.Peer.Seed || slices.Contains(seeds, p.Peer.ID) {
						seen[p.Peer.ID] = p
						continue
					}
					show.update(p)
				}
			}
		}
		var detail protocol.PlanDetail
		if err := cf.call(ctx, nc, &protocol.PlanGetRequest{PlanID: id}, &detail); err != nil {
			return detail, seen, err
		}
		for _, ph := range detail.Phases {
			for _, s := range ph.Steps {
				if !finalState(s.State) {
					continue
				}
				var err error
				if s.State != protocol.StateSucceeded {
					err = fmt.Errorf("%s", s.State)
				}
				show.finish(s.Node, err)
			}
		}
		if detail.Settled() {
			return detail, seen, nil
		}
		select {
		case <-ctx.Done():
			return detail, seen, ctx.Err()
		case <-tick.C:
		}
	}
}

// printSeedUploads tells what each seed that is no plan step (the origin)
// uploaded, against the image size.
func printSeedUploads(g *Globals, d protocol.PlanDetail, seeds map[string]protocol.PeerProgress, size int64) {
	if size <= 0 {
		return
	}
	steps := map[string]bool{}
	for _, ph := range d.Phases {
		for _, s := range ph.Steps {
			steps[s.Node] = true
		}
	}
	ids := make([]string, 0, len(seeds))
	for id := range seeds {
		if !steps[id] {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	for _, id := range ids {
		p := seeds[id]
		how := "served until the end"
		if p.Leaving {
			how = "left once a full copy was out"
		}
		fmt.Fprintf(g.Out, "origin %s uploaded %s (%.2f × the image), %s\n", id, progress.HumanBytes(p.Uploaded), float64(p.Uploaded)/float64(size), how)
	}
}

func printDistributeResult(g *Globals, d protocol.PlanDetail) {
	tw := tabwriter.NewWriter(g.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tSTATE\tTIME\tDOWNLOADED\tUPLOADED\tERROR")
	for _, ph := range d.Phases {
		steps := append([]protocol.NodeStepStatus(nil), ph.Steps...)
		sort.Slice(steps, func(i, j int) bool { return steps[i].Node < steps[j].Node })
		for _, s := range steps {
			took := ""
			if s.FinishedAt > 0 && s.DispatchedAt > 0 {
				took = (time.Duration(s.FinishedAt-s.DispatchedAt) * time.Millisecond).String()
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.Node, s.State, took,
				humanOutput(s.Outputs["downloaded"]), humanOutput(s.Outputs["uploaded"]), s.Error)
		}
	}
	tw.Flush()
}

// humanOutput shows a step output that holds a byte count.
func humanOutput(v string) string {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return v
	}
	return progress.HumanBytes(n)
}

// finalState reports whether a node-step has ended.
func finalState(s string) bool {
	switch s {
	case protocol.StateSucceeded, protocol.StateFailed, protocol.StateInterrupted, protocol.StateSkipped:
		return true
	}
	return false
}
