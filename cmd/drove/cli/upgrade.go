package cli

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/drove-project/drove/coordinator/runtime"
	"github.com/drove-project/drove/layers/clusterfile"
	"github.com/drove-project/drove/protocol"
)

// Errors of upgrade, rollback and cert, matched with errors.Is.
var (
	// errSameImage: the upgrade names the image the cluster runs.
	errSameImage = errors.New("the cluster runs that image already")
	// errOtherRuntime: the image is for another runtime than the cluster's.
	errOtherRuntime = errors.New("the image is for another runtime")
	// errNoRollback: the applied revision was not made by an upgrade.
	errNoRollback = errors.New("no upgrade to roll back")
	// errNoAgent: a host of the cluster runs no alive agent.
	errNoAgent = errors.New("no alive drove agent")
)

// upgradeOptions are `drove upgrade`, `drove rollback` and `drove cert`:
// the plan flags drove run has (--dry-run, -o, --seed-node, the
// coordinators, the registry, the origin), and their own.
type upgradeOptions struct {
	runOptions
	Batch    int      // upgrade: workers upgraded at a time
	AltNames []string // cert: names to add
}

func newUpgradeCmd(g *Globals) *cobra.Command {
	o := &upgradeOptions{}
	cmd := &cobra.Command{
		Use:   "upgrade IMAGE [--batch N] [flags]",
		Short: "Move the applied cluster to another cluster image",
		Long: `upgrade moves the cluster drove run or apply installed to another image of
the same runtime: the applied revision with its image replaced. The image is
delivered to every host first (this machine serves it, or --seed-node), its
files rendered, and then the runtime upgrades one group at a time: each
master alone (the first runs kubeadm upgrade apply, the others kubeadm
upgrade node), then the workers --batch at a time. Each group is drained
first, and uncordoned once its nodes are Ready again: the next group waits
for that. The upgrade and upgrade-host hooks run last.

A failed upgrade leaves the revision as it was: fix the cause and run the
same command again. drove rollback goes back to the image the cluster ran
before.`,
		Example: "  drove upgrade my/k8s:v1.29.2\n  drove upgrade my/k8s:v1.29.2 --batch 5 --dry-run",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageErrorf("name the image to upgrade to: drove upgrade IMAGE")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Image = args[0]
			if o.Batch < 0 {
				return usageErrorf("--batch %d: give how many workers to upgrade at a time (0: a tenth of them)", o.Batch)
			}
			if err := o.complete(cmd.Flags()); err != nil {
				return err
			}
			return runUpgrade(cmd.Context(), g, o)
		},
	}
	cmd.Flags().IntVar(&o.Batch, "batch", 0, "workers upgraded at a time (default a tenth of them, at least one)")
	o.addPlanFlags(cmd.Flags())
	return cmd
}

func newRollbackCmd(g *Globals) *cobra.Command {
	o := &upgradeOptions{}
	cmd := &cobra.Command{
		Use:   "rollback [flags]",
		Short: "Go back to the image the cluster ran before its last upgrade",
		Long: `rollback undoes the last drove upgrade: the cluster goes back to the image it
ran before, the way it came (delivered, rendered, then one master at a time
and the workers in batches, drained and uncordoned). For kubeadm the first
master runs kubeadm upgrade apply --force to the earlier version (at most
one minor release back; kubeadm keeps the newer etcd). The rollback hooks
run instead of the upgrade hooks.

Only an upgrade can be rolled back, once: after a rollback, drove upgrade
goes forward again.`,
		Example: "  drove rollback\n  drove rollback --dry-run -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.complete(cmd.Flags()); err != nil {
				return err
			}
			return runRollback(cmd.Context(), g, o)
		},
	}
	cmd.Flags().IntVar(&o.Batch, "batch", 0, "workers rolled back at a time (default a tenth of them, at least one)")
	o.addPlanFlags(cmd.Flags())
	return cmd
}

// appliedCluster is the cluster as its applied revision describes it.
type appliedCluster struct {
	Rev  *protocol.ClusterRevision
	File *clusterfile.File
	// Img is the image it runs; without it here (neither in the store
	// nor pullable) a stand-in that knows only the reference and digest.
	Img     *clusterImage
	Runtime string
	nc      *nats.Conn // nil for a dry run
}

