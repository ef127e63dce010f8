package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/drove-project/drove/coordinator/runtime"
	"github.com/drove-project/drove/layers/clusterfile"
	"github.com/drove-project/drove/protocol"
)

// Lifecycle errors, matched with errors.Is.
var (
	// errNothingApplied: join or delete found no cluster to work on.
	errNothingApplied = errors.New("no cluster has been applied")
	// errNotConfirmed: the user did not confirm a delete.
	errNotConfirmed = errors.New("not confirmed")
	// errNotAHost: an address given is not a host of the cluster, or
	// already is one.
	errNotAHost = errors.New("not a host of the cluster")
	errIsAHost  = errors.New("already a host of the cluster")
)

func newJoinCmd(g *Globals) *cobra.Command {
	o := &runOptions{}
	cmd := &cobra.Command{
		Use:   "join --masters LIST | --nodes LIST [flags]",
		Short: "Add hosts to the applied cluster",
		Long: `join adds masters or workers to the cluster drove run or apply installed:
the applied revision plus these hosts. Only the new hosts run anything (the
image is delivered to them, rendered, and they join the runtime); hosts
without a drove agent get one over SSH (-u, -p or --pk, --port).`,
		Example: "  drove join --nodes 10.0.0.20-10.0.0.29 -p secret\n  drove join --masters 10.0.0.4 --dry-run",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(o.Masters) == 0 && len(o.Nodes) == 0 {
				return usageErrorf("name the hosts to add with --masters LIST and/or --nodes LIST")
			}
			if err := o.complete(cmd.Flags()); err != nil {
				return err
			}
			return runJoin(cmd.Context(), g, o)
		},
	}
	o.addHostFlags(cmd.Flags())
	o.addPlanFlags(cmd.Flags())
	return cmd
}

func runJoin(ctx context.Context, g *Globals, o *runOptions) error {
	nc, err := o.client.connect(g)
	if err != nil {
		return err
	}
	rev, err := getRevision(ctx, g, &o.client, nc)
	nc.Close()
	if err != nil {
		return err
	}
	if rev.Clusterfile == "" {
		return fmt.Errorf("%w yet: install one with drove run or drove apply", errNothingApplied)
	}
	f, err := clusterfile.Parse(fmt.Sprintf("applied revision %d", rev.Serial), []byte(rev.Clusterfile))
	if err != nil {
		return fmt.Errorf("read the applied revision: %w", err)
	}
	if f.Cluster == nil {
		return fmt.Errorf("the applied revision %d: %w", rev.Serial, errNoCluster)
	}
	if err := addHosts(f.Cluster, o.Masters, o.Nodes); err != nil {
		return err
	}
	f.Cluster.SSH = o.SSH
	img, err := resolveImageAt(ctx, g, rev.Image, rev.ImageDigest, o.registry)
	if err != nil {
		return err
	}
	return applyCluster(ctx, g, o, f, img)
}

// addHosts appends the hosts of the --masters and --nodes lists to c;
// an address c already has is an error.
func addHosts(c *clusterfile.Cluster, masters, nodes []string) error {
	have := c.AllIPs()
	for _, add := range []struct {
		flag, role string
		lists      []string
	}{{"--masters", clusterfile.RoleMaster, masters}, {"--nodes", clusterfile.RoleNode, nodes}} {
		var ips []string
		for _, l := range add.lists {
			got, err := clusterfile.ParseHostList(l)
			if err != nil {
				return usageErrorf("%s: %v", add.flag, err)
			}
			for _, ip := range got {
				if slices.Contains(have, ip) {
					return fmt.Errorf("%s %s: %w", add.flag, ip, errIsAHost)
				}
				have = append(have, ip)
				ips = append(ips, ip)
			}
		}
		if len(ips) > 0 {
			c.Hosts = append(c.Hosts, clusterfile.Host{IPs: ips, Roles: []string{add.role}})
		}
	}
	return nil
}

