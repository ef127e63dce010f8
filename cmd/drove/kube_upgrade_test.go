package main

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// drove upgrade, rollback and cert on the kubernetes runtime, with the
// recording stand-ins of kube_test.go: a second stand-in image says it is
// Kubernetes 1.31.0.

// hostTools are this machine's own Kubernetes tools: the upgrade step
// replaces the tools where a node has them, and on the lab nodes that must
// be their private /usr/local/bin, never these.
var hostTools = []string{"/usr/bin/kubeadm", "/usr/bin/kubelet", "/usr/bin/kubectl"}

// toolState is what a host tool is: absent, a link to somewhere, or a file
// of a size and time.
func toolState(p string) string {
	st, err := os.Lstat(p)
	if err != nil {
		return "absent"
	}
	if st.Mode()&fs.ModeSymlink != 0 {
		target, _ := os.Readlink(p)
		return "link to " + target
	}
	return fmt.Sprintf("%s %d bytes, modified %s", st.Mode(), st.Size(), st.ModTime())
}

// copyStandin copies the stand-in image's build context to dst, keeping
// the files' modes (its tools must stay executable), and applies edits
// (file → old → new).
func copyStandin(t *testing.T, dst string, edits map[string][2]string) {
	t.Helper()
	src := filepath.Join("testdata", "kube-standin")
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if e, ok := edits[filepath.ToSlash(rel)]; ok {
			if !strings.Contains(string(b), e[0]) {
				t.Fatalf("%s has no %q to change", rel, e[0])
			}
			b = []byte(strings.ReplaceAll(string(b), e[0], e[1]))
		}
		return os.WriteFile(target, b, info.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
}

// oneAtATime fails unless each call ended before the next one started.
func oneAtATime(t *testing.T, what string, calls []standinCall) {
	t.Helper()
	for i := 1; i < len(calls); i++ {
		if calls[i].start < calls[i-1].end {
			t.Errorf("%s: call %d (%s) started before call %d (%s) ended", what, i+1, calls[i].what, i, calls[i-1].what)
		}
	}
}

// exactly are the calls that are what.
func exactly(calls []standinCall, what string) []standinCall {
	var out []standinCall
	for _, c := range calls {
		if c.what == what {
			out = append(out, c)
		}
	}
	return out
}

// only is the one call at ip starting with prefix.
func (f *kubeFixture) only(t *testing.T, ip, prefix string) standinCall {
	t.Helper()
	c := find(f.calls(t, ip), prefix)
	if len(c) != 1 {
		t.Fatalf("%s: %d calls %q, want one; calls %v", ip, len(c), prefix, kinds(f.calls(t, ip)))
	}
	return c[0]
}

// upgraded checks one rolling upgrade (the n-th at each node): master0
// runs apply, every other node upgrade node, the masters strictly one at a
// time and before the workers, each node drained before and, once Ready,
// uncordoned after, from master0.
func (f *kubeFixture) upgraded(t *testing.T, n int, apply string) {
	t.Helper()
	masters, workers := f.ips[:3], f.ips[3:6]
	var ups []standinCall
	for i, ip := range f.ips[:6] {
		want := "kubeadm upgrade node"
		if i == 0 {
			want = apply
		}
		got := find(f.calls(t, ip), "kubeadm upgrade")
		if len(got) != n || got[n-1].what != want {
			t.Fatalf("%s: upgrade calls %v, want the %d-th to be %q", ip, got, n, want)
		}
		ups = append(ups, got[n-1])
		m0 := f.calls(t, masters[0])
		drains, uncordons := find(m0, "kubectl drain node-"+ip+" "), exactly(m0, "kubectl uncordon node-"+ip)
		if len(drains) != n || len(uncordons) != n {
			t.Fatalf("%s: %d drains and %d uncordons from master0, want %d of each", ip, len(drains), len(uncordons), n)
		}
		ready := exactly(m0, "kubectl wait --for=condition=Ready --timeout=300s node/node-"+ip)
		if len(ready) != n {
			t.Fatalf("%s: %d health gates (kubectl wait) from master0, want %d", ip, len(ready), n)
		}
		if d, up, r, u := drains[n-1], got[n-1], ready[n-1], uncordons[n-1]; d.end > up.start || r.start < up.end || u.start < r.end {
			t.Errorf("%s: drain %v, upgrade %v, ready %v, uncordon %v: not in that order", ip, d, up, r, u)
		}
	}
	oneAtATime(t, "masters", ups[:3])
	for i, w := range ups[3:] {
		if w.start < ups[2].end {
			t.Errorf("worker %s upgraded before the last master finished", workers[i])
		}
	}
	// --batch 2: the third worker after the first two.
	if ups[5].start < ups[3].end || ups[5].start < ups[4].end {
		t.Errorf("worker batches overlap: %v %v then %v", ups[3], ups[4], ups[5])
	}
}

// nodeTool is what a lab node's own (private) /usr/local/bin/NAME says.
func (f *kubeFixture) nodeTool(t *testing.T, i int, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(f.l.Nodes[i].PrivatePath("/usr/local/bin"), name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestKubernetesUpgradeRollbackCert(t *testing.T) {
	if _, err := os.Stat("/run/systemd/system"); err == nil {
		t.Skip("this machine runs systemd: the upgrade step would restart its kubelet")
	}
	// The nodes inherit this PATH: their own /usr/local/bin comes first.
	t.Setenv("PATH", "/usr/local/bin:"+os.Getenv("PATH"))
	before := map[string]string{}
	for _, p := range hostTools {
		before[p] = toolState(p)
	}
	t.Cleanup(func() {
		for _, p := range hostTools {
			if now := toolState(p); now != before[p] {
				t.Errorf("this machine's %s changed: was %s, now %s", p, before[p], now)
			}
		}
	})

	f := newKubeFixture(t, 3)
	masters, workers := f.ips[:3], f.ips[3:6]
	if out, err := f.apply(t, f.clusterfile(t, masters, workers)); err != nil {
		t.Fatalf("drove apply: %v\n%s", err, out)
	}
	v2 := t.TempDir()
	copyStandin(t, v2, map[string][2]string{
		"Kubefile":    {"KUBEVERSION 1.30.2", "KUBEVERSION 1.31.0"},
		"bin/kubeadm": {"v1.30.2", "v1.31.0"},
		"bin/kubelet": {"v1.30.2", "v1.31.0"},
	})
	drove(t, f.cliDir, "build", "-t", "kube-standin:2", v2)
	run := func(args ...string) string {
		t.Helper()
		return drove(t, f.cliDir, append(args, f.clientArgs()...)...)
	}

	out := run("upgrade", "kube-standin:2", "--batch", "2")
	if !strings.Contains(out, "upgraded to kube-standin:2") {
		t.Errorf("upgrade output %q", out)
	}
	f.upgraded(t, 1, "kubeadm upgrade apply v1.31.0 --yes")
	for i := range 6 {
		if got := f.nodeTool(t, i, "kubeadm"); !strings.Contains(got, "v1.31.0") {
			t.Errorf("%s: its kubeadm is not the new image's after the upgrade", f.ips[i])
		}
	}

	out = run("rollback", "--batch", "2")
	if !strings.Contains(out, "rolled back to kube-standin:1") {
		t.Errorf("rollback output %q", out)
	}
	f.upgraded(t, 2, "kubeadm upgrade apply v1.30.2 --yes --force")
	for i := range 6 {
		if got := f.nodeTool(t, i, "kubeadm"); !strings.Contains(got, "v1.30.2") || strings.Contains(got, "v1.31.0") {
			t.Errorf("%s: its kubeadm is not the old image's after the rollback", f.ips[i])
		}
	}
	if out, err := f.apply(t, f.clusterfile(t, masters, workers)); err != nil || !strings.Contains(out, "up to date") {
		t.Errorf("the original Clusterfile after the rollback: %v\n%s", err, out)
	}

	// cert: each master's API server manifest is moved out and back.
	manifest := func(i int) string {
		return filepath.Join(f.l.Nodes[i].PrivatePath("/etc/kubernetes"), "manifests", "kube-apiserver.yaml")
	}
	for i := range masters {
		if err := os.MkdirAll(filepath.Dir(manifest(i)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(manifest(i), []byte("kind: Pod\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	out = run("cert", "--alt-names", "x.example.com")
	if !strings.Contains(out, "3 masters names x.example.com too") {
		t.Errorf("cert output %q", out)
	}
	var certs, ready []standinCall
	for i, ip := range masters {
		certs = append(certs, f.only(t, ip, "kubeadm init phase certs apiserver --config /etc/kubernetes/kubeadm-certs.yaml"))
		ready = append(ready, f.only(t, ip, "kubectl --kubeconfig /etc/kubernetes/admin.conf --server https://"+ip+":6443 get --raw=/readyz"))
		if ready[i].start < certs[i].end {
			t.Errorf("%s: the API server was restarted before its certificate was issued", ip)
		}
		if b, err := os.ReadFile(manifest(i)); err != nil || string(b) != "kind: Pod\n" {
			t.Errorf("%s: the API server manifest after cert: %q %v", ip, b, err)
		}
		cfg, err := os.ReadFile(filepath.Join(f.l.Nodes[i].PrivatePath("/etc/kubernetes"), "kubeadm-certs.yaml"))
		if err != nil || !strings.Contains(string(cfg), "- x.example.com\n") || !strings.Contains(string(cfg), "advertiseAddress: "+ip+"\n") {
			t.Errorf("%s: kubeadm-certs.yaml %v:\n%s", ip, err, cfg)
		}
	}
	// One master at a time: the next one's certificate after this one's
	// API server answered again.
	var seq []standinCall
	for i := range masters {
		seq = append(seq, standinCall{start: certs[i].start, end: ready[i].end, what: "master " + masters[i]})
	}
	oneAtATime(t, "certificate renewals", seq)
	f.only(t, masters[0], "kubeadm init phase upload-config kubeadm")
	for _, ip := range workers {
		if c := find(f.calls(t, ip), "kubeadm init"); len(c) != 0 {
			t.Errorf("worker %s ran %v", ip, c)
		}
	}
}
