package runtime

import (
	"slices"
	"strings"
	"testing"

	"github.com/drove-project/drove/protocol"
)

func TestHooksInPhaseScopeAndNameOrder(t *testing.T) {
	d := cluster3x3("kubernetes")
	d.Hooks = []Hook{
		{Name: "zz-last", Type: "SHELL", Phase: "pre-init-host", On: "master", Data: "echo z"},
		{Name: "aa-first", Type: "SHELL", Phase: "pre-init-host", On: "gpu", Data: "echo a"},
		{Name: "mm-middle", Type: "SHELL", Phase: "pre-init-host", Data: "echo m"},
		{Name: "cluster", Type: "SHELL", Phase: "post-install", On: "node", Data: "kubectl get nodes"},
		{Name: "both", Type: "SHELL", Phase: "pre-install|post-init-host", On: "master|gpu", Data: "echo both"},
	}
	p := install(t, d)
	for _, tc := range []struct {
		step, phase string
		targets     []string
	}{
		{"pre-init-host-aa-first", "pre-init-host", workerIPs},
		{"pre-init-host-mm-middle", "pre-init-host", allIPs},
		{"pre-init-host-zz-last", "pre-init-host", masterIPs},
		// Gen-2 cluster phases run on master0 whatever the scope says.
		{"post-install-cluster", "post-install", []string{m0}},
		{"pre-install-both", "pre-install", []string{m0}},
		{"post-init-host-both", "post-init-host", allIPs},
	} {
		ph, st := findStep(t, p, tc.step)
		if ph.Name != tc.phase || !slices.Equal(st.Target.Nodes, tc.targets) {
			t.Errorf("%s: phase %s targets %v, want %s %v", tc.step, ph.Name, st.Target.Nodes, tc.phase, tc.targets)
		}
		if ph.Parallel != 1 {
			t.Errorf("%s: hooks run one host at a time, phase parallel is %d", tc.step, ph.Parallel)
		}
		if st.Action.Rootfs != digest || st.Idempotent {
			t.Errorf("%s: rootfs %q idempotent %v", tc.step, st.Action.Rootfs, st.Idempotent)
		}
	}
	if got := stepsWithPrefix(p, "pre-init-host-"); !slices.Equal(got, []string{"pre-init-host-aa-first", "pre-init-host-mm-middle", "pre-init-host-zz-last"}) {
		t.Errorf("hooks not sorted by name: %v", got)
	}
	if _, st := findStep(t, p, "post-install-cluster"); st.Action.Env["KUBECONFIG"] != kubeadmAPI.kubeconfig {
		t.Errorf("cluster hooks after install get the admin kubeconfig: %v", st.Action.Env)
	}
}

func TestHookDataIsNotATemplate(t *testing.T) {
	d := cluster3x3("kubernetes")
	d.Hooks = []Hook{{Name: "gt", Type: "SHELL", Phase: "post-install",
		Data: `kubectl get pods -o go-template='{{range .items}}{{.metadata.name}}{{end}}'`}}
	_, st := findStep(t, install(t, d), "post-install-gt")
	if strings.Contains(strings.ReplaceAll(st.Action.Command, `{{"{{"}}`, ""), "{{") {
		t.Fatalf("hook data reaches the coordinator as a template:\n%s", st.Action.Command)
	}
}

func TestGen1PhaseMapping(t *testing.T) {
	for _, tc := range []struct {
		phase  string
		op     string // install, scale-up, scale-down, delete
		plan   string // the plan phase it lands in
		rootfs bool
	}{
		{"Originally", "install", "originally", false},
		{"PreInit", "install", "pre-init-host", true},
		{"PreInstall", "install", "pre-install", true},
		{"PostInstall", "install", "post-install", true},
		{"PreGuest", "install", "pre-guest", true},
		{"Originally", "scale-up", "originally", false},
		{"PreJoin", "scale-up", "pre-join", true},
		{"PostJoin", "scale-up", "post-join", true},
		{"PreGuest", "scale-up", "pre-guest", true},
		{"PreClean", "delete", "pre-clean-host", true},
		{"PostClean", "delete", "post-clean-host", true},
		{"PreClean", "scale-down", "pre-clean-host", true},
		{"postclean", "scale-down", "post-clean-host", true},
	} {
		t.Run(tc.phase+"/"+tc.op, func(t *testing.T) {
			d := cluster3x3("kubernetes")
			d.Hooks = []Hook{{Name: "p", Type: "shell", Phase: tc.phase, On: "node", Data: "hostname"}}
			r := mustLookup(t, "kubernetes")
			var p protocol.PlanSpec
			var err error
			want := workerIPs // Gen-1 "on: node"
			switch tc.op {
			case "install":
				p, err = r.Install(d)
			case "delete":
				p, err = r.Delete(d)
			case "scale-up":
				cur := d
				cur.Hosts = d.Hosts[:5]
				p, err = r.ScaleUp(cur, d.Hosts[5:])
				want = []string{w2}
			case "scale-down":
				p, err = r.ScaleDown(d, []string{m2, w1})
				want = []string{w1}
			}
			if err != nil {
				t.Fatal(err)
			}
			names := stepsWithPrefix(p, "")
			var got []protocol.StepSpec
			var phase string
			for _, ph := range p.Phases {
				for _, st := range ph.Steps {
					if strings.HasSuffix(st.Name, "-p") {
						got, phase = append(got, st), ph.Name
					}
				}
			}
			if len(got) != 1 || phase != tc.plan {
				t.Fatalf("hook steps %d in phase %q, want 1 in %q (steps %v)", len(got), phase, tc.plan, names)
			}
			if !slices.Equal(got[0].Target.Nodes, want) || (got[0].Action.Rootfs != "") != tc.rootfs {
				t.Errorf("targets %v rootfs %q", got[0].Target.Nodes, got[0].Action.Rootfs)
			}
		})
	}
}