// resolveImageAt finds the image the cluster runs: digest in the local
// store, else ref (pulled if needed), which must be that digest.
func resolveImageAt(ctx context.Context, g *Globals, ref, digest string, rf registryFlags) (*clusterImage, error) {
	if digest != "" {
		if s, err := g.Store(); err == nil {
			if e, err := s.Resolve(digest); err == nil {
				img, err := readClusterImage(ctx, s, e)
				if err != nil {
					return nil, fmt.Errorf("read image %s: %w", digest, err)
				}
				img.Ref = ref
				return img, nil
			}
		}
	}
	img, err := resolveImage(ctx, g, ref, rf)
	if err != nil {
		return nil, err
	}
	if digest != "" && img.Digest != digest {
		return nil, fmt.Errorf("the cluster runs %s@%s, but %s is now %s here: load or pull the image the cluster runs (drove upgrade changes it)",
			ref, digest, ref, img.Digest)
	}
	return img, nil
}

// deleteOptions are `drove delete`'s flags.
type deleteOptions struct {
	Masters     []string
	Nodes       []string
	All         bool
	Force       bool
	Prune       bool
	Clusterfile string
	DryRun      bool
	Output      string
	client      clientFlags
	registry    registryFlags
}

func newDeleteCmd(g *Globals) *cobra.Command {
	o := &deleteOptions{}
	cmd := &cobra.Command{
		Use:   "delete --masters LIST | --nodes LIST | --all [--force] [--prune]",
		Short: "Remove hosts from the cluster, or take the whole cluster down",
		Long: `delete cleans hosts out of the applied cluster (--masters, --nodes: the
runtime's scale-down) or resets every host (--all). Each host is reset on a
best-effort basis, so delete also works on a broken or half-installed cluster;
hosts whose agent is gone are left out with a warning. --prune also removes
the unpacked image from those hosts.

The hosts come from the applied revision; after an install that failed
before one was recorded, from the last run on this machine, or from -f.
delete asks on the terminal first; --force does not (and is needed where
there is no terminal).`,
		Example: "  drove delete --nodes 10.0.0.12\n  drove delete --all --force",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.validate(cmd.Flags()); err != nil {
				return err
			}
			return runDelete(cmd.Context(), g, o)
		},
	}
	f := cmd.Flags()
	f.StringSliceVarP(&o.Masters, "masters", "m", nil, "masters to remove")
	f.StringSliceVarP(&o.Nodes, "nodes", "n", nil, "workers to remove")
	f.BoolVarP(&o.All, "all", "a", false, "take the whole cluster down")
	f.BoolVar(&o.Force, "force", false, "do not ask for confirmation")
	f.BoolVarP(&o.Prune, "prune", "p", false, "also remove the unpacked image from the hosts")
	f.StringVarP(&o.Clusterfile, "clusterfile", "f", "", "the cluster's Clusterfile (default: the applied revision)")
	f.BoolVar(&o.DryRun, "dry-run", false, "print the plan and touch no host")
	f.StringVarP(&o.Output, "output", "o", "table", "--dry-run output: table or json")
	o.client.add(f)
	o.registry.add(f)
	return cmd
}

func (o *deleteOptions) validate(f *pflag.FlagSet) error {
	hosts := len(o.Masters) > 0 || len(o.Nodes) > 0
	switch {
	case o.All && hosts:
		return usageErrorf("--all takes every host: leave out --masters and --nodes")
	case !o.All && !hosts:
		return usageErrorf("name the hosts to remove with --masters/--nodes, or take the cluster down with --all")
	case o.Output != "table" && o.Output != "json":
		return usageErrorf("unknown output format %q: use table or json", o.Output)
	case f.Changed("output") && !o.DryRun:
		return usageErrorf("-o sets the --dry-run output: add --dry-run")
	}
	return nil
}

// clusterState is what delete works from: the cluster's Clusterfile and
// the image it runs.
type clusterState struct {
	File        *clusterfile.File
	Image       string
	ImageDigest string
}

