package clusterfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/drove-project/drove/protocol"
)

// TestLoadFullV2 reads a Clusterfile that uses every field and checks the
// whole model.
func TestLoadFullV2(t *testing.T) {
	f, err := Load("testdata/full_v2.yaml")
	if err != nil {
		t.Fatal(err)
	}
	wantCluster := &Cluster{
		Name:     "prod",
		Image:    "docker.io/sealerio/kubernetes:v1.22.15",
		Runtime:  RuntimeKubernetes,
		Env:      []string{"CertSANs=a.example.com", "CertSANs=b.example.com", "PodCIDR=100.64.0.0/10"},
		CmdArgs:  []string{"Mode=ha"},
		Cmds:     []string{"kubectl apply -f manifests/app.yaml"},
		AppNames: []string{"calico", "dashboard"},
		Hosts: []Host{
			{
				IPs:    []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"},
				Roles:  []string{RoleMaster},
				SSH:    SSH{Passwd: "other", Port: 22},
				Env:    []string{"etcd-dir=/data/etcd"},
				Labels: map[string]string{"ssd": "true", "topology.kubernetes.io/zone": "z1"},
				Taints: []string{"dedicated=infra:NoSchedule", "node-role.kubernetes.io/master:NoSchedule-"},
				Line:   25,
			},
			{IPs: []string{"10.0.0.10"}, Roles: []string{RoleNode, "db"}, Line: 38},
		},
		SSH:              SSH{User: "admin", Passwd: "s3cret", Pk: "/root/.ssh/id_rsa", PkPasswd: "pkpass", Port: 2222},
		ContainerRuntime: "containerd",
		HostAliases:      []HostAlias{{IP: "10.0.0.100", Hostnames: []string{"git.internal", "registry.internal"}}},
		Registry: Registry{Local: &LocalRegistry{
			Domain: "hub.internal", Port: 5443, Username: "u", Password: "p", HA: false, Insecure: true,
			DNSNames: []string{"hub.example.com"}, IPs: []string{"10.0.0.200"},
		}},
		DataRoot: "/data/drove",
		Line:     2,
	}
	if !reflect.DeepEqual(f.Cluster, wantCluster) {
		t.Errorf("cluster:\n got %+v\nwant %+v", f.Cluster, wantCluster)
	}
	wantApp := &Application{
		Name:       "apps",
		LaunchApps: []string{"dashboard"},
		Configs: []AppConfig{{
			Name:       "dashboard",
			Env:        []string{"PORT=8443"},
			Files:      []AppFile{{Path: "values.yaml", Strategy: StrategyMerge, Data: "replicas: 2\n"}},
			LaunchCmds: []string{"helm install dashboard ."},
		}},
		Line: 60,
	}
	if !reflect.DeepEqual(f.Application, wantApp) {
		t.Errorf("application:\n got %+v\nwant %+v", f.Application, wantApp)
	}
	wantConfigs := []protocol.ConfigFile{{
		Path: "etc/secret.yaml", AppName: "dashboard", Data: "password: hunter2\n",
		Strategy: StrategyMerge, Process: []string{ProcessValue, ProcessToSecret},
	}}
	if !reflect.DeepEqual(f.Configs, wantConfigs) {
		t.Errorf("configs:\n got %+v\nwant %+v", f.Configs, wantConfigs)
	}
	wantPlugins := []Plugin{
		{Name: "hostnames", Type: PluginHostname, Phases: []string{PhasePreInit, PhasePreJoin}, Data: "10.0.0.1 master-0\n", Line: 91},
		{Name: "on-range", Type: PluginShell, Phases: []string{PhasePostInstall}, On: Target{IPs: []string{"10.0.0.1", "10.0.0.2"}}, Data: "echo hi", Line: 101},
		{Name: "init-hook", Type: PluginShell, Phases: []string{HookPreInitHost, HookPostInitHost}, On: Target{Roles: []string{"master", "db"}}, Data: "echo init\n", Line: 111},
	}
	if !reflect.DeepEqual(f.Plugins, wantPlugins) {
		t.Errorf("plugins:\n got %+v\nwant %+v", f.Plugins, wantPlugins)
	}
	if len(f.Kubeadm) != 2 || f.Kubeadm[0].Line != 122 || f.Kubeadm[1].Line != 127 ||
		string(f.Kubeadm[1].Data) != "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nmaxPods: 200\n" {
		t.Errorf("kubeadm: %+v", f.Kubeadm)
	}
	if len(f.Warnings) != 0 {
		t.Errorf("warnings: %v", f.Warnings)
	}

	// The helpers see the host settings over the cluster's.
	c := f.Cluster
	if got := c.Masters(); !reflect.DeepEqual(got, []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"}) {
		t.Errorf("Masters %v", got)
	}
	if got := c.IPsByRole("db"); !reflect.DeepEqual(got, []string{"10.0.0.10"}) {
		t.Errorf("db %v", got)
	}
	if got, want := c.SSHFor(c.Hosts[0]), (SSH{User: "admin", Passwd: "other", Pk: "/root/.ssh/id_rsa", PkPasswd: "pkpass", Port: 22}); got != want {
		t.Errorf("SSHFor host 0: %+v", got)
	}
	if got := c.SSHFor(c.Hosts[1]); got != c.SSH {
		t.Errorf("SSHFor host 1: %+v", got)
	}
	env := c.EnvFor(c.Hosts[0])
	if !reflect.DeepEqual(env["CertSANs"], []string{"a.example.com", "b.example.com"}) || !reflect.DeepEqual(env["etcd-dir"], []string{"/data/etcd"}) {
		t.Errorf("EnvFor: %v", env)
	}
}