func TestGen1PluginTypes(t *testing.T) {
	d := cluster3x3("kubernetes")
	d.Hooks = []Hook{
		{Name: "names", Type: "HOSTNAME", Phase: "PreInit", Data: w0 + " worker-a\n# comment\n\n" + w1 + " worker-b\n"},
		{Name: "labels", Type: "LABEL", Phase: "PreGuest", Data: w0 + " ssd=true,zone=a"},
		{Name: "taints", Type: "TAINT", Phase: "PostInstall", Data: w0 + "-" + w1 + " dedicated=db:NoExecute\n" + m0 + " node-role.kubernetes.io/master:NoSchedule-"},
		{Name: "check", Type: "CLUSTERCHECK", Phase: "PreGuest"},
		{Name: "backup", Type: "ETCD", Phase: "PostInstall", On: "/var/backups/etcd.db"},
	}
	p := install(t, d)

	ph, st := findStep(t, p, "post-install-backup")
	if ph.Name != "post-install" || !slices.Equal(st.Target.Nodes, []string{m0}) ||
		st.Action.Env["DROVE_ETCD_SNAPSHOT"] != "/var/backups/etcd.db" || !strings.Contains(st.Action.Command, "snapshot save") {
		t.Errorf("ETCD: %s %+v", ph.Name, st)
	}

	ph, st = findStep(t, p, "pre-init-host-names")
	if ph.Name != "pre-init-host" || !slices.Equal(st.Target.Nodes, []string{w0, w1}) ||
		st.NodeEnv[w0]["DROVE_HOSTNAME"] != "worker-a" || st.NodeEnv[w1]["DROVE_HOSTNAME"] != "worker-b" ||
		!strings.Contains(st.Action.Command, `hostnamectl set-hostname "$DROVE_HOSTNAME"`) {
		t.Errorf("HOSTNAME: %s %+v", ph.Name, st)
	}
	ph, st = findStep(t, p, "pre-guest-labels")
	if ph.Name != "pre-guest" || !slices.Equal(st.Target.Nodes, []string{m0}) ||
		!strings.Contains(st.Action.Command, "n=$(drove_node '"+w0+"')\ndrove_kubectl label node \"$n\" --overwrite 'ssd=true' 'zone=a'") {
		t.Errorf("LABEL: %s %s", ph.Name, st.Action.Command)
	}
	ph, st = findStep(t, p, "post-install-taints")
	for _, want := range []string{
		"n=$(drove_node '" + w1 + "')\ndrove_kubectl taint node \"$n\" --overwrite 'dedicated=db:NoExecute'",
		"n=$(drove_node '" + m0 + "')\ndrove_kubectl taint node \"$n\" 'node-role.kubernetes.io/master:NoSchedule-' || true",
	} {
		if ph.Name != "post-install" || !strings.Contains(st.Action.Command, want) {
			t.Errorf("TAINT in %s lacks %q:\n%s", ph.Name, want, st.Action.Command)
		}
	}
	ph, st = findStep(t, p, "pre-guest-check")
	if ph.Name != "pre-guest" || !strings.Contains(st.Action.Command, "wait --for=condition=Ready nodes --all") {
		t.Errorf("CLUSTERCHECK: %s %s", ph.Name, st.Action.Command)
	}
	// Sorted by name within pre-guest: check before labels.
	if got := stepsWithPrefix(p, "pre-guest-"); !slices.Equal(got, []string{"pre-guest-check", "pre-guest-labels"}) {
		t.Errorf("pre-guest order %v", got)
	}
}

