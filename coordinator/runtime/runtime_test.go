package runtime

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/drove-project/drove/protocol"
)

func TestLookup(t *testing.T) {
	for _, name := range []string{"kubernetes", "k3s", "k0s", "plain"} {
		if r := mustLookup(t, name); r.Name() != name {
			t.Errorf("Lookup(%q).Name() = %q", name, r.Name())
		}
	}
	_, err := Lookup("kubeedge")
	if !errors.Is(err, ErrUnknownRuntime) || !strings.Contains(err.Error(), "k0s, k3s, kubernetes, plain") {
		t.Fatalf("Lookup of an unknown runtime: %v", err)
	}
}

func TestInstallPhaseOrder(t *testing.T) {
	hooks := []Hook{
		{Name: "first", Type: "SHELL", Phase: "Originally", Data: "date"},
		{Name: "pi", Type: "SHELL", Phase: "pre-install", Data: "echo pi"},
		{Name: "pih", Type: "SHELL", Phase: "pre-init-host", Data: "echo pih"},
		{Name: "poih", Type: "SHELL", Phase: "post-init-host", Data: "echo poih"},
		{Name: "poi", Type: "SHELL", Phase: "post-install", Data: "echo poi"},
		{Name: "guest", Type: "SHELL", Phase: "PreGuest", Data: "echo guest"},
	}
	shared := func(runtime ...string) []string {
		return append(append([]string{"originally", "host-aliases", "distribute", "render", "pre-install", "pre-init-host", "init-hosts"},
			runtime...), "post-init-host", "post-install", "labels-taints", "pre-guest", "launch")
	}
	for _, tc := range []struct {
		runtime string
		want    []string
	}{
		{"kubernetes", shared("kube-init", "join-masters", "join-workers")},
		{"k3s", shared("k3s-init", "join-servers", "join-agents")},
		{"k0s", shared("k0s-init", "join-controllers", "join-workers")},
		{"plain", slices.DeleteFunc(shared(), func(s string) bool { return s == "labels-taints" })},
	} {
		t.Run(tc.runtime, func(t *testing.T) {
			d := cluster3x3(tc.runtime)
			d.Hooks = hooks
			p := install(t, d)
			if got := phaseNames(p); !slices.Equal(got, tc.want) {
				t.Fatalf("phases\n got %v\nwant %v", got, tc.want)
			}
		})
	}
}

func TestInitHostsScripts(t *testing.T) {
	p := install(t, cluster3x3("kubernetes"))
	ph, st := findStep(t, p, "install-cri")
	if ph.Name != "init-hosts" || !sameSet(st.Target.Nodes, allIPs) || st.Action.Rootfs != digest {
		t.Fatalf("install-cri: phase %s, targets %v, rootfs %q", ph.Name, st.Target.Nodes, st.Action.Rootfs)
	}
	if !strings.Contains(st.Action.Command, "if [ -f scripts/containerd.sh ]; then bash scripts/containerd.sh") {
		t.Errorf("install-cri does not run scripts/containerd.sh only when present:\n%s", st.Action.Command)
	}
	if _, st := findStep(t, p, "init-script"); !strings.Contains(st.Action.Command, "scripts/init.sh") || !st.Idempotent {
		t.Errorf("init-script: %+v", st)
	}
	// The kubernetes default container runtime is docker, as in sealer.
	d := cluster3x3("kubernetes")
	d.ContainerRuntime = ""
	if _, st := findStep(t, install(t, d), "install-cri"); !strings.Contains(st.Action.Command, "scripts/docker.sh") {
		t.Errorf("default CRI: %s", st.Action.Command)
	}
	// plain names no container runtime unless asked.
	d = cluster3x3("plain")
	d.ContainerRuntime = ""
	if hasStep(install(t, d), "install-cri") {
		t.Error("plain installs a container runtime nobody asked for")
	}
}

