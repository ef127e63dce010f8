package runtime

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/drove-project/drove/protocol"
)

// targetsOf lists, for every step, the nodes it runs on.
func targetsOf(p protocol.PlanSpec) map[string][]string {
	out := map[string][]string{}
	for _, ph := range p.Phases {
		for _, st := range ph.Steps {
			out[st.Name] = st.Target.Nodes
		}
	}
	return out
}

func TestScaleUpOnlyNewHosts(t *testing.T) {
	// master0 and m1, w0, w1 run; m2 and w2 join.
	full := cluster3x3("kubernetes")
	running := full
	running.Hosts = []Host{full.Hosts[0], full.Hosts[1], full.Hosts[3], full.Hosts[4]}
	added := []Host{full.Hosts[2], full.Hosts[5]}
	running.Hooks = []Hook{
		{Name: "up", Type: "SHELL", Phase: "pre-scaleup", Data: "echo up"},
		{Name: "host", Type: "SHELL", Phase: "pre-init-host", Data: "echo host"},
		{Name: "pj", Type: "SHELL", Phase: "PostJoin", Data: "echo pj"},
	}
	for _, rt := range []string{"kubernetes", "k3s", "k0s", "plain"} {
		t.Run(rt, func(t *testing.T) {
			d := running
			d.Runtime = rt
			p, err := mustLookup(t, rt).ScaleUp(d, added)
			if err != nil {
				t.Fatal(err)
			}
			newIPs := []string{m2, w2}
			// master0 works for the new hosts (tokens, labels, cluster
			// hooks); running workers only learn of a new master.
			master0Steps := []string{stepJoinInfo, stepK3sToken, stepK0sTokens, "node-labels", "pre-scaleup-up"}
			for name, nodes := range targetsOf(p) {
				for _, n := range nodes {
					switch {
					case slices.Contains(newIPs, n):
					case n == m0 && slices.Contains(master0Steps, name):
					case name == "apilb-update" && (n == w0 || n == w1):
					default:
						t.Errorf("step %s runs on %s, which is neither new nor needed", name, n)
					}
				}
			}
			if got := targetsOf(p)["pre-init-host-host"]; !slices.Equal(got, newIPs) {
				t.Errorf("host hooks on %v", got)
			}
			if got := targetsOf(p)["post-join-pj"]; !slices.Equal(got, newIPs) {
				t.Errorf("PostJoin on %v", got)
			}
			if hasStep(p, "cmd-1") {
				t.Error("scale-up runs CMDS again")
			}
			if rt == "kubernetes" {
				if got := targetsOf(p)["apilb-update"]; !slices.Equal(got, []string{w0, w1}) {
					t.Errorf("running workers' load balancers not told of the new master: %v", got)
				}
				if got := targetsOf(p)["join-masters"]; !slices.Equal(got, []string{m2}) {
					t.Errorf("join-masters on %v", got)
				}
				_, lb := findStep(t, p, "apilb")
				if lb.Action.Env[EnvAPILBBackends] != "10.0.0.1:6443,10.0.0.2:6443,10.0.0.3:6443" {
					t.Errorf("new workers' backends %q", lb.Action.Env[EnvAPILBBackends])
				}
			}
		})
	}
	// Workers only: nobody else is touched.
	only := full
	only.Hosts = full.Hosts[:5]
	p, err := mustLookup(t, "kubernetes").ScaleUp(only, full.Hosts[5:])
	if err != nil {
		t.Fatal(err)
	}
	if hasStep(p, "apilb-update") || hasStep(p, "join-masters") {
		t.Errorf("a worker-only scale-up touches the masters: %v", phaseNames(p))
	}
	if _, err := mustLookup(t, "kubernetes").ScaleUp(full, nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("scale-up of nothing: %v", err)
	}
}