func TestResolveOn(t *testing.T) {
	d := cluster3x3("kubernetes")
	d.Hosts[4].Labels["sealer-test"] = "true"
	c, err := newCluster(&d, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		on   string
		want []string
	}{
		{"", allIPs},
		{"master", masterIPs},
		{"master|gpu", allIPs},
		{"node,master", allIPs},
		{"etcd", nil},
		{m1 + "," + w0, []string{m1, w0}},
		{m0 + "-" + m2, masterIPs},
		{w0 + "-" + w2 + "," + w0, workerIPs},
		{"sealer-test=true", []string{w1}},
		{"node-role.kubernetes.io/master=", masterIPs},
		{"node-role.kubernetes.io/control-plane=", masterIPs},
		{"disk=ssd,node-role.kubernetes.io/gpu=", workerIPs},
		{"disk=hdd", nil},
	} {
		hs, err := c.resolveOn(tc.on)
		if err != nil || !slices.Equal(ips(hs), tc.want) {
			t.Errorf("resolveOn(%q) = %v, %v; want %v", tc.on, ips(hs), err, tc.want)
		}
	}
	for _, bad := range []string{"10.0.0.9", "10.0.0.3-10.0.0.1", "10.0.0.1-fd00::1", "=x", m0 + ",x"} {
		if _, err := c.resolveOn(bad); err == nil {
			t.Errorf("resolveOn(%q) accepted", bad)
		}
	}
}

func TestPluginDataParsers(t *testing.T) {
	for _, tc := range []struct {
		name  string
		parse func(string) ([]nodeChange, error)
		data  string
		want  []nodeChange
		err   string
	}{
		{"hostname", parseHostnameData, "10.0.0.1 a\n 10.0.0.2   b.example \n", []nodeChange{{IP: "10.0.0.1", Hostname: "a"}, {IP: "10.0.0.2", Hostname: "b.example"}}, ""},
		{"hostname bad", parseHostnameData, "10.0.0.1 a b", nil, "line 1"},
		{"hostname bad name", parseHostnameData, "# x\n10.0.0.1 a_b", nil, `line 2: "a_b" is not a host name`},
		{"hostname empty", parseHostnameData, "\n# nothing\n", nil, "no \"IP hostname\" line"},
		{"label", parseLabelData, "10.0.0.1 a=b,c=", []nodeChange{{IP: "10.0.0.1", Labels: []string{"a=b", "c="}}}, ""},
		{"label bad", parseLabelData, "10.0.0.1 a", nil, `label "a"`},
		{"label bad ip", parseLabelData, "host1 a=b", nil, `"host1" is not an IP address`},
		{"taint range", parseTaintData, "10.0.0.1-10.0.0.2 k=v:NoSchedule", []nodeChange{
			{IP: "10.0.0.1", Taints: []taint{{Key: "k", Value: "v", Effect: "NoSchedule"}}},
			{IP: "10.0.0.2", Taints: []taint{{Key: "k", Value: "v", Effect: "NoSchedule"}}}}, ""},
		{"taint remove", parseTaintData, "10.0.0.1,10.0.0.3 k:NoExecute-", []nodeChange{
			{IP: "10.0.0.1", Taints: []taint{{Key: "k", Effect: "NoExecute", Remove: true}}},
			{IP: "10.0.0.3", Taints: []taint{{Key: "k", Effect: "NoExecute", Remove: true}}}}, ""},
		{"taint bad", parseTaintData, "10.0.0.1 k=v", nil, "line 1: taint"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.parse(tc.data)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || len(got) != len(tc.want) {
				t.Fatalf("got %+v, %v", got, err)
			}
			for i := range got {
				if got[i].IP != tc.want[i].IP || got[i].Hostname != tc.want[i].Hostname || !slices.Equal(got[i].Labels, tc.want[i].Labels) || !slices.Equal(got[i].Taints, tc.want[i].Taints) {
					t.Errorf("[%d] = %+v, want %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestParseTaint(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // arg() round trip, "" for an error
	}{
		{"k=v:NoSchedule", "k=v:NoSchedule"},
		{"k:PreferNoSchedule", "k:PreferNoSchedule"},
		{"k=v:NoExecute-", "k=v:NoExecute-"},
		{"k-", "k-"},
		{"k=v", ""},
		{"k=v:Never", ""},
		{":NoSchedule", ""},
		{"a b=c:NoSchedule", ""},
	} {
		got, err := parseTaint(tc.in)
		if tc.want == "" {
			if err == nil {
				t.Errorf("parseTaint(%q) accepted: %+v", tc.in, got)
			}
			continue
		}
		if err != nil || got.arg() != tc.want {
			t.Errorf("parseTaint(%q) = %q, %v", tc.in, got.arg(), err)
		}
	}
}