// deleteSource finds the cluster to delete from: -f, else the applied
// revision, else the last run from this machine (an install that failed
// before it recorded a revision).
func (o *deleteOptions) deleteSource(ctx context.Context, g *Globals) (clusterState, error) {
	if o.Clusterfile != "" {
		f, err := clusterfile.Load(o.Clusterfile)
		if err != nil {
			return clusterState{}, err
		}
		if f.Cluster == nil {
			return clusterState{}, fmt.Errorf("%s: %w", o.Clusterfile, errNoCluster)
		}
		return clusterState{File: f, Image: f.Cluster.Image}, nil
	}
	rev, err := revisionIfReachable(ctx, g, &o.client)
	if err != nil && !o.DryRun {
		return clusterState{}, err
	}
	from := ""
	if rev != nil && rev.Clusterfile != "" {
		from = fmt.Sprintf("applied revision %d", rev.Serial)
	} else if a, aerr := loadAttempt(g); aerr == nil && a.Clusterfile != "" {
		rev, from = a, "last run from this machine ("+attemptPath(g)+")"
		fmt.Fprintf(g.Err, "no applied revision: deleting what the %s installed\n", from)
	}
	if from == "" {
		return clusterState{}, fmt.Errorf("%w (and no earlier run from this machine): give the cluster's Clusterfile with -f", errNothingApplied)
	}
	f, err := clusterfile.Parse(from, []byte(rev.Clusterfile))
	if err != nil {
		return clusterState{}, fmt.Errorf("read the %s: %w", from, err)
	}
	if f.Cluster == nil {
		return clusterState{}, fmt.Errorf("the %s: %w", from, errNoCluster)
	}
	return clusterState{File: f, Image: rev.Image, ImageDigest: rev.ImageDigest}, nil
}

func runDelete(ctx context.Context, g *Globals, o *deleteOptions) error {
	cs, err := o.deleteSource(ctx, g)
	if err != nil {
		return err
	}
	img, err := resolveImageAt(ctx, g, cs.Image, cs.ImageDigest, o.registry)
	if err != nil {
		if cs.ImageDigest == "" {
			return err
		}
		// Delete must work without the image here: only its own plugins
		// are missed.
		fmt.Fprintf(g.Err, "warning: %v: deleting without the image's plugins\n", err)
		img = &clusterImage{Ref: cs.Image, Digest: cs.ImageDigest, Labels: map[string]string{}}
	}
	d, err := buildDesired(ctx, cs.File, img)
	if err != nil {
		return err
	}
	rt, err := runtime.Lookup(d.Runtime)
	if err != nil {
		return err
	}
	spec, rev, gone, err := o.deletePlan(rt, d, cs.File, img)
	if err != nil {
		return err
	}
	p := runPlan{ID: planIDs(), Spec: spec, Hosts: d.Hosts, BestEffort: true}
	if o.DryRun {
		return printDryRun(g, dryRunView([]runPlan{p}), o.Output)
	}
	if !o.Force {
		what := "take down the whole cluster (" + fmt.Sprint(len(d.Hosts)) + " hosts)"
		if !o.All {
			what = "remove " + strings.Join(gone, ", ") + " from the cluster"
		}
		if !interactive(g) {
			return fmt.Errorf("%w: delete asks before it %s, and there is no terminal to ask on: pass --force", errNotConfirmed, what)
		}
		if !confirm(g, "This will "+what+". Continue?") {
			return fmt.Errorf("%w: nothing was deleted (answer y, or pass --force)", errNotConfirmed)
		}
	}
	nc, err := o.client.connect(g)
	if err != nil {
		return err
	}
	defer nc.Close()
	var st protocol.Status
	if err := o.client.call(ctx, nc, &protocol.StatusRequest{}, &st); err != nil {
		return fmt.Errorf("list the cluster's members: %w", err)
	}
	var all []string
	for _, h := range d.Hosts {
		all = append(all, h.IP)
	}
	ids, _ := nodeIDs(st.Members, all)
	names := map[string]string{}
	for ip, id := range ids {
		names[id] = ip
	}
	bound, skipped, err := bindPlan(p.Spec, ids, all, true)
	if err != nil {
		return err
	}
	if len(skipped) > 0 {
		fmt.Fprintf(g.Err, "warning: no alive agent on %s: not cleaned\n", strings.Join(skipped, ", "))
	}
	if len(bound.Phases) == 0 {
		return fmt.Errorf("none of %s runs an alive drove agent: nothing can be cleaned (start their agents, or clean them by hand)", strings.Join(gone, ", "))
	}
	p.Spec = bound
	rev.PlanID = p.ID
	if _, err := submitAndFollow(ctx, g, &o.client, nc, p, rev, names); err != nil {
		return err
	}
	if o.All {
		removeAttempt(g)
		fmt.Fprintln(g.Out, "cluster deleted")
	} else {
		fmt.Fprintf(g.Out, "removed %s\n", strings.Join(gone, ", "))
	}
	return nil
}