func TestJoinParallelism(t *testing.T) {
	for _, tc := range []struct {
		runtime, masterPhase, masterStep, workerPhase, workerStep string
	}{
		{"kubernetes", "join-masters", "join-masters", "join-workers", "join-workers"},
		{"k3s", "join-servers", "join-servers", "join-agents", "join-agents"},
		{"k0s", "join-controllers", "join-controllers", "join-workers", "join-workers"},
	} {
		t.Run(tc.runtime, func(t *testing.T) {
			p := install(t, cluster3x3(tc.runtime))
			ph, st := findStep(t, p, tc.masterStep)
			if ph.Name != tc.masterPhase || ph.Parallel != 1 {
				t.Errorf("masters join in phase %s with parallel %d, want %s with 1", ph.Name, ph.Parallel, tc.masterPhase)
			}
			if !slices.Equal(st.Target.Nodes, []string{m1, m2}) {
				t.Errorf("masters joining: %v", st.Target.Nodes)
			}
			ph, st = findStep(t, p, tc.workerStep)
			if ph.Name != tc.workerPhase || ph.Parallel <= 1 {
				t.Errorf("workers join in phase %s with parallel %d, want %s with > 1", ph.Name, ph.Parallel, tc.workerPhase)
			}
			if !slices.Equal(st.Target.Nodes, workerIPs) {
				t.Errorf("workers joining: %v", st.Target.Nodes)
			}
		})
	}
}

func TestKubeadmInstallSteps(t *testing.T) {
	p := install(t, cluster3x3("kubernetes"))
	ph, cfg := findStep(t, p, "kubeadm-config")
	if ph.Name != "kube-init" || cfg.Action.Kind != "write-file" || cfg.Action.Path != kubeadmInitFile || !slices.Equal(cfg.Target.Nodes, []string{m0}) {
		t.Fatalf("kubeadm-config: %s %+v", ph.Name, cfg)
	}
	_, initStep := findStep(t, p, "kubeadm-init")
	cmd := initStep.Action.Command
	hosts := strings.Index(cmd, "drove_hosts apiserver '"+m0+" apiserver.cluster.local'")
	kinit := strings.Index(cmd, "kubeadm init --config "+kubeadmInitFile)
	if hosts < 0 || kinit < 0 || hosts > kinit {
		t.Errorf("kubeadm-init must point apiserver.cluster.local at master0 before kubeadm init:\n%s", cmd)
	}
	if initStep.TimeoutMs != timeoutInit || initStep.TimeoutMs < 10*60*1000 {
		t.Errorf("init timeout %d ms", initStep.TimeoutMs)
	}
	_, info := findStep(t, p, stepJoinInfo)
	for _, out := range []string{outToken, outCACertHash, outCertificateKey} {
		if !strings.Contains(info.Action.Command, outputPrefix+out+"=") {
			t.Errorf("join-info does not print %s", out)
		}
	}
	_, jm := findStep(t, p, "join-masters")
	for _, want := range []string{"--control-plane", `{{output "join-info" "token"}}`, `{{output "join-info" "certificate-key"}}`,
		`--apiserver-advertise-address "$HostIP"`, "--cri-socket 'unix:///run/containerd/containerd.sock'"} {
		if !strings.Contains(jm.Action.Command, want) {
			t.Errorf("join-masters lacks %q:\n%s", want, jm.Action.Command)
		}
	}
	ph, lb := findStep(t, p, "apilb")
	_, jw := findStep(t, p, "join-workers")
	if ph.Name != "join-workers" || lb.Action.Kind != kindAPILB || !slices.Equal(lb.Target.Nodes, workerIPs) ||
		lb.Action.Env[EnvAPILBBackends] != "10.0.0.1:6443,10.0.0.2:6443,10.0.0.3:6443" {
		t.Errorf("apilb: phase %s %+v", ph.Name, lb)
	}
	if !strings.Contains(jw.Action.Command, "drove_hosts apiserver '127.0.0.1 apiserver.cluster.local'") ||
		strings.Contains(jw.Action.Command, "--control-plane") {
		t.Errorf("join-workers:\n%s", jw.Action.Command)
	}
	at := func(name string) int {
		return slices.IndexFunc(ph.Steps, func(s protocol.StepSpec) bool { return s.Name == name })
	}
	if i, j := at("apilb"), at("join-workers"); i < 0 || i > j {
		t.Error("the load balancer must be up before workers join")
	}
}