// TestParseDefaults checks what Parse fills in and what it leaves empty.
func TestParseDefaults(t *testing.T) {
	f := mustParse(t, "c.yaml", []byte(v2+"  hosts:\n"+master))
	c := f.Cluster
	if c.Image != "" || c.Runtime != "" || c.Name != "" {
		t.Errorf("image %q runtime %q name %q: want empty", c.Image, c.Runtime, c.Name)
	}
	if c.SSH != (SSH{User: "root", Port: 22}) {
		t.Errorf("ssh %+v", c.SSH)
	}
	want := Registry{Local: &LocalRegistry{Domain: "sea.hub", Port: 5000, HA: true}}
	if !reflect.DeepEqual(c.Registry, want) {
		t.Errorf("registry %+v", c.Registry.Local)
	}
	// A local registry section with some fields gets the others' defaults;
	// an external one alone means no local registry.
	f = mustParse(t, "c.yaml", []byte(v2+"  hosts:\n"+master+"  registry:\n    localRegistry:\n      insecure: true\n"))
	if l := f.Cluster.Registry.Local; !reflect.DeepEqual(*l, LocalRegistry{Domain: "sea.hub", Port: 5000, HA: true, Insecure: true}) {
		t.Errorf("local %+v", l)
	}
	f = mustParse(t, "c.yaml", []byte(v2+"  hosts:\n"+master+"  registry:\n    externalRegistry:\n      domain: harbor.example.com\n"))
	if r := f.Cluster.Registry; r.Local != nil || *r.External != (ExternalRegistry{Domain: "harbor.example.com"}) {
		t.Errorf("registry %+v %+v", r.Local, r.External)
	}
}

