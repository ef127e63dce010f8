package cli

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/drove-project/drove/coordinator/runtime"
	"github.com/drove-project/drove/layers/clusterfile"
	"github.com/drove-project/drove/protocol"
)

// runOptions are `drove run` and `drove apply`: sealer's flags, plus how
// to reach the coordinators and where the image comes from.
type runOptions struct {
	Image       string // IMAGE argument; with -f it replaces spec.image
	Clusterfile string
	Masters     []string
	Nodes       []string
	SSH         clusterfile.SSH // only the flags given; the rest comes from the Clusterfile
	Env         []string
	Cmds        []string
	Apps        []string
	SetCmds     bool // --cmds was given (even empty)
	SetApps     bool
	DryRun      bool
	Output      string
	SeedNodes   []string // nodes whose store holds the image serve it instead of this machine
	AgentWait   time.Duration
	KnownHosts  string
	Mode        string // --mode: apply or loadImage
	Import      bool   // --import: import cached container images into containerd
	SetImport   bool   // --import was given; else the runtime decides

	client   clientFlags
	registry registryFlags
	origin   originOptions
}

func newRunCmd(g *Globals) *cobra.Command {
	o := &runOptions{}
	cmd := &cobra.Command{
		Use:   "run IMAGE --masters LIST [--nodes LIST] [flags] | run -f Clusterfile",
		Short: "Install a cluster from a cluster image onto machines",
		Long: `run turns machines into the cluster a cluster image describes: it delivers the
image to every host peer-to-peer, renders its files with the env, and runs the
image's runtime steps (kubeadm, k3s, k0s, or plain hooks and commands) as a
plan the coordinators run to the end, even across a leader failover.

Hosts come from --masters and --nodes (addresses, comma lists and ranges such
as 10.0.0.1-10.0.0.9) or from a Clusterfile (-f). Hosts that already run a
drove agent are used as they are; the others get the agent over SSH (-u, -p or
--pk, --port). The first master initialises the cluster.

Running it again is safe: the cluster's applied revision is kept in raft and
an identical run does nothing; new hosts are joined, hosts no longer listed
are cleaned out, and changed env or Configs are rendered again. A different
image is an upgrade (drove upgrade).

Container images the cluster image caches are served on every host by its
agent's node mirror (containerd pulls by their original names go there) and,
with --import (the default for k3s, k0s and kubeadm with containerd), imported into
containerd. --mode loadImage does only that, for another image, on the
running cluster: drove run apps:v2 --mode loadImage.`,
		Example: `  drove run my/etcd:v3.5 --masters 10.0.0.11-10.0.0.13 -p secret
  drove run my/k8s:v1.28 -m 10.0.0.1,10.0.0.2,10.0.0.3 -n 10.0.0.10-10.0.0.19 --pk ~/.ssh/id_ed25519
  drove run my/k8s:v1.28 -m 10.0.0.1 --dry-run -o json
  drove run my/app-images:v2 --mode loadImage`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				o.Image = args[0]
			}
			if err := o.complete(cmd.Flags()); err != nil {
				return err
			}
			if o.Clusterfile == "" && o.Image == "" {
				return usageErrorf("name the image: drove run IMAGE --masters LIST, or give a Clusterfile with -f")
			}
			if o.Clusterfile == "" && len(o.Masters) == 0 && o.Mode != modeLoadImage {
				return usageErrorf("no hosts: give --masters LIST (and --nodes LIST), or a Clusterfile with -f")
			}
			return runRun(cmd.Context(), g, o)
		},
	}
	o.addFlags(cmd.Flags(), true)
	cmd.Flags().StringVar(&o.Mode, "mode", modeApply, "apply: install or change the cluster; loadImage: only deliver IMAGE and make the container images it caches pullable on every host of the running cluster")
	return cmd
}

// addFlags registers the flags run and apply share; withFile adds -f to
// run (apply registers its own, required).
func (o *runOptions) addFlags(f *pflag.FlagSet, withFile bool) {
	if withFile {
		f.StringVarP(&o.Clusterfile, "clusterfile", "f", "", "Clusterfile to install from (flags override its fields)")
	}
	o.addHostFlags(f)
	f.StringArrayVarP(&o.Env, "env", "e", nil, "KEY=VALUE over the image's and the Clusterfile's env (repeatable; ';' makes a list)")
	f.StringArrayVar(&o.Cmds, "cmds", nil, "commands to run on the first master instead of the image's CMDS/LAUNCH (repeatable)")
	f.StringSliceVar(&o.Apps, "apps", nil, "apps of the image to launch instead of its LAUNCH list")
	f.BoolVar(&o.Import, "import", false, "import the image's cached container images into containerd on every host (default: on for k3s, k0s, and kubernetes whose CRI is containerd; pulls are served by each node's mirror either way)")
	o.addPlanFlags(f)
}