// deletePlan is the plan that deletes (all, or the hosts named), the
// revision to record when it succeeds, and the addresses it cleans.
func (o *deleteOptions) deletePlan(rt runtime.Runtime, d runtime.Desired, f *clusterfile.File, img *clusterImage) (protocol.PlanSpec, *protocol.ClusterRevision, []string, error) {
	if o.All {
		var gone []string
		for _, h := range d.Hosts {
			gone = append(gone, h.IP)
		}
		spec, err := rt.Delete(d)
		if err != nil {
			return protocol.PlanSpec{}, nil, nil, fmt.Errorf("plan the delete: %w", err)
		}
		if o.Prune {
			spec.Phases = append(spec.Phases, pruneStep(gone, img.Digest))
		}
		// An empty Clusterfile: nothing is applied any more.
		return spec, &protocol.ClusterRevision{Image: img.Ref, ImageDigest: img.Digest, Runtime: d.Runtime}, gone, nil
	}
	gone, err := o.removedHosts(f.Cluster)
	if err != nil {
		return protocol.PlanSpec{}, nil, nil, err
	}
	spec, err := rt.ScaleDown(d, gone)
	if err != nil {
		return protocol.PlanSpec{}, nil, nil, fmt.Errorf("plan the removal of %s: %w", strings.Join(gone, ", "), err)
	}
	if o.Prune {
		spec.Phases = append(spec.Phases, pruneStep(gone, img.Digest))
	}
	rest := *f
	cl := *f.Cluster
	cl.Hosts = withoutIPs(cl.Hosts, gone)
	cl.Runtime = d.Runtime
	rest.Cluster = &cl
	text, err := canonical(&rest)
	if err != nil {
		return protocol.PlanSpec{}, nil, nil, err
	}
	return spec, &protocol.ClusterRevision{Clusterfile: string(text), Image: img.Ref, ImageDigest: img.Digest, Runtime: d.Runtime}, gone, nil
}

// removedHosts are the addresses --masters and --nodes name, each a host
// of c with that role.
func (o *deleteOptions) removedHosts(c *clusterfile.Cluster) ([]string, error) {
	var out []string
	for _, rm := range []struct {
		flag, role string
		lists      []string
	}{{"--masters", clusterfile.RoleMaster, o.Masters}, {"--nodes", clusterfile.RoleNode, o.Nodes}} {
		have := c.IPsByRole(rm.role)
		for _, l := range rm.lists {
			ips, err := clusterfile.ParseHostList(l)
			if err != nil {
				return nil, usageErrorf("%s: %v", rm.flag, err)
			}
			for _, ip := range ips {
				if !slices.Contains(have, ip) {
					return nil, fmt.Errorf("%s %s: %w with role %s (it has %s)", rm.flag, ip, errNotAHost, rm.role, strings.Join(c.AllIPs(), ", "))
				}
				out = appendNew(out, ip)
			}
		}
	}
	if len(out) == len(c.AllIPs()) {
		return nil, usageErrorf("that is every host: take the cluster down with --all")
	}
	return out, nil
}

// withoutIPs drops the addresses gone from hosts, and entries left empty.
func withoutIPs(hosts []clusterfile.Host, gone []string) []clusterfile.Host {
	var out []clusterfile.Host
	for _, h := range hosts {
		h.IPs = slices.DeleteFunc(slices.Clone(h.IPs), func(ip string) bool { return slices.Contains(gone, ip) })
		if len(h.IPs) > 0 {
			out = append(out, h)
		}
	}
	return out
}

// pruneStep removes the unpacked image from hosts.
func pruneStep(hosts []string, digest string) protocol.PhaseSpec {
	return protocol.PhaseSpec{Name: "prune", Steps: []protocol.StepSpec{{
		Name: "prune-rootfs", Target: protocol.Selector{Nodes: hosts}, Idempotent: true,
		Action: protocol.Action{Kind: "shell", Rootfs: digest, Command: `cd / && rm -rf -- "$ROOTFS"`},
	}}}
}

// interactive reports whether stdin is a terminal a question can be asked
// on; tests replace it.
var interactive = func(g *Globals) bool {
	f, ok := g.In.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// confirm asks question on stderr and reads the answer from stdin: only
// y or yes goes on.
func confirm(g *Globals, question string) bool {
	fmt.Fprintf(g.Err, "%s [y/N] ", question)
	if g.In == nil {
		fmt.Fprintln(g.Err)
		return false
	}
	line, _ := bufio.NewReader(g.In).ReadString('\n')
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true
	}
	return false
}
