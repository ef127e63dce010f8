package cli

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/drove-project/drove/coordinator/runtime"
	"github.com/drove-project/drove/layers/clusterfile"
	"github.com/drove-project/drove/protocol"
)

const diffDigest = "sha256:1111111111111111111111111111111111111111111111111111111111111111"

// cf builds a canonical Clusterfile from a Cluster document's spec body.
func cf(t *testing.T, spec string, extra ...string) []byte {
	t.Helper()
	text := "apiVersion: sealer.io/v2\nkind: Cluster\nspec:\n  image: x:1\n  ssh: {passwd: secret}\n" + spec
	for _, e := range extra {
		text += "---\n" + e
	}
	f, err := clusterfile.Parse("Clusterfile", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	b, err := canonical(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDiffRevision(t *testing.T) {
	const (
		base    = "  env: [A=1]\n  hosts:\n    - ips: [10.0.0.1]\n      roles: [master]\n    - ips: [10.0.0.2, 10.0.0.3]\n      roles: [node]\n"
		grouped = "  env: [A=1]\n  hosts:\n    - ips: [10.0.0.1]\n      roles: [master]\n    - ips: [10.0.0.2]\n      roles: [node]\n    - ips: [10.0.0.3]\n      roles: [node]\n"
		added   = "  env: [A=1]\n  hosts:\n    - ips: [10.0.0.1]\n      roles: [master]\n    - ips: [10.0.0.2-10.0.0.4]\n      roles: [node]\n"
		removed = "  env: [A=1]\n  hosts:\n    - ips: [10.0.0.1]\n      roles: [master]\n    - ips: [10.0.0.2]\n      roles: [node]\n"
		envChg  = "  env: [A=2]\n  hosts:\n    - ips: [10.0.0.1]\n      roles: [master]\n    - ips: [10.0.0.2, 10.0.0.3]\n      roles: [node]\n"
		hostEnv = "  env: [A=1]\n  hosts:\n    - ips: [10.0.0.1]\n      roles: [master]\n      env: [B=1]\n    - ips: [10.0.0.2, 10.0.0.3]\n      roles: [node]\n"
		role    = "  env: [A=1]\n  hosts:\n    - ips: [10.0.0.1, 10.0.0.2]\n      roles: [master]\n    - ips: [10.0.0.3]\n      roles: [node]\n"
		swap    = "  env: [A=1]\n  hosts:\n    - ips: [10.0.0.1]\n      roles: [master]\n    - ips: [10.0.0.2, 10.0.0.9]\n      roles: [node]\n"
		config  = "apiVersion: sealer.io/v1\nkind: Config\nmetadata: {name: c}\nspec:\n  path: etc/a.yaml\n  data: \"a: 1\"\n"
	)
	applied := &protocol.ClusterRevision{Serial: 4, Clusterfile: string(cf(t, base)), Image: "x:1", ImageDigest: diffDigest}
	for _, c := range []struct {
		name     string
		rev      *protocol.ClusterRevision
		next     []byte
		digest   string
		kind     string
		added    []string
		removed  []string
		rerender bool
		err      error
	}{
		{name: "nothing applied", rev: &protocol.ClusterRevision{}, next: cf(t, base), kind: changeInstall},
		{name: "same", rev: applied, next: cf(t, base), kind: changeNone},
		{name: "same hosts grouped otherwise", rev: applied, next: cf(t, grouped), kind: changeNone},
		{name: "host added", rev: applied, next: cf(t, added), kind: changeUpdate, added: []string{"10.0.0.4"}},
		{name: "host removed", rev: applied, next: cf(t, removed), kind: changeUpdate, removed: []string{"10.0.0.3"}},
		{name: "one out one in", rev: applied, next: cf(t, swap), kind: changeUpdate, added: []string{"10.0.0.9"}, removed: []string{"10.0.0.3"}},
		{name: "env changed", rev: applied, next: cf(t, envChg), kind: changeUpdate, rerender: true},
		{name: "config added", rev: applied, next: cf(t, base, config), kind: changeUpdate, rerender: true},
		{name: "host env changed", rev: applied, next: cf(t, hostEnv), kind: changeUpdate, rerender: true},
		{name: "role changed", rev: applied, next: cf(t, role), err: errRoleChange},
		{name: "other image", rev: applied, next: cf(t, base), digest: "sha256:22", err: errOtherImage},
	} {
		t.Run(c.name, func(t *testing.T) {
			digest := c.digest
			if digest == "" {
				digest = diffDigest
			}
			ch, err := diffRevision(c.rev, c.next, digest)
			if c.err != nil {
				if !errors.Is(err, c.err) {
					t.Fatalf("error %v, want %v", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ch.Kind != c.kind || !slices.Equal(ch.Added, c.added) || !slices.Equal(ch.Removed, c.removed) || ch.Rerender != c.rerender {
				t.Errorf("got %s added %v removed %v rerender %v; want %s added %v removed %v rerender %v",
					ch.Kind, ch.Added, ch.Removed, ch.Rerender, c.kind, c.added, c.removed, c.rerender)
			}
		})
	}
	if strings.Contains(applied.Clusterfile, "secret") {
		t.Errorf("the canonical Clusterfile keeps the SSH password:\n%s", applied.Clusterfile)
	}
}

func plainDesired(ips ...string) runtime.Desired {
	d := runtime.Desired{Image: "x:1", ImageDigest: diffDigest, Runtime: "plain", Cmds: []string{"echo hi"}}
	for i, ip := range ips {
		role := "node"
		if i == 0 {
			role = "master"
		}
		d.Hosts = append(d.Hosts, runtime.Host{IP: ip, Roles: []string{role}})
	}
	return d
}

func TestPlansFor(t *testing.T) {
	rt, _ := runtime.Lookup("plain")
	dist := &protocol.Distribution{ID: "pending", Image: "x:1", ImageDigest: diffDigest}
	n, saved := 0, planIDs
	planIDs = func() string { n++; return "plan-" + string(rune('0'+n)) }
	t.Cleanup(func() { planIDs = saved })

	applied := plainDesired("10.0.0.1", "10.0.0.2", "10.0.0.3")
	next := plainDesired("10.0.0.1", "10.0.0.2", "10.0.0.9")
	plans, err := plansFor(change{Kind: changeUpdate, Added: []string{"10.0.0.9"}, Removed: []string{"10.0.0.3"}, Rerender: true}, rt, next, &applied, dist)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range plans {
		names = append(names, strings.Fields(p.Spec.Name)[0])
	}
	if !slices.Equal(names, []string{"scale-down", "render", "scale-up"}) {
		t.Fatalf("plans %v: want the removal, the re-render, then the join", names)
	}
	// Kubernetes: the re-render also sets the kept hosts' labels and
	// taints again (they may be what changed).
	kube, _ := runtime.Lookup("kubernetes")
	kd := plainDesired("10.0.0.1", "10.0.0.2")
	kd.Runtime, kd.KubeVersion = "kubernetes", "v1.28.2"
	kd.Hosts[1].Labels = map[string]string{"disk": "ssd"}
	rr, err := rerenderPlan(kube, withDist(kd, dist, "plan-r"))
	if err != nil {
		t.Fatal(err)
	}
	if got := phaseNamesOf(rr); !slices.Equal(got, []string{"distribute", "render", "labels-taints"}) {
		t.Fatalf("re-render phases %v", got)
	}
	if !plans[0].BestEffort || plans[0].Dist != nil {
		t.Errorf("scale-down: best effort %v, distribution %v", plans[0].BestEffort, plans[0].Dist)
	}
	for _, p := range plans[1:] {
		if p.Dist == nil || p.Dist.ID != p.ID || p.Dist == dist {
			t.Errorf("plan %s carries distribution %+v: want its own, with the plan's ID", p.ID, p.Dist)
		}
	}
	if got := targetsOf(plans[1].Spec); !slices.Equal(got, []string{"10.0.0.1", "10.0.0.2"}) {
		t.Errorf("re-render on %v: want the hosts that stay", got)
	}
	if got := targetsOf(plans[2].Spec); !slices.Equal(got, []string{"10.0.0.9"}) {
		t.Errorf("scale-up on %v: want the new host only", got)
	}
	none, err := plansFor(change{Kind: changeNone}, rt, next, nil, dist)
	if err != nil || len(none) != 0 {
		t.Errorf("no change: %d plans, %v", len(none), err)
	}
}

func targetsOf(p protocol.PlanSpec) []string {
	var out []string
	for _, ph := range p.Phases {
		for _, st := range ph.Steps {
			out = appendAll(out, st.Target.Nodes)
		}
	}
	slices.Sort(out)
	return out
}

func TestBindPlan(t *testing.T) {
	spec := protocol.PlanSpec{Name: "p", Phases: []protocol.PhaseSpec{
		{Name: "a", Steps: []protocol.StepSpec{{
			Name: "s1", Target: protocol.Selector{Nodes: []string{"10.0.0.1", "10.0.0.2", "seed-x"}},
			NodeEnv: map[string]map[string]string{"10.0.0.1": {"HostIP": "10.0.0.1"}, "10.0.0.2": {"HostIP": "10.0.0.2"}},
		}}},
		{Name: "b", Steps: []protocol.StepSpec{{Name: "s2", Target: protocol.Selector{Nodes: []string{"10.0.0.2"}}}}},
	}}
	ids := map[string]string{"10.0.0.1": "m1", "10.0.0.2": "n1"}
	hosts := []string{"10.0.0.1", "10.0.0.2"}
	got, skipped, err := bindPlan(spec, ids, hosts, false)
	if err != nil || len(skipped) != 0 {
		t.Fatal(err, skipped)
	}
	s1 := got.Phases[0].Steps[0]
	if !slices.Equal(s1.Target.Nodes, []string{"m1", "n1", "seed-x"}) || s1.NodeEnv["m1"]["HostIP"] != "10.0.0.1" || len(s1.NodeEnv) != 2 {
		t.Errorf("bound step %+v", s1)
	}
	if spec.Phases[0].Steps[0].Target.Nodes[0] != "10.0.0.1" {
		t.Error("bindPlan changed its input")
	}
	// A host without an agent: an error, or left out with best effort.
	delete(ids, "10.0.0.2")
	if _, _, err := bindPlan(spec, ids, hosts, false); err == nil || !strings.Contains(err.Error(), "10.0.0.2") {
		t.Errorf("missing agent: %v", err)
	}
	got, skipped, err = bindPlan(spec, ids, hosts, true)
	if err != nil || !slices.Equal(skipped, []string{"10.0.0.2"}) || len(got.Phases) != 1 || len(got.Phases[0].Steps[0].NodeEnv) != 1 {
		t.Errorf("best effort: %+v skipped %v, %v", got, skipped, err)
	}
}

func phaseNamesOf(p protocol.PlanSpec) []string {
	var out []string
	for _, ph := range p.Phases {
		out = append(out, ph.Name)
	}
	return out
}