// addHostFlags registers the host lists and sealer's SSH flags.
func (o *runOptions) addHostFlags(f *pflag.FlagSet) {
	f.StringSliceVarP(&o.Masters, "masters", "m", nil, "master addresses: IPs, comma lists, ranges (10.0.0.1-10.0.0.3)")
	f.StringSliceVarP(&o.Nodes, "nodes", "n", nil, "worker addresses, as --masters")
	f.StringVarP(&o.SSH.User, "user", "u", "", "SSH user for hosts without an agent (default root; others use sudo)")
	f.StringVarP(&o.SSH.Passwd, "passwd", "p", "", "SSH password")
	f.StringVar(&o.SSH.Pk, "pk", "", "SSH private key file (default ~/.ssh/id_rsa when no password is given)")
	f.StringVar(&o.SSH.PkPasswd, "pk-passwd", "", "passphrase of the --pk key")
	f.IntVar(&o.SSH.Port, "port", 22, "SSH port")
	f.DurationVar(&o.AgentWait, "agent-wait", 2*time.Minute, "how long agents pushed over SSH may take to join")
	f.StringVar(&o.KnownHosts, "known-hosts", "", "SSH known_hosts file (default ~/.ssh/known_hosts; new hosts are trusted on first use)")
}

// addPlanFlags registers what every command that runs a plan shares:
// dry run, where the image comes from, how to reach the coordinators.
func (o *runOptions) addPlanFlags(f *pflag.FlagSet) {
	f.BoolVar(&o.DryRun, "dry-run", false, "print the plan and touch no host")
	f.StringVarP(&o.Output, "output", "o", "table", "--dry-run output: table or json")
	f.StringSliceVar(&o.SeedNodes, "seed-node", nil, "node(s) whose store already holds the image serve it (default: this machine serves it)")
	o.client.add(f)
	o.registry.add(f)
	o.origin.addFlags(f)
}

// complete records which flags were given and checks them together.
func (o *runOptions) complete(f *pflag.FlagSet) error {
	o.SetCmds, o.SetApps, o.SetImport = changed(f, "cmds"), changed(f, "apps"), changed(f, "import")
	if !changed(f, "user") {
		o.SSH.User = ""
	}
	if !changed(f, "port") {
		o.SSH.Port = 0
	}
	switch o.Mode {
	case "", modeApply, modeLoadImage:
	default:
		return usageErrorf("--mode %q: use apply or loadImage", o.Mode)
	}
	switch o.Output {
	case "table", "json":
	default:
		return usageErrorf("unknown output format %q: use table or json", o.Output)
	}
	if f.Changed("output") && !o.DryRun {
		return usageErrorf("-o sets the --dry-run output: add --dry-run")
	}
	if len(o.SeedNodes) > 0 && o.origin.Addr != "" {
		return usageErrorf("--origin-addr is for serving the image from here; with --seed-node the seeds serve it")
	}
	if o.origin.Addr != "" {
		if _, _, err := parseOriginAddr(o.origin.Addr); err != nil {
			return usageErrorf("%v", err)
		}
	}
	return nil
}

// changed reports whether flag was given (false for a flag the command
// does not have).
func changed(f *pflag.FlagSet, flag string) bool {
	fl := f.Lookup(flag)
	return fl != nil && fl.Changed
}

// load builds the Clusterfile this run applies: the file with the flags
// laid over it, or the flags alone.
func (o *runOptions) load(g *Globals) (*clusterfile.File, error) {
	var f *clusterfile.File
	if o.Clusterfile != "" {
		var err error
		if f, err = clusterfile.Load(o.Clusterfile); err != nil {
			return nil, err
		}
		if f.Cluster == nil {
			return nil, fmt.Errorf("%s: %w: add one (kind: Cluster) listing the hosts", o.Clusterfile, errNoCluster)
		}
		ov := clusterfile.Overrides{Image: o.Image, Masters: o.Masters, Nodes: o.Nodes, SSH: o.SSH, Env: o.Env,
			Cmds: o.Cmds, SetCmds: o.SetCmds, Apps: o.Apps, SetApps: o.SetApps}
		if err := f.Cluster.Override(ov); err != nil {
			return nil, err
		}
	} else {
		c, err := clusterfile.FromFlags(o.Image, o.Masters, o.Nodes, o.SSH, o.Env)
		if err != nil {
			return nil, err
		}
		if err := c.Override(clusterfile.Overrides{Cmds: o.Cmds, SetCmds: o.SetCmds, Apps: o.Apps, SetApps: o.SetApps}); err != nil {
			return nil, err
		}
		f = &clusterfile.File{Name: "command line", Cluster: c}
	}
	for _, w := range f.Warnings {
		fmt.Fprintf(g.Err, "warning: %s\n", w)
	}
	if f.Cluster.Image == "" {
		return nil, usageErrorf("%s names no image: set spec.image or give IMAGE", f.Name)
	}
	return f, nil
}