// TestParseWarnings checks the findings that do not stop Parse.
func TestParseWarnings(t *testing.T) {
	in := `// not YAML
apiVersion: sealer.io/v2
kind: Cluster
metadata:
  name: w
  uid: ignored-without-warning
spec:
  hosts:
    - ips: [10.0.0.1]
      roles: [master]
      cpu: 4
      colour: blue
  env:
    - RegistryURL=my.registry:5000
    - A=1
  infra: aliyun
status: {}
extra: 1
---
apiVersion: sealer.io/v1
kind: Config
spec:
  path: /etc/x.yaml
  data: x
---
apiVersion: sealer.io/v1
kind: Plugin
spec:
  type: SHELL
  action: PreInit
  on: app=web
`
	f := mustParse(t, "w.yaml", []byte(in))
	want := []string{
		`w.yaml:1: "//" comment lines are not YAML; read as comments`,
		`w.yaml:12: spec.hosts[0].colour: unknown field, ignored`,
		`w.yaml:14: spec.env[0]: RegistryURL is set by drove; this value is ignored`,
		`w.yaml:16: spec.infra: unknown field, ignored`,
		`w.yaml:18: extra: unknown field, ignored`,
		`w.yaml:23: spec.path: "/etc/x.yaml" is read relative to the image root`,
		`w.yaml:31: spec.on: a label selector selects nothing in phase PreInit: it needs a running cluster (PostInstall, PostJoin or PreClean)`,
	}
	if got := warningLines(f); !reflect.DeepEqual(got, want) {
		t.Errorf("warnings:\n got %q\nwant %q", got, want)
	}
	if !reflect.DeepEqual(f.Cluster.Env, []string{"A=1"}) {
		t.Errorf("env %q", f.Cluster.Env)
	}
	if f.Configs[0].Path != "etc/x.yaml" || f.Plugins[0].On.Selector != "app=web" {
		t.Errorf("config %+v plugin %+v", f.Configs[0], f.Plugins[0])
	}
}

// TestParseYAMLForms checks YAML features a Clusterfile may use: anchors
// and merge keys, flow style, quoted numbers, CRLF, a BOM, document end
// markers and a marker with content.
func TestParseYAMLForms(t *testing.T) {
	in := "\ufeff%YAML 1.2\r\n---\r\n" +
		"apiVersion: sealer.io/v2\r\n" +
		"kind: Cluster\r\n" +
		"spec:\r\n" +
		"  ssh: &ssh {user: ops, port: '2200'}\r\n" +
		"  hosts:\r\n" +
		"  - &m {ips: [10.0.0.1], roles: [master], ssh: {<<: *ssh, passwd: p}}\r\n" +
		"  - <<: *m\r\n" +
		"    ips: [10.0.0.2]\r\n" +
		"...\r\n" +
		"--- # a comment after the marker\r\n" +
		"{apiVersion: sealer.io/v1, kind: Config, spec: {path: a, data: '1'}}\r\n" +
		"---\r\n" +
		"# only a comment\r\n"
	f := mustParse(t, "forms.yaml", []byte(in))
	c := f.Cluster
	if c.SSH != (SSH{User: "ops", Port: 2200}) {
		t.Errorf("ssh %+v", c.SSH)
	}
	want := []Host{
		{IPs: []string{"10.0.0.1"}, Roles: []string{"master"}, SSH: SSH{User: "ops", Passwd: "p", Port: 2200}, Line: 8},
		{IPs: []string{"10.0.0.2"}, Roles: []string{"master"}, SSH: SSH{User: "ops", Passwd: "p", Port: 2200}, Line: 9},
	}
	if !reflect.DeepEqual(c.Hosts, want) {
		t.Errorf("hosts:\n got %+v\nwant %+v", c.Hosts, want)
	}
	if len(f.Configs) != 1 || f.Configs[0].Data != "1" {
		t.Errorf("configs %+v", f.Configs)
	}

	// An ETCD plugin's "on" is its backup path; "on: master0" a role.
	f = mustParse(t, "p.yaml", []byte("apiVersion: sealer.io/v1\nkind: Plugin\nspec: {type: etcd, action: PostInstall, on: /backup/etcd}\n"+
		"---\napiVersion: sealer.io/v1\nkind: Plugin\nspec: {type: SHELL, action: 'PreInit | PreInit', on: master0}\n"))
	if p := f.Plugins[0]; p.Type != PluginEtcd || p.BackupPath != "/backup/etcd" || !p.On.Empty() {
		t.Errorf("etcd plugin %+v", p)
	}
	if p := f.Plugins[1]; !reflect.DeepEqual(p.On.Roles, []string{"master0"}) || !reflect.DeepEqual(p.Phases, []string{"PreInit"}) {
		t.Errorf("shell plugin %+v", p)
	}
}