// close ends the connection to the coordinators.
func (a *appliedCluster) close() {
	if a.nc != nil {
		a.nc.Close()
	}
}

// applied reads the applied revision: from the coordinators (kept
// connected to submit to), or for a dry run with a short timeout.
// needImage: the running image must be at hand (not a stand-in).
func (o *upgradeOptions) applied(ctx context.Context, g *Globals, needImage bool) (*appliedCluster, error) {
	a := &appliedCluster{}
	var err error
	if o.DryRun {
		a.Rev, err = revisionIfReachable(ctx, g, &o.client)
		if err != nil {
			return nil, fmt.Errorf("ask the coordinators for the applied revision (a dry run plans from it too): %w", err)
		}
	} else {
		if a.nc, err = o.client.connect(g); err != nil {
			return nil, err
		}
		if a.Rev, err = getRevision(ctx, g, &o.client, a.nc); err != nil {
			a.close()
			return nil, err
		}
	}
	if err := a.read(ctx, g, o, needImage); err != nil {
		a.close()
		return nil, err
	}
	return a, nil
}

// read parses the revision's Clusterfile and finds its image.
func (a *appliedCluster) read(ctx context.Context, g *Globals, o *upgradeOptions, needImage bool) error {
	rev := a.Rev
	if rev.Clusterfile == "" {
		return fmt.Errorf("%w yet: install one with drove run or drove apply", errNothingApplied)
	}
	name := fmt.Sprintf("applied revision %d", rev.Serial)
	f, err := clusterfile.Parse(name, []byte(rev.Clusterfile))
	if err != nil {
		return fmt.Errorf("read the %s: %w", name, err)
	}
	if f.Cluster == nil {
		return fmt.Errorf("the %s: %w", name, errNoCluster)
	}
	a.File = f
	img, err := resolveImageAt(ctx, g, rev.Image, rev.ImageDigest, o.registry)
	switch {
	case err != nil && needImage:
		return fmt.Errorf("the image the cluster runs: %w", err)
	case err != nil:
		// Its version and hooks are unknown: kubeadm still refuses a
		// version it cannot go to.
		fmt.Fprintf(g.Err, "warning: %v: planning without the running image (its Kubernetes version is not checked)\n", err)
		img = &clusterImage{Ref: rev.Image, Digest: rev.ImageDigest, Labels: map[string]string{}}
	}
	a.Img = img
	a.Runtime = rev.Runtime
	if a.Runtime == "" {
		if a.Runtime, err = pickRuntime(f.Cluster, img); err != nil {
			return fmt.Errorf("the %s: %w", name, err)
		}
	}
	return nil
}

func runUpgrade(ctx context.Context, g *Globals, o *upgradeOptions) error {
	a, err := o.applied(ctx, g, false)
	if err != nil {
		return err
	}
	defer a.close()
	next, err := resolveImage(ctx, g, o.Image, o.registry)
	if err != nil {
		return err
	}
	switch next.Digest {
	case a.Rev.ImageDigest:
		return fmt.Errorf("%w: %s is %s, as applied in revision %d: nothing to upgrade", errSameImage, o.Image, next.Digest, a.Rev.Serial)
	case a.Rev.PreviousImageDigest:
		return fmt.Errorf("%w: %s is the image the cluster ran before its last upgrade: go back to it with drove rollback", errSameImage, o.Image)
	}
	if err := sameRuntime(a.Runtime, next); err != nil {
		return err
	}
	if err := o.changeImage(ctx, g, a, next, false); err != nil {
		return err
	}
	if !o.DryRun {
		fmt.Fprintf(g.Out, "upgraded to %s (drove rollback goes back to %s)\n", next.Ref, a.Rev.Image)
	}
	return nil
}

func runRollback(ctx context.Context, g *Globals, o *upgradeOptions) error {
	a, err := o.applied(ctx, g, false)
	if err != nil {
		return err
	}
	defer a.close()
	if a.Rev.PreviousImageDigest == "" {
		return fmt.Errorf("%w: revision %d (%s) was not made by drove upgrade: name the image to go to with drove upgrade IMAGE",
			errNoRollback, a.Rev.Serial, a.Rev.Image)
	}
	prev, err := resolveImageAt(ctx, g, a.Rev.PreviousImage, a.Rev.PreviousImageDigest, o.registry)
	if err != nil {
		return fmt.Errorf("the image to roll back to: %w", err)
	}
	if err := o.changeImage(ctx, g, a, prev, true); err != nil {
		return err
	}
	if !o.DryRun {
		fmt.Fprintf(g.Out, "rolled back to %s\n", prev.Ref)
	}
	return nil
}

