package runtime

import (
	"fmt"
	"slices"
	"strings"

	"github.com/drove-project/drove/protocol"
)

// Runtime builds the plans of one cluster runtime.
type Runtime interface {
	// Name is the runtime's name, as Lookup takes it.
	Name() string
	// Install creates the cluster d describes.
	Install(d Desired) (protocol.PlanSpec, error)
	// ScaleUp adds newHosts to the running cluster d. d.Hosts may list
	// them already or not; a host in both is taken from newHosts.
	ScaleUp(d Desired, newHosts []Host) (protocol.PlanSpec, error)
	// ScaleDown removes the hosts with the addresses removed from the
	// running cluster d (whose Hosts still list them).
	ScaleDown(d Desired, removed []string) (protocol.PlanSpec, error)
	// Delete takes the whole cluster down, best effort: every host is
	// reset whether or not the install got far.
	Delete(d Desired) (protocol.PlanSpec, error)
	// Upgrade moves the cluster from old to new (same hosts, a new image);
	// with new.Rollback, back to the image it ran before.
	Upgrade(old, new Desired) (protocol.PlanSpec, error)
	// LoadImages delivers d's image to every host of the running cluster
	// d and makes the container images it caches pullable there (imported
	// with d.ImportImages), changing nothing else: sealer's run --mode
	// loadImage.
	LoadImages(d Desired) (protocol.PlanSpec, error)
}

// flavor is what differs between runtimes; lifecycle holds the order
// they share.
type flavor interface {
	name() string
	needsMaster() bool
	defaultCRI() string
	api() *kubeAPI // nil: no Kubernetes API
	// containerd is the runtime's containerd socket ("": the agent's
	// default) and whether it exists only once the cluster is created
	// (k3s and k0s bring their own), which places the images phase.
	containerd() (address string, afterCreate bool)
	// isNode: h is a Kubernetes node (gets labels, is drained).
	isNode(c *cluster, h Host) bool
	// prepare: host steps after the container runtime (binaries,
	// init-kube.sh), in the init-hosts phase.
	prepare(c *cluster, hosts []Host) []protocol.StepSpec
	// create brings the cluster up on every host of c.
	create(b *builder, c *cluster) error
	// join adds masters and workers to the running cluster c (which
	// lists them).
	join(b *builder, c *cluster, masters, workers []Host) error
	// leave takes removed out of the running cluster: drain, reset, delete
	// the nodes; rest is the cluster that remains.
	leave(b *builder, c *cluster, removed []Host, rest *cluster) error
	// reset wipes the runtime off hosts, needing nothing from the cluster.
	reset(c *cluster, hosts []Host) []protocol.StepSpec
	// upgrade moves the runtime from old to new.
	upgrade(b *builder, old, new *cluster) error
}

var runtimes = map[string]flavor{
	"kubernetes": kubeadm{},
	"k3s":        k3s{},
	"k0s":        k0s{},
	"plain":      plain{},
}