func runRun(ctx context.Context, g *Globals, o *runOptions) error {
	if o.Mode == modeLoadImage {
		if o.Image == "" || len(o.Masters)+len(o.Nodes) > 0 || o.Clusterfile != "" {
			return usageErrorf("--mode loadImage takes IMAGE alone: the hosts are the running cluster's")
		}
		img, err := resolveImage(ctx, g, o.Image, o.registry)
		if err != nil {
			return err
		}
		return loadImages(ctx, g, o, img)
	}
	f, err := o.load(g)
	if err != nil {
		return err
	}
	img, err := resolveImage(ctx, g, f.Cluster.Image, o.registry)
	if err != nil {
		return err
	}
	return applyCluster(ctx, g, o, f, img)
}

// desired is what f and img describe, with this run's --import, and its
// runtime.
func (o *runOptions) desired(ctx context.Context, f *clusterfile.File, img *clusterImage) (runtime.Desired, runtime.Runtime, error) {
	d, err := buildDesired(ctx, f, img)
	if err != nil {
		return runtime.Desired{}, nil, err
	}
	if o.SetImport {
		d.ImportImages = o.Import
	}
	rt, err := runtime.Lookup(d.Runtime)
	if err != nil {
		return runtime.Desired{}, nil, err
	}
	return d, rt, nil
}

// applyCluster brings the cluster to what f and img describe: it plans
// from the difference with the applied revision, makes sure every host
// runs an agent, and runs the plans to the end.
func applyCluster(ctx context.Context, g *Globals, o *runOptions, f *clusterfile.File, img *clusterImage) error {
	next, rt, err := o.desired(ctx, f, img)
	if err != nil {
		return err
	}
	f.Cluster.Runtime = next.Runtime
	text, err := canonical(f)
	if err != nil {
		return err
	}
	if o.DryRun {
		return dryRun(ctx, g, o, img, next, rt, text)
	}
	nc, err := o.client.connect(g)
	if err != nil {
		return err
	}
	defer nc.Close()
	rev, err := getRevision(ctx, g, &o.client, nc)
	if err != nil {
		return err
	}
	ch, err := diffRevision(rev, text, img.Digest)
	if err != nil {
		return err
	}
	if ch.Kind == changeNone {
		fmt.Fprintf(g.Out, "cluster is up to date (revision %d)\n", rev.Serial)
		return nil
	}
	plans, err := planChange(ctx, g, ch, rt, next, img)
	if err != nil {
		return err
	}
	ids, err := ensureAgents(ctx, g, &o.client, nc, f.Cluster, hostOptions{KnownHosts: o.KnownHosts, Wait: o.AgentWait})
	if err != nil {
		return err
	}
	if len(ch.Removed) > 0 {
		if err := addMemberIDs(ctx, &o.client, nc, ids, ch.Removed); err != nil {
			return err
		}
	}
	if err := saveAttempt(g, img, next.Runtime, text); err != nil {
		return err
	}
	seeds := seedsFor(ch, next, ids)
	if len(o.SeedNodes) > 0 {
		if seeds, err = resolveSeeds(ctx, &o.client, nc, o.SeedNodes); err != nil {
			return err
		}
	}
	revision := &protocol.ClusterRevision{Clusterfile: string(text), Image: img.Ref, ImageDigest: img.Digest, Runtime: next.Runtime}
	return runPlans(ctx, g, o, nc, plans, ids, revision, seeds)
}

// resolveSeeds turns --seed-node values (node IDs, names or addresses)
// into the IDs of alive members: a seed knows itself by its ID.
func resolveSeeds(ctx context.Context, cf *clientFlags, nc *nats.Conn, names []string) ([]string, error) {
	var st protocol.Status
	if err := cf.call(ctx, nc, &protocol.StatusRequest{}, &st); err != nil {
		return nil, fmt.Errorf("list the cluster's members: %w", err)
	}
	var out []string
	for _, n := range names {
		i := slices.IndexFunc(st.Members, func(m protocol.Member) bool {
			return m.State == "alive" && (m.ID == n || m.Name == n || m.Address == n)
		})
		if i < 0 {
			return nil, usageErrorf("--seed-node %s is no alive member: see drove status", n)
		}
		out = appendNew(out, st.Members[i].ID)
	}
	return out, nil
}