func TestLabelsAndTaints(t *testing.T) {
	p := install(t, cluster3x3("kubernetes"))
	ph, st := findStep(t, p, "node-labels")
	if ph.Name != "labels-taints" || !slices.Equal(st.Target.Nodes, []string{m0}) || st.Action.Env["KUBECONFIG"] != kubeadmAPI.kubeconfig {
		t.Fatalf("node-labels: %s %+v", ph.Name, st)
	}
	for _, want := range []string{
		`drove_kubectl label node "$n" --overwrite 'node-role.kubernetes.io/node=' 'node-role.kubernetes.io/gpu=' 'disk=ssd'`,
		`drove_kubectl taint node "$n" --overwrite 'gpu=true:NoSchedule'`,
		`drove_kubectl taint node "$n" 'node-role.kubernetes.io/control-plane:NoSchedule-' || true`,
		"n=$(drove_node '" + w2 + "')",
	} {
		if !strings.Contains(st.Action.Command, want) {
			t.Errorf("node-labels lacks %q:\n%s", want, st.Action.Command)
		}
	}
}

func TestCmdsOnlyOnMaster0(t *testing.T) {
	for _, rt := range Names() {
		t.Run(rt, func(t *testing.T) {
			d := cluster3x3(rt)
			p := install(t, d)
			last := p.Phases[len(p.Phases)-1]
			if last.Name != "launch" || len(last.Steps) != len(d.Cmds) {
				t.Fatalf("last phase %s with %d steps", last.Name, len(last.Steps))
			}
			for i, st := range last.Steps {
				if !slices.Equal(st.Target.Nodes, []string{m0}) || st.Action.Rootfs != digest ||
					!strings.HasSuffix(st.Action.Command, d.Cmds[i]) || st.Idempotent {
					t.Errorf("cmd %d: %+v", i, st)
				}
			}
			if names := stepsWithPrefix(p, "cmd-"); !slices.Equal(names, []string{"cmd-1", "cmd-2"}) {
				t.Errorf("cmd steps %v", names)
			}
		})
	}
}

func TestEnvInNodeEnv(t *testing.T) {
	p := install(t, cluster3x3("kubernetes"))
	for _, name := range []string{"render", "init-script", "cmd-1"} {
		_, st := findStep(t, p, name)
		if st.Action.Env["PodCIDR"] != "100.64.0.0/10" {
			t.Errorf("%s: cluster env missing: %v", name, st.Action.Env)
		}
		// The coordinator renders env values as templates: user text
		// must come out as written.
		if got := st.Action.Env["Greeting"]; got != `hi {{"{{"}} .X }}` {
			t.Errorf("%s: env value not protected from templating: %q", name, got)
		}
		for _, ip := range st.Target.Nodes {
			env := st.NodeEnv[ip]
			if env["HostIP"] != ip {
				t.Errorf("%s: NodeEnv[%s] = %v, want HostIP", name, ip, env)
			}
		}
	}
	_, r := findStep(t, p, "render")
	if r.Action.Kind != kindRender || r.Action.Rootfs != digest || !sameSet(r.Target.Nodes, allIPs) {
		t.Errorf("render: %+v", r)
	}
	if r.NodeEnv[m1]["Zone"] != "zb" || r.NodeEnv[w0]["Zone"] != "" {
		t.Errorf("host env: %v", r.NodeEnv)
	}
	_, dist := findStep(t, p, "distribute")
	if dist.Action.Kind != protocol.ActionDistribute || dist.Action.Distribution == nil || !sameSet(dist.Target.Nodes, allIPs) {
		t.Errorf("distribute: %+v", dist)
	}
}