// TestParseEmptySSHUser: an empty or null ssh user is no user. The
// cluster keeps the default and a host keeps none (the cluster's), as
// Marshal, which omits an empty user, reads back (a fuzz-found case:
// "ssh: {user}" read back as root only after a round trip).
func TestParseEmptySSHUser(t *testing.T) {
	for _, user := range []string{"{user}", "{user: ''}", "{user: null, passwd: p}"} {
		in := v2 + "  ssh: " + user + "\n  hosts:\n  - {ips: [10.0.0.1], roles: [master], ssh: {user: ''}}\n"
		f := mustParse(t, "u.yaml", []byte(in))
		if got := f.Cluster.SSH.User; got != DefaultSSHUser {
			t.Errorf("ssh %s: cluster user %q, want %q", user, got, DefaultSSHUser)
		}
		if got := f.Cluster.Hosts[0].SSH.User; got != "" {
			t.Errorf("host ssh {user: ''}: user %q, want none", got)
		}
	}
}

// TestParseV1Network checks how a v1 Cluster's network and certSANS meet
// its env: env given by the user wins.
func TestParseV1Network(t *testing.T) {
	in := `apiVersion: sealer.aliyun.com/v1alpha1
kind: Cluster
spec:
  env: [PodCIDR=10.244.0.0/16]
  network:
    podCIDR: 100.64.0.0/10
    svcCIDR: fd00::/108,10.96.0.0/16
  certSANS: [a, b]
  masters:
    ipList: [10.0.0.1-10.0.0.2]
  nodes:
    count: 0
`
	f := mustParse(t, "v1.yaml", []byte(in))
	wantEnv := []string{"PodCIDR=10.244.0.0/16", "SvcCIDR=fd00::/108,10.96.0.0/16", "CertSANs=a", "CertSANs=b"}
	if !reflect.DeepEqual(f.Cluster.Env, wantEnv) {
		t.Errorf("env %q, want %q", f.Cluster.Env, wantEnv)
	}
	if got := warningLines(f); !reflect.DeepEqual(got, []string{"v1.yaml:6: spec.network.podCIDR: ignored: spec.env sets PodCIDR"}) {
		t.Errorf("warnings %q", got)
	}
	if got := f.Cluster.Masters(); !reflect.DeepEqual(got, []string{"10.0.0.1", "10.0.0.2"}) || len(f.Cluster.Hosts) != 1 {
		t.Errorf("hosts %+v", f.Cluster.Hosts)
	}
}

func TestParseEmpty(t *testing.T) {
	for _, in := range []string{"", "\n\n", "# nothing\n---\n---\n", "---\n...\n", "null\n"} {
		f, err := Parse("e.yaml", []byte(in))
		if err != nil || f.Cluster != nil || len(f.Configs) != 0 || len(f.Plugins) != 0 || len(f.Kubeadm) != 0 {
			t.Errorf("%q: got %+v, %v", in, f, err)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	_, err := Load(filepath.Join(dir, "missing.yaml"))
	if !errors.Is(err, fs.ErrNotExist) || !strings.HasPrefix(err.Error(), "open Clusterfile: ") {
		t.Errorf("missing file: %v", err)
	}
	path := filepath.Join(dir, "Clusterfile")
	if err := os.WriteFile(path, []byte(v2+"  hosts:\n  - ips: [1.2.3]\n    roles: [master]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Load(path)
	if err == nil || err.Error() != path+`:5: spec.hosts[0].ips[0]: "1.2.3" is not an IP address` {
		t.Errorf("bad file: %v", err)
	}
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, make([]byte, MaxSize+10), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(big); !errors.Is(err, ErrTooLarge) {
		t.Errorf("big file: %v", err)
	}
}

// TestTooManyErrors checks that a file full of mistakes yields a bounded
// list.
func TestTooManyErrors(t *testing.T) {
	var b strings.Builder
	for range 50 {
		b.WriteString("---\napiVersion: x/v1\nkind: Nope\n")
	}
	_, err := Parse("many.yaml", []byte(b.String()))
	if n := len(errorLines(err)); n != maxErrors {
		t.Errorf("%d errors, want %d", n, maxErrors)
	}
}