// planChange builds the plans of ch: the image described for delivery,
// and the applied state when hosts leave it.
func planChange(ctx context.Context, g *Globals, ch change, rt runtime.Runtime, next runtime.Desired, img *clusterImage) ([]runPlan, error) {
	if ch.Kind == changeNone {
		return nil, nil
	}
	dist, err := img.distribution(ctx, g, "pending")
	if err != nil {
		return nil, err
	}
	var applied *runtime.Desired
	if len(ch.Removed) > 0 {
		a, err := buildDesired(ctx, ch.Applied, img)
		if err != nil {
			return nil, fmt.Errorf("the applied revision: %w", err)
		}
		applied = &a
	}
	return plansFor(ch, rt, next, applied, dist)
}

// seedsFor are the nodes that serve the image to a running cluster: one of
// its hosts that stays (they all hold the image). None, for an install:
// this machine serves it.
func seedsFor(ch change, next runtime.Desired, ids map[string]string) []string {
	if ch.Kind != changeUpdate || ch.Applied == nil {
		return nil
	}
	had := ch.Applied.Cluster.AllIPs()
	masters := ch.Applied.Cluster.Masters()
	for _, pick := range [][]string{masters, had} {
		for _, ip := range pick {
			if id, ok := ids[ip]; ok && slices.ContainsFunc(next.Hosts, func(h runtime.Host) bool { return h.IP == ip }) {
				return []string{id}
			}
		}
	}
	return nil
}

// runPlans submits each plan in turn, the revision with the last, and
// follows it to the end.
func runPlans(ctx context.Context, g *Globals, o *runOptions, nc *nats.Conn, plans []runPlan, ids map[string]string, rev *protocol.ClusterRevision, seeds []string) error {
	names := map[string]string{} // node ID -> address, for messages
	var hostIPs []string
	for ip, id := range ids {
		names[id] = ip
		hostIPs = append(hostIPs, ip)
	}
	slices.Sort(hostIPs)
	for i, p := range plans {
		for _, h := range p.Hosts {
			hostIPs = appendNew(hostIPs, h.IP)
		}
		var r *protocol.ClusterRevision
		if i == len(plans)-1 && rev != nil {
			rr := *rev
			rr.PlanID = p.ID
			r = &rr
		}
		if err := runOne(ctx, g, o, nc, p, ids, hostIPs, names, r, seeds); err != nil {
			return err
		}
	}
	if rev != nil {
		reportRevision(ctx, g, &o.client, nc, rev)
	}
	return nil
}

// runOne binds one plan to the nodes, serves or seeds its image, submits
// it (with rev, if set) and follows it to the end.
func runOne(ctx context.Context, g *Globals, o *runOptions, nc *nats.Conn, p runPlan, ids map[string]string, hostIPs []string, names map[string]string, rev *protocol.ClusterRevision, seeds []string) error {
	spec, skipped, err := bindPlan(p.Spec, ids, hostIPs, p.BestEffort)
	if err != nil {
		return fmt.Errorf("plan %q: %w", p.Spec.Name, err)
	}
	if len(skipped) > 0 {
		fmt.Fprintf(g.Err, "warning: no alive agent on %s: left out of %q\n", strings.Join(skipped, ", "), p.Spec.Name)
	}
	if len(spec.Phases) == 0 {
		fmt.Fprintf(g.Err, "nothing to run for %q\n", p.Spec.Name)
		if rev == nil {
			return nil
		}
		// The revision is recorded by a plan that succeeds: one that
		// does nothing.
		if spec, err = recordPlan(ids, hostIPs); err != nil {
			return err
		}
		p.Dist = nil
	}
	p.Spec = spec
	if p.Dist != nil {
		if len(seeds) > 0 {
			seedDistribute(&p, seeds)
		} else {
			stop, err := serveImage(ctx, g, o, nc, p.Dist)
			if err != nil {
				return err
			}
			defer stop()
		}
	}
	detail, err := submitAndFollow(ctx, g, &o.client, nc, p, rev, names)
	if err != nil {
		return err
	}
	printLaunchOutput(g, detail)
	return nil
}