func TestScaleDown(t *testing.T) {
	d := cluster3x3("kubernetes")
	p, err := mustLookup(t, "kubernetes").ScaleDown(d, []string{m0, w2})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"drain", "apilb-update", "reset", "delete-nodes", "clean-hosts", "remove-host-aliases"}
	if got := phaseNames(p); !slices.Equal(got, want) {
		t.Fatalf("phases %v, want %v", got, want)
	}
	tg := targetsOf(p)
	// master0 goes: the next master drives the cluster.
	if !slices.Equal(tg["drain-nodes"], []string{m1}) || !slices.Equal(tg["delete-nodes"], []string{m1}) {
		t.Errorf("drain on %v, delete on %v; want the remaining master0 %s", tg["drain-nodes"], tg["delete-nodes"], m1)
	}
	if !slices.Equal(tg["kube-reset"], []string{m0, w2}) || !slices.Equal(tg["apilb-stop"], []string{w2}) {
		t.Errorf("reset on %v, apilb-stop on %v", tg["kube-reset"], tg["apilb-stop"])
	}
	_, lb := findStep(t, p, "apilb-update")
	if !slices.Equal(lb.Target.Nodes, []string{w0, w1}) || lb.Action.Env[EnvAPILBBackends] != "10.0.0.2:6443,10.0.0.3:6443" {
		t.Errorf("apilb-update %v %q", lb.Target.Nodes, lb.Action.Env[EnvAPILBBackends])
	}
	_, del := findStep(t, p, "delete-nodes")
	if !strings.Contains(del.Action.Command, "drove_node '"+w2+"'") || !strings.Contains(del.Action.Command, "--ignore-not-found") {
		t.Errorf("delete-nodes:\n%s", del.Action.Command)
	}
	for _, tc := range []struct {
		removed []string
		want    string
	}{
		{masterIPs, "no master"},
		{allIPs, "every host"},
		{[]string{"10.9.9.9"}, "not a host"},
		{nil, "no hosts to remove"},
	} {
		if _, err := mustLookup(t, "kubernetes").ScaleDown(d, tc.removed); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ScaleDown(%v) = %v, want %q", tc.removed, err, tc.want)
		}
	}
}

func TestDeleteNeedsNoOutputs(t *testing.T) {
	for _, rt := range Names() {
		t.Run(rt, func(t *testing.T) {
			d := cluster3x3(rt)
			d.Hooks = []Hook{{Name: "bye", Type: "SHELL", Phase: "pre-uninstall", Data: "echo bye"}}
			p, err := mustLookup(t, rt).Delete(d)
			if err != nil {
				t.Fatal(err)
			}
			reset := map[string]bool{}
			for _, ph := range p.Phases {
				for _, st := range ph.Steps {
					refs, err := templateRefs(st.Action)
					if err != nil || len(refs) > 0 {
						t.Errorf("%s reads outputs %v (%v): a delete must not depend on install", st.Name, refs, err)
					}
					if ph.Name == "reset" || ph.Name == "clean-hosts" {
						if strings.HasPrefix(st.Action.Command, "set -e") {
							t.Errorf("%s stops at the first failure; delete is best effort", st.Name)
						}
						if !st.Idempotent {
							t.Errorf("%s is not marked idempotent", st.Name)
						}
						if st.Action.Kind == kindShell {
							for _, n := range st.Target.Nodes {
								reset[n] = true
							}
						}
					}
				}
			}
			for _, ip := range allIPs {
				if !reset[ip] {
					t.Errorf("%s is never reset", ip)
				}
			}
			if _, st := findStep(t, p, "pre-uninstall-bye"); !slices.Equal(st.Target.Nodes, []string{m0}) {
				t.Errorf("pre-uninstall on %v", st.Target.Nodes)
			}
		})
	}
	// A delete plan builds even when the install could not (no version).
	d := cluster3x3("kubernetes")
	d.KubeVersion = ""
	if _, err := mustLookup(t, "kubernetes").Delete(d); err != nil {
		t.Fatalf("Delete without a version: %v", err)
	}
}