func TestDistributeIncludesSeeds(t *testing.T) {
	d := cluster3x3("plain")
	d.Distribution.Seeds = []string{"control-host", m0}
	_, st := findStep(t, install(t, d), "distribute")
	if !slices.Equal(st.Target.Nodes, append(slices.Clone(allIPs), "control-host")) {
		t.Fatalf("distribute targets %v", st.Target.Nodes)
	}
}

func TestHostAliases(t *testing.T) {
	p := install(t, cluster3x3("kubernetes"))
	ph, st := findStep(t, p, "host-aliases")
	if ph.Name != "host-aliases" || !sameSet(st.Target.Nodes, allIPs) || st.Action.Rootfs != "" ||
		!strings.Contains(st.Action.Command, "drove_hosts alias '10.0.0.100 reg.local git.local'") {
		t.Fatalf("host-aliases: %s %+v", ph.Name, st)
	}
	del, err := mustLookup(t, "kubernetes").Delete(cluster3x3("kubernetes"))
	if err != nil {
		t.Fatal(err)
	}
	if _, st := findStep(t, del, "remove-host-aliases"); !strings.Contains(st.Action.Command, "drove_hosts alias || true") {
		t.Errorf("Delete leaves the aliases: %s", st.Action.Command)
	}
}

func TestEveryPlanPassesCheck(t *testing.T) {
	for _, rt := range Names() {
		t.Run(rt, func(t *testing.T) {
			d := cluster3x3(rt)
			d.Hooks = []Hook{
				{Name: "a", Type: "SHELL", Phase: "pre-install|post-install|pre-scaleup|post-scaleup|upgrade|pre-uninstall|post-uninstall", Data: "echo {{x}}"},
				{Name: "b", Type: "SHELL", Phase: "pre-init-host|post-init-host|pre-clean-host|post-clean-host|upgrade-host", On: "master|node", Data: "echo b"},
				{Name: "c", Type: "SHELL", Phase: "Originally|PreInit|PreInstall|PostInstall|PreGuest|PreJoin|PostJoin|PreClean|PostClean", On: w0 + "-" + w2, Data: "echo c"},
			}
			r := mustLookup(t, rt)
			up := d
			up.Hosts = d.Hosts[:4]
			newer := d
			newer.KubeVersion, newer.ImageDigest = "v1.28.0", digest[:len(digest)-1]+"2"
			plans := map[string]func() (protocol.PlanSpec, error){
				"install":    func() (protocol.PlanSpec, error) { return r.Install(d) },
				"scale-up":   func() (protocol.PlanSpec, error) { return r.ScaleUp(up, d.Hosts[4:]) },
				"scale-down": func() (protocol.PlanSpec, error) { return r.ScaleDown(d, []string{m2, w2}) },
				"delete":     func() (protocol.PlanSpec, error) { return r.Delete(d) },
				"upgrade":    func() (protocol.PlanSpec, error) { return r.Upgrade(d, newer) },
			}
			for op, build := range plans {
				p, err := build()
				if err != nil {
					t.Fatalf("%s: %v", op, err)
				}
				if err := Check(p); err != nil {
					t.Errorf("%s: %v", op, err)
				}
			}
		})
	}
}

func TestValidationErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Desired)
		want string
	}{
		{"no hosts", func(d *Desired) { d.Hosts = nil }, "no hosts"},
		{"no digest", func(d *Desired) { d.ImageDigest = "" }, "ImageDigest"},
		{"bad ip", func(d *Desired) { d.Hosts[1].IP = "10.0.0" }, "Clusterfile:10: host 10.0.0: ip is not an IP address"},
		{"duplicate ip", func(d *Desired) { d.Hosts[4].IP = w0 }, "declared twice"},
		{"no roles", func(d *Desired) { d.Hosts[3].Roles = nil }, "roles is empty"},
		{"no master", func(d *Desired) {
			for i := range d.Hosts {
				d.Hosts[i].Roles = []string{RoleNode}
			}
		}, `no host has role "master"`},
		{"bad taint", func(d *Desired) { d.Hosts[3].Taints = []string{"a=b:Sometimes"} }, `taints[0]: taint "a=b:Sometimes": effect "Sometimes"`},
		{"taint without effect", func(d *Desired) { d.Hosts[3].Taints = []string{"a=b"} }, "want key[=value]:Effect"},
		{"bad alias", func(d *Desired) { d.HostAliases[0].IP = "x" }, "hostAliases[0].ip"},
		{"bad cri", func(d *Desired) { d.ContainerRuntime = "../x" }, "containerRuntime"},
		{"bad version", func(d *Desired) { d.KubeVersion = "1.x" }, `KubeVersion: version "1.x"`},
		{"hook unknown phase", func(d *Desired) {
			d.Hooks = []Hook{{Name: "h", Type: "SHELL", Phase: "PreFlight", Data: "x", Source: "Clusterfile:40"}}
		}, `Clusterfile:40: plugin "h": spec.action: unknown phase "PreFlight"`},
		{"hook unknown type", func(d *Desired) { d.Hooks = []Hook{{Name: "h", Type: "GO", Phase: "PreInit", Data: "x"}} }, `spec.type: unknown type "GO"`},
		{"hook etcd before the cluster", func(d *Desired) { d.Hooks = []Hook{{Name: "h", Type: "ETCD", Phase: "PreInit", On: "/backup/e.db"}} }, "ETCD plugins need a running cluster"},
		{"hook etcd relative path", func(d *Desired) { d.Hooks = []Hook{{Name: "h", Type: "ETCD", Phase: "PostInstall", On: "e.db"}} }, `spec.on: "e.db": want the absolute path`},
		{"hook no data", func(d *Desired) { d.Hooks = []Hook{{Name: "h", Type: "SHELL", Phase: "PreInit"}} }, "spec.data: is empty"},
		{"hook no name", func(d *Desired) { d.Hooks = []Hook{{Type: "SHELL", Phase: "PreInit", Data: "x"}} }, "metadata.name"},
		{"label before the cluster", func(d *Desired) {
			d.Hooks = []Hook{{Name: "h", Type: "LABEL", Phase: "PreInit", Data: w0 + " a=b"}}
		}, "LABEL plugins need a running cluster"},
		{"label of a stranger", func(d *Desired) {
			d.Hooks = []Hook{{Name: "h", Type: "LABEL", Phase: "PreGuest", Data: "192.168.9.9 a=b"}}
		}, "192.168.9.9 is not a host of the cluster"},
		{"on names a stranger", func(d *Desired) {
			d.Hooks = []Hook{{Name: "h", Type: "SHELL", Phase: "PreInit", On: "192.168.9.9", Data: "x"}}
		}, "spec.on: 192.168.9.9 is not a host"},
		{"scope range too big", func(d *Desired) {
			d.Hooks = []Hook{{Name: "h", Type: "SHELL", Phase: "pre-init-host", On: "10.0.0.1-10.1.0.0", Data: "x"}}
		}, "spec.scope: range"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := cluster3x3("kubernetes")
			tc.edit(&d)
			_, err := mustLookup(t, "kubernetes").Install(d)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrInvalid with %q", err, tc.want)
			}
		})
	}
}

func TestPlainRefusesKubePlugins(t *testing.T) {
	d := cluster3x3("plain")
	d.Hooks = []Hook{{Name: "t", Type: "TAINT", Phase: "PostInstall", Data: w0 + " a=b:NoSchedule"}}
	if _, err := mustLookup(t, "plain").Install(d); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "needs a Kubernetes runtime") {
		t.Fatalf("err = %v", err)
	}
	// Without masters, plain's master0 is the first host.
	d = cluster3x3("plain")
	for i := range d.Hosts {
		d.Hosts[i].Roles = []string{"app"}
	}
	_, st := findStep(t, install(t, d), "cmd-1")
	if !slices.Equal(st.Target.Nodes, []string{m0}) {
		t.Fatalf("plain CMDS run on %v", st.Target.Nodes)
	}
}
