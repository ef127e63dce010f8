package cli

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/drove-project/drove/coordinator/runtime"
	"github.com/drove-project/drove/layers/clusterfile"
)

// richKubefile is an image with env, a runtime label, a kubeadm template,
// a plugin and an app.
const richKubefile = `FROM scratch
ENV A=img B=img C=img D=img
LABEL cluster.alpha.sealer.io/cluster-runtime-type=k3s
COPY etc etc
COPY plugins plugins
COPY bin bin
APP hello local://apps/hello
CMDS ["echo image-cmd"]
`

func richFiles() map[string]string {
	return map[string]string{
		"etc/kubeadm.yaml.tmpl": "networking:\n  podSubnet: {{ .PodCIDR }}\n  greeting: {{ .A }}\n",
		"plugins/shell.yaml":    "apiVersion: sealer.io/v1\nkind: Plugin\nmetadata:\n  name: from-image\nspec:\n  type: SHELL\n  action: post-install\n  data: echo image\n---\napiVersion: sealer.io/v1\nkind: Plugin\nmetadata:\n  name: replaced\nspec:\n  type: SHELL\n  action: post-install\n  data: echo image-version\n",
		"bin/kubeadm":           "#!/bin/sh\n",
		"apps/hello/run.sh":     "echo hello\n",
	}
}

const richClusterfile = `apiVersion: sealer.io/v2
kind: Cluster
metadata:
  name: rich
spec:
  image: rich:v1
  env: [B=cluster, C=cluster, D=cluster, CertSANs=a.example;b.example]
  hostAliases:
    - ip: 10.0.0.100
      hostnames: [reg.local]
  hosts:
    - ips: [10.0.0.1]
      roles: [master]
      env: [C=host, D=host]
      labels: {disk: ssd}
      taints: ["dedicated=db:NoSchedule"]
    - ips: [10.0.0.2-10.0.0.3]
      roles: [node]
---
apiVersion: sealer.io/v1
kind: Config
metadata:
  name: cfg
spec:
  path: etc/extra.yaml
  data: "x: 1"
---
apiVersion: sealer.io/v1
kind: Plugin
metadata:
  name: replaced
spec:
  type: SHELL
  action: pre-init-host
  scope: master
  data: echo clusterfile-version
---
apiVersion: kubeadm.k8s.io/v1beta3
kind: ClusterConfiguration
kubernetesVersion: v1.27.3
`