// recordPlan is a plan of one step that does nothing, on the first host
// with an agent: it carries a revision when there is nothing else to run.
func recordPlan(ids map[string]string, hostIPs []string) (protocol.PlanSpec, error) {
	for _, ip := range hostIPs {
		if id, ok := ids[ip]; ok {
			return protocol.PlanSpec{Name: "record revision", Phases: []protocol.PhaseSpec{{
				Name:  "record",
				Steps: []protocol.StepSpec{{Name: "record", Target: protocol.Selector{Nodes: []string{id}}, Action: protocol.Action{Kind: "noop"}, Idempotent: true}},
			}}}, nil
		}
	}
	return protocol.PlanSpec{}, errors.New("no host of the cluster runs an alive drove agent to record the revision on")
}

// serveImage makes this machine the origin of dist.
func serveImage(ctx context.Context, g *Globals, o *runOptions, nc *nats.Conn, dist *protocol.Distribution) (func(), error) {
	token, err := o.client.token(g)
	if err != nil {
		return nil, err
	}
	oo := o.origin
	oo.Token = token
	_, stop, err := startOrigin(ctx, g, nc, dist, oo)
	if err != nil {
		return nil, fmt.Errorf("serve %s to the nodes from this machine (or name a node holding it with --seed-node): %w", dist.Image, err)
	}
	return stop, nil
}

// reportRevision tells which revision the cluster is at now.
func reportRevision(ctx context.Context, g *Globals, cf *clientFlags, nc *nats.Conn, want *protocol.ClusterRevision) {
	var rev protocol.ClusterRevision
	if err := cf.call(ctx, nc, &protocol.ClusterGetRequest{}, &rev); err == nil && rev.Clusterfile == want.Clusterfile && rev.Serial > 0 {
		fmt.Fprintf(g.Out, "cluster applied (revision %d)\n", rev.Serial)
		return
	}
	fmt.Fprintln(g.Out, "cluster applied")
}

// addMemberIDs adds the node IDs of the hosts at ips that run an alive
// agent (hosts being removed: those without one are left out).
func addMemberIDs(ctx context.Context, cf *clientFlags, nc *nats.Conn, ids map[string]string, ips []string) error {
	var st protocol.Status
	if err := cf.call(ctx, nc, &protocol.StatusRequest{}, &st); err != nil {
		return fmt.Errorf("list the cluster's members: %w", err)
	}
	found, _ := nodeIDs(st.Members, ips)
	for ip, id := range found {
		ids[ip] = id
	}
	return nil
}

// dryRun prints the plans this run would submit. It compares with the
// applied revision when a coordinator answers, and says so when none does.
func dryRun(ctx context.Context, g *Globals, o *runOptions, img *clusterImage, next runtime.Desired, rt runtime.Runtime, text []byte) error {
	ch := change{Kind: changeInstall}
	rev, err := revisionIfReachable(ctx, g, &o.client)
	switch {
	case err != nil:
		fmt.Fprintf(g.Err, "no coordinator reachable (%v): showing the plan for a new cluster, not compared with an applied revision\n", err)
	default:
		if ch, err = diffRevision(rev, text, img.Digest); err != nil {
			return err
		}
	}
	if ch.Kind == changeNone {
		fmt.Fprintf(g.Err, "cluster is up to date (revision %d): nothing to run\n", rev.Serial)
	}
	plans, err := planChange(ctx, g, ch, rt, next, img)
	if err != nil {
		return err
	}
	return printDryRun(g, dryRunView(plans), o.Output)
}

// revisionIfReachable asks the coordinators for the applied revision,
// briefly; an error means none could be asked.
func revisionIfReachable(ctx context.Context, g *Globals, cf *clientFlags) (*protocol.ClusterRevision, error) {
	quick := *cf
	quick.Timeout = min(cf.Timeout, 5*time.Second)
	nc, err := quick.connect(g)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	return getRevision(ctx, g, &quick, nc)
}

// getRevision asks for the applied revision; none applied yet gives an
// empty one.
func getRevision(ctx context.Context, g *Globals, cf *clientFlags, nc *nats.Conn) (*protocol.ClusterRevision, error) {
	var rev protocol.ClusterRevision
	err := cf.call(ctx, nc, &protocol.ClusterGetRequest{}, &rev)
	var pe *protocol.Error
	isCode := func(c protocol.ErrorCode) bool { return errors.As(err, &pe) && pe.Code == c }
	switch {
	case err == nil:
		return &rev, nil
	case isCode(protocol.CodeNotFound):
		return &protocol.ClusterRevision{}, nil
	case isCode(protocol.CodeBadRequest):
		fmt.Fprintf(g.Err, "warning: the coordinators keep no cluster revision (%v): planning as for a new cluster; upgrade them so that a second run is a no-op\n", err)
		return &protocol.ClusterRevision{}, nil
	}
	return nil, fmt.Errorf("ask the coordinators for the applied revision: %w", err)
}