// sameRuntime refuses an image whose own runtime (label, metadata, or
// bin/kubeadm) is not the cluster's.
func sameRuntime(running string, img *clusterImage) error {
	rt, err := pickRuntime(&clusterfile.Cluster{}, img)
	if err != nil {
		return fmt.Errorf("image %s: %w", img.Ref, err)
	}
	if rt != running {
		return fmt.Errorf("%w: %s installs with the %s runtime, the cluster runs %s: an upgrade keeps the runtime (use an image of the %s runtime, or take the cluster down with drove delete --all and run the new image)",
			errOtherRuntime, img.Ref, rt, running, running)
	}
	return nil
}

// changeImage plans the move of the applied cluster a to image to (an
// upgrade, or a rollback), and runs it or, for a dry run, prints it. The
// revision it records after an upgrade remembers the image before; after
// a rollback there is nothing to roll back to.
func (o *upgradeOptions) changeImage(ctx context.Context, g *Globals, a *appliedCluster, to *clusterImage, rollback bool) error {
	old, err := buildDesired(ctx, a.File, a.Img)
	if err != nil {
		return fmt.Errorf("the applied revision: %w", err)
	}
	f := withImage(a.File, to.Ref)
	next, err := buildDesired(ctx, f, to)
	if err != nil {
		return err
	}
	next.UpgradeBatch, next.Rollback = o.Batch, rollback
	rt, err := runtime.Lookup(a.Runtime)
	if err != nil {
		return err
	}
	id := planIDs()
	dist, err := to.distribution(ctx, g, id)
	if err != nil {
		return err
	}
	next = withDist(next, dist, id)
	spec, err := rt.Upgrade(old, next)
	if err != nil {
		what := "upgrade"
		if rollback {
			what = "rollback"
		}
		return fmt.Errorf("plan the %s from %s to %s: %w", what, a.Rev.Image, to.Ref, err)
	}
	p := runPlan{ID: id, Spec: spec, Dist: next.Distribution, Hosts: next.Hosts}
	if o.DryRun {
		return printDryRun(g, dryRunView([]runPlan{p}), o.Output)
	}
	text, err := canonical(f)
	if err != nil {
		return err
	}
	rev := &protocol.ClusterRevision{Clusterfile: string(text), Image: to.Ref, ImageDigest: to.Digest, Runtime: a.Runtime}
	if !rollback {
		rev.PreviousImage, rev.PreviousImageDigest = a.Rev.Image, a.Rev.ImageDigest
	}
	return o.submit(ctx, g, a, p, rev, a.File.Cluster.AllIPs())
}

// submit runs p on the cluster's hosts at ips, every one of which needs an
// alive agent, and records rev when it succeeds.
func (o *upgradeOptions) submit(ctx context.Context, g *Globals, a *appliedCluster, p runPlan, rev *protocol.ClusterRevision, ips []string) error {
	var st protocol.Status
	if err := o.client.call(ctx, a.nc, &protocol.StatusRequest{}, &st); err != nil {
		return fmt.Errorf("list the cluster's members: %w", err)
	}
	ids, missing := nodeIDs(st.Members, ips)
	if len(missing) > 0 {
		return fmt.Errorf("%w on %s: each takes part (start their agents, or take the hosts out with drove delete first); nothing was submitted",
			errNoAgent, strings.Join(missing, ", "))
	}
	var seeds []string
	if len(o.SeedNodes) > 0 {
		var err error
		if seeds, err = resolveSeeds(ctx, &o.client, a.nc, o.SeedNodes); err != nil {
			return err
		}
	}
	return runPlans(ctx, g, &o.runOptions, a.nc, []runPlan{p}, ids, rev, seeds)
}

// withImage is f with spec.image set to ref (f itself is left as it is).
func withImage(f *clusterfile.File, ref string) *clusterfile.File {
	out := *f
	c := *f.Cluster
	c.Image = ref
	c.Hosts = slices.Clone(c.Hosts)
	out.Cluster = &c
	return &out
}