func TestUpgradeRolling(t *testing.T) {
	old := cluster3x3("kubernetes")
	newer := old
	newer.Image, newer.ImageDigest, newer.KubeVersion = "k:v1.28.4", "sha256:"+strings.Repeat("2", 64), "v1.28.4"
	newer.UpgradeBatch = 2
	newer.Hooks = []Hook{{Name: "after", Type: "SHELL", Phase: "upgrade", Data: "echo done"}}
	p, err := mustLookup(t, "kubernetes").Upgrade(old, newer)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"distribute", "render", "upgrade-master-1", "upgrade-master-2", "upgrade-master-3", "upgrade-workers-1", "upgrade-workers-2", "upgrade"}
	if got := phaseNames(p); !slices.Equal(got, want) {
		t.Fatalf("phases %v, want %v", got, want)
	}
	groups := map[string][]string{
		"master-1": {m0}, "master-2": {m1}, "master-3": {m2}, "workers-1": {w0, w1}, "workers-2": {w2},
	}
	for g, nodes := range groups {
		ph, st := findStep(t, p, "upgrade-"+g)
		if ph.Name != "upgrade-"+g || !slices.Equal(st.Target.Nodes, nodes) || st.Action.Rootfs != newer.ImageDigest {
			t.Errorf("%s: phase %s nodes %v rootfs %s", g, ph.Name, st.Target.Nodes, st.Action.Rootfs)
		}
		apply := strings.Contains(st.Action.Command, "kubeadm upgrade apply 'v1.28.4' --yes")
		if apply != (g == "master-1") || !apply && !strings.Contains(st.Action.Command, "kubeadm upgrade node") {
			t.Errorf("%s: only master0 runs upgrade apply, the others upgrade node:\n%s", g, st.Action.Command)
		}
		names := []string{}
		for _, s := range ph.Steps {
			names = append(names, s.Name)
		}
		if !slices.Equal(names, []string{"drain-" + g, "upgrade-" + g, "uncordon-" + g}) {
			t.Errorf("%s: steps %v, want drain, upgrade, uncordon", g, names)
		}
		_, drain := findStep(t, p, "drain-"+g)
		if !slices.Equal(drain.Target.Nodes, []string{m0}) || strings.Count(drain.Action.Command, "drove_kubectl drain") != len(nodes) {
			t.Errorf("drain-%s: %v\n%s", g, drain.Target.Nodes, drain.Action.Command)
		}
	}
	for _, tc := range []struct {
		from, to, want string
	}{
		{"v1.27.3", "v1.26.0", "goes back"},
		{"v1.27.3", "v1.29.0", "skips a minor release"},
		{"v1.27.3", "", "no Kubernetes version"},
	} {
		o, n := old, newer
		o.KubeVersion, n.KubeVersion = tc.from, tc.to
		if _, err := mustLookup(t, "kubernetes").Upgrade(o, n); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s → %s: %v", tc.from, tc.to, err)
		}
	}
	moved := newer
	moved.Hosts = slices.Clone(newer.Hosts[:5])
	if _, err := mustLookup(t, "kubernetes").Upgrade(old, moved); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "scale first") {
		t.Errorf("upgrade with other hosts: %v", err)
	}
}

func TestUpgradeK0sDrainsOnlyNodes(t *testing.T) {
	old := cluster3x3("k0s")
	newer := old
	newer.KubeVersion = "v1.27.9"
	p, err := mustLookup(t, "k0s").Upgrade(old, newer)
	if err != nil {
		t.Fatal(err)
	}
	// k0s controllers are no Kubernetes nodes when there are workers.
	if hasStep(p, "drain-master-1") || !hasStep(p, "drain-workers-1") || !hasStep(p, "upgrade-master-1") {
		t.Fatalf("steps %v", stepsWithPrefix(p, ""))
	}
}
