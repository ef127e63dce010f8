package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/drove-project/drove/internal/lab"
)

// The kubernetes runtime end to end, with recording stand-ins for
// kubeadm, kubelet and kubectl (testdata/kube-standin: they cannot be
// installed here). Every node runs in its own network namespace and sees
// its own /etc/hosts, /etc/kubernetes and /root/.kube, as separate
// machines would; the stand-ins log each call with its start and end time
// to <log dir>/<node IP>.log.

// kubePrivate are the paths the kubeadm runtime's steps and the
// stand-ins' init.sh (which installs the tools, as init-kube.sh does) write.
var kubePrivate = []string{"/etc/hosts", "/etc/kubernetes", "/root/.kube", "/var/lib/etcd", "/etc/cni", "/usr/local/bin"}

type kubeFixture struct {
	l      *lab.Lab
	cliDir string
	logDir string
	ips    []string // m1 m2 m3 n1 n2 n3 [n4]
}

func newKubeFixture(t *testing.T, nodes int) *kubeFixture {
	t.Helper()
	if testing.Short() {
		t.Skip("multi-process lab test (-short)")
	}
	if os.Geteuid() != 0 {
		t.Skip("kubernetes runtime lab test: needs root (network and mount namespaces)")
	}
	f := &kubeFixture{cliDir: t.TempDir(), logDir: t.TempDir()}
	f.l = upLab(t, lab.Options{Dir: t.TempDir(), Binary: droveBin, Masters: 3, Nodes: nodes, NetNS: true, Private: kubePrivate})
	for _, n := range f.l.Nodes {
		f.ips = append(f.ips, n.Addr)
	}
	drove(t, f.cliDir, "build", "-t", "kube-standin:1", "testdata/kube-standin")
	// Every agent must have joined: apply would take a host that has not
	// yet for one without an agent (and try SSH).
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := f.l.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *kubeFixture) clientArgs() []string {
	return []string{"--server", strings.Join(f.l.Servers(), ","), "--token-file", filepath.Join(f.l.Dir, "token")}
}

// clusterfile writes a Clusterfile for masters and workers (IPs) with
// env at every level, two hooks and a Config.
func (f *kubeFixture) clusterfile(t *testing.T, masters, workers []string, extraEnv ...string) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, `apiVersion: sealer.io/v2
kind: Cluster
metadata:
  name: standin
spec:
  image: kube-standin:1
  env:
    - STANDIN_LOG_DIR=%s
    - PRECEDENCE=cluster
    - CLUSTER_ENV=cluster
`, f.logDir)
	for _, e := range extraEnv {
		fmt.Fprintf(&b, "    - %s\n", e)
	}
	// One entry per master, in order (the first is master0); the second
	// has env of its own.
	b.WriteString("  hosts:\n")
	for i, ip := range masters {
		fmt.Fprintf(&b, "    - ips: [%s]\n      roles: [master]\n", ip)
		if i == 1 {
			b.WriteString("      env: [PRECEDENCE=host, HOST_ENV=host]\n")
		}
	}
	fmt.Fprintf(&b, "    - ips: [%s]\n      roles: [node]\n", strings.Join(workers, ", "))
	b.WriteString(`---
apiVersion: sealer.io/v2
kind: Plugin
metadata:
  name: b-workers-first
spec:
  type: SHELL
  action: pre-init-host
  scope: node
  data: |
    . bin/standin-lib.sh; standin_log "$(standin_now) $(standin_now) hook pre-init-host"
---
apiVersion: sealer.io/v2
kind: Plugin
metadata:
  name: a-post-install
spec:
  type: SHELL
  action: post-install
  data: |
    . bin/standin-lib.sh; standin_log "$(standin_now) $(standin_now) hook post-install"
---
apiVersion: sealer.io/v1
kind: Config
metadata:
  name: extra
spec:
  path: etc/extra.yaml
  data: |
    patched: "yes"
`)
	p := filepath.Join(t.TempDir(), "Clusterfile")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// apply runs drove apply and returns its output and error.
