package cli

import (
	"context"
	"fmt"

	"github.com/drove-project/drove/layers/clusterfile"
)

// Run modes: sealer's run --mode.
const (
	modeApply     = "apply"
	modeLoadImage = "loadImage"
)

// loadImages is run --mode loadImage: the running cluster (as its applied
// revision describes it) gets img delivered and the container images img
// caches made pullable on every host — imported too, as for an install —
// and nothing else changes: no host joins or leaves, no revision is
// recorded.
func loadImages(ctx context.Context, g *Globals, o *runOptions, img *clusterImage) error {
	nc, err := o.client.connect(g)
	if err != nil {
		return err
	}
	defer nc.Close()
	rev, err := getRevision(ctx, g, &o.client, nc)
	if err != nil {
		return err
	}
	if rev.Clusterfile == "" {
		return usageErrorf("--mode loadImage refreshes the images of a running cluster, and the coordinators know of none: install it first with drove run or drove apply")
	}
	f, err := clusterfile.Parse(fmt.Sprintf("applied revision %d", rev.Serial), []byte(rev.Clusterfile))
	if err != nil {
		return err
	}
	d, rt, err := o.desired(ctx, f, img)
	if err != nil {
		return err
	}
	id := planIDs()
	dist, err := img.distribution(ctx, g, id)
	if err != nil {
		return err
	}
	d = withDist(d, dist, id)
	spec, err := rt.LoadImages(d)
	if err != nil {
		return err
	}
	p := runPlan{ID: id, Spec: spec, Dist: d.Distribution, Hosts: d.Hosts}
	if o.DryRun {
		return printDryRun(g, dryRunView([]runPlan{p}), o.Output)
	}
	ids := map[string]string{}
	var ips []string
	for _, h := range d.Hosts {
		ips = append(ips, h.IP)
	}
	if err := addMemberIDs(ctx, &o.client, nc, ids, ips); err != nil {
		return err
	}
	return runPlans(ctx, g, o, nc, []runPlan{p}, ids, nil, nil)
}