// Names lists the runtimes, sorted.
func Names() []string {
	var out []string
	for n := range runtimes {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// Lookup finds a runtime by name.
func Lookup(name string) (Runtime, error) {
	f, ok := runtimes[name]
	if !ok {
		return nil, fmt.Errorf("%w %q: known runtimes are %s", ErrUnknownRuntime, name, strings.Join(Names(), ", "))
	}
	return lifecycle{f}, nil
}

// lifecycle is a Runtime built from a flavor.
type lifecycle struct{ f flavor }

func (l lifecycle) Name() string { return l.f.name() }

// setup validates d for this runtime and resolves its hooks.
func (l lifecycle) setup(d *Desired) (*cluster, hookSet, error) {
	c, err := newCluster(d, l.f.needsMaster())
	if err != nil {
		return nil, nil, err
	}
	hooks, err := c.resolveHooks(l.f.api() != nil)
	if err != nil {
		return nil, nil, err
	}
	return c, hooks, nil
}

// Install: sealer's Gen-2 order, with the Gen-1 points in place.
func (l lifecycle) Install(d Desired) (protocol.PlanSpec, error) {
	c, hooks, err := l.setup(&d)
	if err != nil {
		return protocol.PlanSpec{}, err
	}
	api, all := l.f.api(), c.all
	b := newBuilder("install " + d.Image)
	b.phase("originally", 1, c.hookSteps(b, hooks, ptOriginally, all, api)...)
	b.phase("host-aliases", 0, c.aliasStep(all))
	b.phase("distribute", 0, c.distributeStep(all))
	b.phase("render", 0, c.renderStep(all))
	b.phase("pre-install", 1, c.hookSteps(b, hooks, ptPreInstall, all, api)...)
	b.phase("pre-init-host", 1, c.hookSteps(b, hooks, ptPreInitHost, all, api)...)
	b.phase("init-hosts", 0, append([]protocol.StepSpec{c.initScriptStep(all), c.criStep(all, c.cri(l.f.defaultCRI()))},
		l.f.prepare(c, all)...)...)
	c.imagesPhase(b, l.f, all, false)
	if err := l.f.create(b, c); err != nil {
		return protocol.PlanSpec{}, err
	}
	c.imagesPhase(b, l.f, all, true)
	b.phase("post-init-host", 1, c.hookSteps(b, hooks, ptPostInitHost, all, api)...)
	b.phase("post-install", 1, c.hookSteps(b, hooks, ptPostInstall, all, api)...)
	b.phase("labels-taints", 0, c.labelStep(nodesOf(l.f, c, all), api))
	b.phase("pre-guest", 1, c.hookSteps(b, hooks, ptPreGuest, all, api)...)
	b.phase("launch", 1, c.cmdSteps(api)...)
	return b.done()
}

// nodesOf are the hosts of hs that are Kubernetes nodes.
func nodesOf(f flavor, c *cluster, hs []Host) []Host {
	var out []Host
	for _, h := range hs {
		if f.isNode(c, h) {
			out = append(out, h)
		}
	}
	return out
}

// ScaleUp: the install order for the new hosts, with the scale-up hooks.
func (l lifecycle) ScaleUp(d Desired, newHosts []Host) (protocol.PlanSpec, error) {
	if len(newHosts) == 0 {
		return protocol.PlanSpec{}, fmt.Errorf("%w: scale-up: no new hosts", ErrInvalid)
	}
	hosts := slices.Clone(newHosts)
	for _, h := range d.Hosts {
		if !slices.ContainsFunc(newHosts, func(n Host) bool { return n.IP == h.IP }) {
			hosts = append(hosts, h)
		}
	}
	// Keep the running cluster's order (its master0 stays master0), new
	// hosts after.
	slices.SortStableFunc(hosts, func(a, b Host) int {
		return boolInt(isIn(newHosts, a.IP)) - boolInt(isIn(newHosts, b.IP))
	})
	d.Hosts = hosts
	c, hooks, err := l.setup(&d)
	if err != nil {
		return protocol.PlanSpec{}, err
	}
	if isIn(newHosts, c.master0.IP) {
		return protocol.PlanSpec{}, fmt.Errorf("%w: scale-up: the running cluster has no master besides the new hosts", ErrInvalid)
	}
	added := only(c.all, newHosts)
	api := l.f.api()
	b := newBuilder("scale-up " + d.Image)
	b.phase("originally", 1, c.hookSteps(b, hooks, ptOriginally, added, api)...)
	b.phase("host-aliases", 0, c.aliasStep(added))
	b.phase("distribute", 0, c.distributeStep(added))
	b.phase("render", 0, c.renderStep(added))
	b.phase("pre-scaleup", 1, c.hookSteps(b, hooks, ptPreScaleUp, added, api)...)
	b.phase("pre-join", 1, c.hookSteps(b, hooks, ptPreJoin, added, api)...)
	b.phase("pre-init-host", 1, c.hookSteps(b, hooks, ptPreInitHost, added, api)...)
	b.phase("init-hosts", 0, append([]protocol.StepSpec{c.initScriptStep(added), c.criStep(added, c.cri(l.f.defaultCRI()))},
		l.f.prepare(c, added)...)...)
	c.imagesPhase(b, l.f, added, false)
	if err := l.f.join(b, c, only(c.masters, added), only(c.workers, added)); err != nil {
		return protocol.PlanSpec{}, err
	}
	c.imagesPhase(b, l.f, added, true)
	b.phase("post-init-host", 1, c.hookSteps(b, hooks, ptPostInitHost, added, api)...)
	b.phase("post-scaleup", 1, c.hookSteps(b, hooks, ptPostScaleUp, added, api)...)
	b.phase("labels-taints", 0, c.labelStep(nodesOf(l.f, c, added), api))
	b.phase("pre-guest", 1, c.hookSteps(b, hooks, ptPreGuest, added, api)...)
	b.phase("post-join", 1, c.hookSteps(b, hooks, ptPostJoin, added, api)...)
	return b.done()
}

func isIn(hs []Host, ip string) bool {
	return slices.ContainsFunc(hs, func(h Host) bool { return h.IP == ip })
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// ScaleDown: clean hooks, the runtime's leave, the container runtime
// out, aliases out.
func (l lifecycle) ScaleDown(d Desired, removed []string) (protocol.PlanSpec, error) {
	c, hooks, err := l.setup(&d)
	if err != nil {
		return protocol.PlanSpec{}, err
	}
	if len(removed) == 0 {
		return protocol.PlanSpec{}, fmt.Errorf("%w: scale-down: no hosts to remove", ErrInvalid)
	}
	var gone []Host
	for _, ip := range removed {
		h, ok := c.byIP[ip]
		if !ok {
			return protocol.PlanSpec{}, fmt.Errorf("%w: scale-down: %s is not a host of the cluster", ErrInvalid, ip)
		}
		if !isIn(gone, ip) {
			gone = append(gone, h)
		}
	}
	restD := d
	restD.Hosts = without(c.all, gone)
	if len(restD.Hosts) == 0 {
		return protocol.PlanSpec{}, fmt.Errorf("%w: scale-down would remove every host: delete the cluster instead", ErrInvalid)
	}
	rest, err := newCluster(&restD, l.f.needsMaster())
	if err != nil {
		return protocol.PlanSpec{}, fmt.Errorf("scale-down would leave no master: delete the cluster instead: %w", err)
	}
	api := l.f.api()
	b := newBuilder("scale-down " + d.Image)
	b.phase("pre-clean-host", 1, c.hookSteps(b, hooks, ptPreCleanHost, gone, api)...)
	if err := l.f.leave(b, c, gone, rest); err != nil {
		return protocol.PlanSpec{}, err
	}
	b.phase("clean-hosts", 0, c.uninstallCRIStep(gone, c.cri(l.f.defaultCRI())), c.cleanStep(gone))
	b.phase("post-clean-host", 1, c.hookSteps(b, hooks, ptPostCleanHost, gone, api)...)
	b.phase("remove-host-aliases", 0, c.removeAliasStep(gone))
	return b.done()
}

// Delete: every host reset whatever state the install reached; nothing
// reads an output of another step.
func (l lifecycle) Delete(d Desired) (protocol.PlanSpec, error) {
	c, hooks, err := l.setup(&d)
	if err != nil {
		return protocol.PlanSpec{}, err
	}
	api, all := l.f.api(), c.all
	b := newBuilder("delete " + d.Image)
	b.phase("pre-uninstall", 1, c.hookSteps(b, hooks, ptPreUninstall, all, api)...)
	b.phase("pre-clean-host", 1, c.hookSteps(b, hooks, ptPreCleanHost, all, api)...)
	b.phase("reset", 0, l.f.reset(c, all)...)
	b.phase("clean-hosts", 0, c.uninstallCRIStep(all, c.cri(l.f.defaultCRI())), c.cleanStep(all))
	b.phase("post-clean-host", 1, c.hookSteps(b, hooks, ptPostCleanHost, all, api)...)
	b.phase("post-uninstall", 1, c.hookSteps(b, hooks, ptPostUninstall, all, api)...)
	b.phase("remove-host-aliases", 0, c.removeAliasStep(all))
	return b.done()
}

// Upgrade: deliver and render the new image everywhere, the runtime's
// rolling upgrade, then the upgrade hooks (the rollback hooks for a
// rollback).
func (l lifecycle) Upgrade(old, new Desired) (protocol.PlanSpec, error) {
	oc, err := newCluster(&old, l.f.needsMaster())
	if err != nil {
		return protocol.PlanSpec{}, fmt.Errorf("upgrade: the running cluster: %w", err)
	}
	c, hooks, err := l.setup(&new)
	if err != nil {
		return protocol.PlanSpec{}, err
	}
	if old.Runtime != "" && new.Runtime != "" && old.Runtime != new.Runtime {
		return protocol.PlanSpec{}, fmt.Errorf("%w: upgrade cannot change the runtime from %s to %s", ErrInvalid, old.Runtime, new.Runtime)
	}
	if !slices.Equal(ips(oc.all), ips(c.all)) || !slices.Equal(oc.masterIPs(), c.masterIPs()) {
		return protocol.PlanSpec{}, fmt.Errorf("%w: upgrade cannot add, remove or reorder hosts or change roles: scale first", ErrInvalid)
	}
	api, all := l.f.api(), c.all
	verb := "upgrade "
	if new.Rollback {
		verb = "rollback "
	}
	b := newBuilder(verb + old.Image + " to " + new.Image)
	b.phase("distribute", 0, c.distributeStep(all))
	b.phase("render", 0, c.renderStep(all))
	// The new image's images before the rolling upgrade pulls them; for
	// k3s and k0s, whose containerd the upgrade restarts, after it.
	c.imagesPhase(b, l.f, all, false)
	if err := l.f.upgrade(b, oc, c); err != nil {
		return protocol.PlanSpec{}, err
	}
	c.imagesPhase(b, l.f, all, true)
	if new.Rollback {
		b.phase("rollback", 1, c.hookSteps(b, hooks, ptRollback, all, api)...)
		return b.done()
	}
	b.phase("upgrade-host", 1, c.hookSteps(b, hooks, ptUpgradeHost, all, api)...)
	b.phase("upgrade", 1, c.hookSteps(b, hooks, ptUpgrade, all, api)...)
	return b.done()
}

// rolling upgrades the nodes one group at a time: every master alone
// (master0 first), then the workers in batches. Around each group, Kubernetes
// nodes are drained, and uncordoned once Ready again, from master0. upgradeStep builds the
// step that upgrades hosts (first: the group is master0).
func rolling(b *builder, c *cluster, f flavor, kv kubeVersion, upgradeStep func(name string, hosts []Host, first bool) protocol.StepSpec) {
	batch := c.d.UpgradeBatch
	if batch <= 0 {
		batch = max(1, len(c.workers)/10)
	}
	type group struct {
		name  string
		hosts []Host
	}
	var groups []group
	for i, m := range c.masters {
		groups = append(groups, group{stepf("master-%d", i+1), []Host{m}})
	}
	for i := 0; i < len(c.workers); i += batch {
		groups = append(groups, group{stepf("workers-%d", i/batch+1), c.workers[i:min(i+batch, len(c.workers))]})
	}
	api := f.api()
	for gi, g := range groups {
		nodes := nodesOf(f, c, g.hosts)
		var steps []protocol.StepSpec
		if api != nil && len(nodes) > 0 {
			steps = append(steps, c.drainStep("drain-"+g.name, nodes, api, kv, false))
		}
		steps = append(steps, upgradeStep("upgrade-"+g.name, g.hosts, gi == 0))
		if api != nil && len(nodes) > 0 {
			steps = append(steps, c.uncordonStep("uncordon-"+g.name, nodes, api))
		}
		b.phase("upgrade-"+g.name, 0, steps...)
	}
}

// drainStep drains nodes from master0 (bestEffort: failures ignored).
func (c *cluster) drainStep(name string, nodes []Host, api *kubeAPI, kv kubeVersion, bestEffort bool) protocol.StepSpec {
	lines := []string{kubectlFns(api.kubectl)}
	if !bestEffort {
		lines = append([]string{"set -e"}, lines...)
	}
	for _, h := range nodes {
		cmd := "drove_kubectl drain \"$(drove_node " + quote(h.IP) + ")\" " + drainFlags(kv) + " --timeout=600s"
		if bestEffort {
			cmd += " || true"
		}
		lines = append(lines, cmd)
	}
	return c.kubeStep(name, script(lines...), api, timeoutScripts)
}

// uncordonStep is the health gate after a group: from master0 it waits
// until each node is Ready again (so the API answers too), then makes it
// schedulable; the next group starts after.
func (c *cluster) uncordonStep(name string, nodes []Host, api *kubeAPI) protocol.StepSpec {
	lines := []string{"set -e", kubectlFns(api.kubectl)}
	for _, h := range nodes {
		lines = append(lines,
			"n=$(drove_node "+quote(h.IP)+")",
			`drove_kubectl wait --for=condition=Ready --timeout=300s "node/$n"`,
			`drove_kubectl uncordon "$n"`)
	}
	return c.kubeStep(name, script(lines...), api, timeoutInit)
}

// deleteNodesStep deletes the Node objects of hosts from the running
// cluster's master0; a node that is already gone is fine.
func (c *cluster) deleteNodesStep(nodes []Host, api *kubeAPI) protocol.StepSpec {
	lines := []string{kubectlFns(api.kubectl)}
	for _, h := range nodes {
		lines = append(lines, "if n=$(drove_node "+quote(h.IP)+"); then drove_kubectl delete node \"$n\" --ignore-not-found; fi")
	}
	return c.kubeStep("delete-nodes", script(lines...), api, timeoutMedium)
}