// loadRich parses the Clusterfile with -e D=cli laid over it, as run -f
// does.
func loadRich(t *testing.T) *clusterfile.File {
	t.Helper()
	p := filepath.Join(t.TempDir(), "Clusterfile")
	if err := os.WriteFile(p, []byte(richClusterfile), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := clusterfile.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Cluster.Override(clusterfile.Overrides{Env: []string{"D=cli"}}); err != nil {
		t.Fatal(err)
	}
	return f
}

func richImage(t *testing.T) *clusterImage {
	t.Helper()
	d := t.TempDir()
	buildImage(t, d, "rich:v1", richKubefile, richFiles())
	img, err := resolveImage(context.Background(), &Globals{DataDir: d, Streams: Streams{Err: &bytes.Buffer{}}}, "rich:v1", registryFlags{})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestBuildDesired(t *testing.T) {
	img := richImage(t)
	f := loadRich(t)
	d, err := buildDesired(context.Background(), f, img)
	if err != nil {
		t.Fatal(err)
	}
	if d.Runtime != "k3s" || d.Image != "rich:v1" || d.ImageDigest != img.Digest {
		t.Errorf("runtime %q image %q digest %q", d.Runtime, d.Image, d.ImageDigest)
	}
	if got := []string{d.Hosts[0].IP, d.Hosts[1].IP, d.Hosts[2].IP}; len(d.Hosts) != 3 || !slices.Equal(got, []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"}) {
		t.Fatalf("hosts %+v", d.Hosts)
	}
	h0 := d.Hosts[0]
	if !h0.HasRole("master") || h0.Labels["disk"] != "ssd" || !slices.Equal(h0.Taints, []string{"dedicated=db:NoSchedule"}) || !strings.HasSuffix(h0.Source, "Clusterfile:12") {
		t.Errorf("master0 %+v", h0)
	}
	// k3s runs its own containerd: the cached images are imported.
	if !d.ImportImages {
		t.Errorf("k3s: ImportImages off")
	}
	for _, c := range []struct {
		runtime, cri string
		want         bool
	}{{"kubernetes", "", false}, {"kubernetes", "docker", false}, {"kubernetes", "containerd", true}, {"k0s", "", true}, {"plain", "", false}} {
		f.Cluster.Runtime, f.Cluster.ContainerRuntime = c.runtime, c.cri
		if d, err := buildDesired(context.Background(), f, img); err != nil || d.ImportImages != c.want {
			t.Errorf("runtime %s, CRI %q: ImportImages %v, %v; want %v", c.runtime, c.cri, d.ImportImages, err, c.want)
		}
	}
	if !slices.Equal(d.CertSANs, []string{"a.example", "b.example"}) {
		t.Errorf("CertSANs %v", d.CertSANs)
	}
	if len(d.HostAliases) != 1 || d.HostAliases[0].IP != "10.0.0.100" {
		t.Errorf("host aliases %+v", d.HostAliases)
	}
	if len(d.Configs) != 1 || d.Configs[0].Path != "etc/extra.yaml" {
		t.Errorf("configs %+v", d.Configs)
	}
	if !slices.Equal(d.Cmds, []string{"echo image-cmd"}) {
		t.Errorf("cmds %q: want the image's CMDS", d.Cmds)
	}
	// Hooks: the image's, with the Clusterfile's "replaced" over the
	// image's plugin of that name.
	hooks := map[string]runtime.Hook{}
	for _, h := range d.Hooks {
		hooks[h.Name] = h
	}
	if len(d.Hooks) != 2 || hooks["from-image"].Phase != "post-install" || hooks["replaced"].Data != "echo clusterfile-version" ||
		hooks["replaced"].On != "master" || !strings.Contains(hooks["from-image"].Source, "rich:v1:plugins/shell.yaml") {
		t.Errorf("hooks %+v", d.Hooks)
	}
	// The kubeadm default is rendered with the env (PodCIDR is derived).
	if kd := string(d.KubeadmDefault); !strings.Contains(kd, "podSubnet: 100.64.0.0/10") || !strings.Contains(kd, "greeting: img") {
		t.Errorf("kubeadm default:\n%s", kd)
	}
	if len(d.KubeadmDocs) != 1 || !strings.Contains(string(d.KubeadmDocs[0]), "kubernetesVersion: v1.27.3") {
		t.Errorf("kubeadm docs %q", d.KubeadmDocs)
	}
	// The result plans.
	rt, err := runtime.Lookup(d.Runtime)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rt.Install(d); err != nil {
		t.Errorf("install plan: %v", err)
	}
}

// TestEnvPrecedence: image ENV < cluster env < host env < -e.
func TestEnvPrecedence(t *testing.T) {
	img := richImage(t)
	d, err := buildDesired(context.Background(), loadRich(t), img)
	if err != nil {
		t.Fatal(err)
	}
	effective := func(h runtime.Host) map[string]string {
		env := maps.Clone(d.Env)
		maps.Copy(env, h.Env)
		return env
	}
	want := map[string]string{"A": "img", "B": "cluster", "C": "host", "D": "cli"}
	for k, v := range want {
		if got := effective(d.Hosts[0])[k]; got != v {
			t.Errorf("master0 %s=%q, want %q", k, got, v)
		}
	}
	if got := effective(d.Hosts[1])["C"]; got != "cluster" {
		t.Errorf("a node without host env has C=%q, want the cluster's", got)
	}
	if d.Env["CertSANs"] != "a.example;b.example" {
		t.Errorf("a list reaches the steps as %q: want ';' joined (render.ParseEnv reads it back)", d.Env["CertSANs"])
	}
}

func TestPickRuntime(t *testing.T) {
	for _, c := range []struct {
		spec   string
		labels map[string]string
		has    bool
		want   string
	}{
		{"", nil, false, "plain"},
		{"", nil, true, "kubernetes"},
		{"", map[string]string{"cluster.alpha.sealer.io/cluster-runtime-type": "k0s"}, true, "k0s"},
		{"plain", map[string]string{"cluster.alpha.sealer.io/cluster-runtime-type": "k0s"}, true, "plain"},
	} {
		img := &clusterImage{Labels: c.labels, Has: map[string]bool{"bin/kubeadm": c.has}}
		got, err := pickRuntime(&clusterfile.Cluster{Runtime: c.spec}, img)
		if err != nil || got != c.want {
			t.Errorf("spec %q labels %v kubeadm %v: %q, %v; want %q", c.spec, c.labels, c.has, got, err, c.want)
		}
	}
	_, err := pickRuntime(&clusterfile.Cluster{}, &clusterImage{Labels: map[string]string{"cluster.alpha.sealer.io/cluster-runtime-type": "nomad"}})
	if !errors.Is(err, runtime.ErrUnknownRuntime) || !strings.Contains(err.Error(), "image label") {
		t.Errorf("unknown runtime label: %v", err)
	}
}

func TestLaunchCmds(t *testing.T) {
	img := richImage(t)
	f := loadRich(t)
	// --apps picks the apps' launch commands instead of the image's CMDS.
	f.Cluster.AppNames = []string{"hello"}
	cmds, err := launchCmds(f, img)
	if err != nil || len(cmds) != 1 || !strings.Contains(cmds[0], "application/apps/hello/") {
		t.Errorf("--apps hello: %q, %v", cmds, err)
	}
	f.Cluster.AppNames = []string{"nope"}
	if _, err := launchCmds(f, img); err == nil || !strings.Contains(err.Error(), `app "nope" is not in image rich:v1 (it has: hello)`) {
		t.Errorf("unknown app: %v", err)
	}
	// --apps "" launches nothing; --cmds wins over everything.
	f.Cluster.AppNames = []string{}
	if cmds, err := launchCmds(f, img); err != nil || len(cmds) != 0 {
		t.Errorf("no apps: %q, %v", cmds, err)
	}
	f.Cluster.Cmds = []string{"date"}
	if cmds, err := launchCmds(f, img); err != nil || !slices.Equal(cmds, []string{"date"}) {
		t.Errorf("--cmds: %q, %v", cmds, err)
	}
	if got := expandCmdArgs([]string{"run ${Name} ${Other}"}, []string{"Name=x"}); got[0] != "run x ${Other}" {
		t.Errorf("cmd_args: %q", got)
	}
}