func (f *kubeFixture) apply(t *testing.T, clusterfile string, extra ...string) (string, error) {
	t.Helper()
	args := append([]string{"--data-dir", f.cliDir, "apply", "-f", clusterfile}, f.clientArgs()...)
	cmd := exec.Command(droveBin, append(args, extra...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// call is one logged stand-in call.
type standinCall struct {
	start, end float64
	what       string // "kubeadm join ...", "hook post-install", "init.sh"
	env        string
}

func (f *kubeFixture) calls(t *testing.T, ip string) []standinCall {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(f.logDir, ip+".log"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []standinCall
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if line == "" {
			continue
		}
		fields := strings.SplitN(line, " ", 3)
		if len(fields) < 3 {
			t.Fatalf("%s: bad log line %q", ip, line)
		}
		s, _ := strconv.ParseFloat(fields[0], 64)
		e, _ := strconv.ParseFloat(fields[1], 64)
		what, env, _ := strings.Cut(fields[2], " | ")
		out = append(out, standinCall{start: s, end: e, what: what, env: env})
	}
	return out
}

// kinds is the sequence of call kinds at a node: the tool and its first
// argument ("kubeadm init", "init.sh", "hook post-install").
func kinds(calls []standinCall) []string {
	var out []string
	for _, c := range calls {
		f := strings.Fields(c.what)
		k := f[0]
		if len(f) > 1 && (k == "kubeadm" || k == "hook") {
			k += " " + f[1]
		}
		if k == "kubectl" || k == "kubeadm version" {
			continue // probes; their number is not part of the contract
		}
		out = append(out, k)
	}
	return out
}

func find(calls []standinCall, prefix string) []standinCall {
	var out []standinCall
	for _, c := range calls {
		if strings.HasPrefix(c.what, prefix) {
			out = append(out, c)
		}
	}
	return out
}

func TestKubernetesRuntimeInstall(t *testing.T) {
	f := newKubeFixture(t, 4)
	masters, workers, spare := f.ips[:3], f.ips[3:6], f.ips[6]
	cf := f.clusterfile(t, masters, workers, "HOST_ENV=cluster")
	out, err := f.apply(t, cf, "-e", "HOST_ENV=cli")
	if err != nil {
		t.Fatalf("drove apply: %v\n%s", err, out)
	}

	// Call order per node.
	m0 := f.calls(t, masters[0])
	if got, want := kinds(m0), []string{"init.sh", "kubeadm init", "kubeadm token", "kubeadm init", "hook post-install", "cmd"}; !slices.Equal(got, want) {
		t.Errorf("master0 calls %v, want %v", got, want)
	}
	for _, ip := range masters[1:] {
		if got, want := kinds(f.calls(t, ip)), []string{"init.sh", "kubeadm join"}; !slices.Equal(got, want) {
			t.Errorf("master %s calls %v, want %v", ip, got, want)
		}
		if j := find(f.calls(t, ip), "kubeadm join"); len(j) != 1 || !strings.Contains(j[0].what, "--control-plane") {
			t.Errorf("master %s joined as %v, want one --control-plane join", ip, j)
		}
	}
	for _, ip := range workers {
		if got, want := kinds(f.calls(t, ip)), []string{"hook pre-init-host", "init.sh", "kubeadm join"}; !slices.Equal(got, want) {
			t.Errorf("worker %s calls %v, want %v", ip, got, want)
		}
	}
	if c := f.calls(t, spare); len(c) != 0 {
		t.Errorf("a host outside the Clusterfile was touched: %v", c)
	}

	// Masters join one at a time, workers at once.
	a, b := find(f.calls(t, masters[1]), "kubeadm join")[0], find(f.calls(t, masters[2]), "kubeadm join")[0]
	if a.start < b.end && b.start < a.end {
		t.Errorf("master joins overlap: %v and %v", a, b)
	}
	var ws []standinCall
	for _, ip := range workers {
		ws = append(ws, find(f.calls(t, ip), "kubeadm join")[0])
	}
	overlap := false
	for i := range ws {
		for j := i + 1; j < len(ws); j++ {
			overlap = overlap || (ws[i].start < ws[j].end && ws[j].start < ws[i].end)
		}
	}
	if !overlap {
		t.Errorf("worker joins ran one after another: %v", ws)
	}

	// CMDS once, on master0.
	for i, ip := range f.ips {
		if n := len(find(f.calls(t, ip), "cmd")); (i == 0) != (n == 1) || n > 1 {
			t.Errorf("%s ran the image's CMD %d times", ip, n)
		}
	}

	// Env precedence: CLI > host > cluster > image.
	for _, ip := range f.ips[:6] {
		init := find(f.calls(t, ip), "init.sh")[0]
		want := "IMAGE_ENV=image PRECEDENCE=cluster CLUSTER_ENV=cluster HOST_ENV=cli"
		if ip == masters[1] {
			want = "IMAGE_ENV=image PRECEDENCE=host CLUSTER_ENV=cluster HOST_ENV=cli"
		}
		if init.env != want {
			t.Errorf("%s env %q, want %q", ip, init.env, want)
		}
	}

	// Templates rendered and Configs applied on every node, in its rootfs.
	for i, n := range f.l.Nodes[:6] {
		root := rootfsOf(t, n.DataDir)
		if b, err := os.ReadFile(filepath.Join(root, "etc", "standin.conf")); err != nil || !strings.Contains(string(b), "host="+f.ips[i]) {
			t.Errorf("%s: etc/standin.conf %q %v", n.Name, b, err)
		}
		if b, err := os.ReadFile(filepath.Join(root, "etc", "extra.yaml")); err != nil || !strings.Contains(string(b), "patched") {
			t.Errorf("%s: etc/extra.yaml %q %v", n.Name, b, err)
		}
	}

	// The same apply again runs nothing.
	before := totalCalls(t, f)
	out, err = f.apply(t, cf, "-e", "HOST_ENV=cli")
	if err != nil {
		t.Fatalf("second apply: %v\n%s", err, out)
	}
	if !strings.Contains(out, "up to date") || totalCalls(t, f) != before {
		t.Errorf("an identical apply did something:\n%s", out)
	}

	// Scale up: only the new node (and master0, for a join token) is touched.
	old := map[string]int{}
	for _, ip := range f.ips {
		old[ip] = len(f.calls(t, ip))
	}
	cf2 := f.clusterfile(t, masters, append(slices.Clone(workers), spare), "HOST_ENV=cluster")
	if out, err := f.apply(t, cf2, "-e", "HOST_ENV=cli"); err != nil {
		t.Fatalf("scale-up apply: %v\n%s", err, out)
	}
	for _, ip := range f.ips[1:6] {
		if n := len(f.calls(t, ip)); n != old[ip] {
			t.Errorf("scale-up ran %d calls on existing node %s", n-old[ip], ip)
		}
	}
	if got := kinds(f.calls(t, spare)); !slices.Contains(got, "kubeadm join") || !slices.Contains(got, "init.sh") {
		t.Errorf("the new node's calls: %v", got)
	}
}

func TestKubernetesDeleteAfterFailedInit(t *testing.T) {
	f := newKubeFixture(t, 1)
	cf := f.clusterfile(t, f.ips[:3], f.ips[3:4], "STANDIN_FAIL_INIT=1")
	if out, err := f.apply(t, cf); err == nil {
		t.Fatalf("apply with a failing kubeadm init succeeded:\n%s", out)
	}
	if j := find(f.calls(t, f.ips[1]), "kubeadm join"); len(j) != 0 {
		t.Errorf("a master joined after init failed: %v", j)
	}
	args := append([]string{"delete", "--all", "--force"}, f.clientArgs()...)
	out := drove(t, f.cliDir, args...)
	for _, ip := range f.ips {
		if r := find(f.calls(t, ip), "kubeadm reset"); len(r) != 1 {
			t.Errorf("%s: %d kubeadm resets after delete --all, want 1; calls %v\n%s", ip, len(r), kinds(f.calls(t, ip)), out)
		}
	}
}

func totalCalls(t *testing.T, f *kubeFixture) int {
	n := 0
	for _, ip := range f.ips {
		n += len(f.calls(t, ip))
	}
	return n
}

// rootfsOf is the one unpacked image under a node's data directory.
func rootfsOf(t *testing.T, dataDir string) string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dataDir, "rootfs", "*"))
	if err != nil || len(m) != 1 {
		t.Fatalf("%s: rootfs dirs %v %v, want one", dataDir, m, err)
	}
	return m[0]
}
