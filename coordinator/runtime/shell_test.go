package runtime

import (
	"bytes"
	"context"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drove-project/drove/protocol"
)

// The generated scripts run with /bin/sh -c on the nodes. These tests run
// them for real, with stand-ins for kubeadm and kubectl (which cannot be
// installed here) and with the host paths they write (/etc/hosts,
// /etc/kubernetes, /root/.kube) moved into a temporary directory.

// sandbox is a temporary root for one script run.
type sandbox struct {
	dir, bin, hosts, etcKube, rootKube, log string
}

func newSandbox(t *testing.T) *sandbox {
	t.Helper()
	dir := t.TempDir()
	s := &sandbox{dir: dir, bin: filepath.Join(dir, "bin"), hosts: filepath.Join(dir, "hosts"),
		etcKube: filepath.Join(dir, "etc-kubernetes"), rootKube: filepath.Join(dir, "root-kube"), log: filepath.Join(dir, "calls.log")}
	for _, d := range []string{s.bin, s.etcKube} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(s.hosts, []byte("127.0.0.1 localhost\n10.0.0.1 keep-me\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return s
}

// tool installs a stand-in command that logs its arguments and runs body.
func (s *sandbox) tool(t *testing.T, name, body string) {
	t.Helper()
	script := "#!/bin/sh\necho \"" + name + " $*\" >> " + quote(s.log) + "\n" + body + "\n"
	if err := os.WriteFile(filepath.Join(s.bin, name), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
}

// run renders cmd as the coordinator would (outputs from outs), moves the
// host paths into the sandbox, and runs it with /bin/sh -c.
func (s *sandbox) run(t *testing.T, cmd string, outs, env map[string]string) (stdout string, err error) {
	t.Helper()
	cmd = renderTemplate(t, cmd, outs)
	cmd = strings.NewReplacer("/etc/hosts", s.hosts, "/etc/kubernetes", s.etcKube, "/root/.kube", s.rootKube).Replace(cmd)
	for _, p := range []string{"/etc/", "/root/", "/usr/bin/", "/var/lib/"} {
		if strings.Contains(cmd, p) {
			t.Fatalf("the script still touches %s on this machine:\n%s", p, cmd)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := exec.CommandContext(ctx, "/bin/sh", "-c", cmd)
	c.Dir = s.dir
	c.Env = append(os.Environ(), "PATH="+s.bin+":"+os.Getenv("PATH"), "ROOTFS="+s.dir)
	for k, v := range env {
		c.Env = append(c.Env, k+"="+v)
	}
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	err = c.Run()
	if err != nil {
		t.Logf("stderr: %s", errb.String())
	}
	return out.String(), err
}

func (s *sandbox) read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

// outputsOf parses ::drove-output lines as the agent does.
func outputsOf(stdout string) map[string]string {
	out := map[string]string{}
	for _, l := range strings.Split(stdout, "\n") {
		if rest, ok := strings.CutPrefix(l, outputPrefix); ok {
			if k, v, ok := strings.Cut(rest, "="); ok {
				out[k] = v
			}
		}
	}
	return out
}

func TestHostsFunction(t *testing.T) {
	s := newSandbox(t)
	d := cluster3x3("plain")
	p := install(t, d)
	_, st := findStep(t, p, "host-aliases")
	for range 2 { // a rerun leaves the same file
		if _, err := s.run(t, st.Action.Command, nil, nil); err != nil {
			t.Fatal(err)
		}
		if got, want := s.read(t, s.hosts), "127.0.0.1 localhost\n10.0.0.1 keep-me\n10.0.0.100 reg.local git.local # drove:alias\n"; got != want {
			t.Fatalf("hosts\n%q\nwant\n%q", got, want)
		}
	}
	del, err := mustLookup(t, "plain").Delete(d)
	if err != nil {
		t.Fatal(err)
	}
	_, st = findStep(t, del, "remove-host-aliases")
	if _, err := s.run(t, st.Action.Command, nil, nil); err != nil {
		t.Fatal(err)
	}
	if got := s.read(t, s.hosts); got != "127.0.0.1 localhost\n10.0.0.1 keep-me\n" {
		t.Fatalf("after removal: %q", got)
	}
}

func TestJoinInfoScript(t *testing.T) {
	s := newSandbox(t)
	s.tool(t, "kubeadm", `case "$1 $2" in
"token create") echo "kubeadm join apiserver.cluster.local:6443 --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash sha256:5ca1ab1e " ;;
"init phase") echo "[upload-certs] Storing the certificates in Secret"; echo "[upload-certs] Using certificate key:"; echo "c0ffee" ;;
*) exit 3 ;;
esac`)
	p := install(t, cluster3x3("kubernetes"))
	_, st := findStep(t, p, stepJoinInfo)
	stdout, err := s.run(t, st.Action.Command, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{outToken: "abcdef.0123456789abcdef", outCACertHash: "sha256:5ca1ab1e", outCertificateKey: "c0ffee"}
	if got := outputsOf(stdout); !maps.Equal(got, want) {
		t.Fatalf("outputs %v, want %v", got, want)
	}
	if log := s.read(t, s.log); !strings.Contains(log, "kubeadm init phase upload-certs --upload-certs --config "+s.etcKube+"/kubeadm-config.yaml") &&
		!strings.Contains(log, "kubeadm init phase upload-certs --upload-certs\n") {
		t.Errorf("calls:\n%s", log)
	}
	// No token: the step fails instead of feeding joins an empty token.
	s.tool(t, "kubeadm", `exit 0`)
	if _, err := s.run(t, st.Action.Command, nil, nil); err == nil {
		t.Fatal("join-info succeeded without a token")
	}
}

func TestJoinScripts(t *testing.T) {
	s := newSandbox(t)
	s.tool(t, "kubeadm", `if [ "$1" = join ]; then
	mkdir -p `+quote(s.etcKube+"/manifests")+`
	: > `+quote(s.etcKube+"/kubelet.conf")+`
	: > `+quote(s.etcKube+"/manifests/etcd.yaml")+`
	echo admin > `+quote(s.etcKube+"/admin.conf")+`
fi`)
	p := install(t, cluster3x3("kubernetes"))
	outs := map[string]string{stepJoinInfo + "/" + outToken: "tok.en", stepJoinInfo + "/" + outCACertHash: "sha256:h", stepJoinInfo + "/" + outCertificateKey: "k3y"}

	_, jm := findStep(t, p, "join-masters")
	if _, err := s.run(t, jm.Action.Command, outs, map[string]string{"HostIP": m1}); err != nil {
		t.Fatal(err)
	}
	log := s.read(t, s.log)
	want := "kubeadm join apiserver.cluster.local:6443 --token tok.en --discovery-token-ca-cert-hash sha256:h --control-plane --certificate-key k3y --apiserver-advertise-address " + m1
	if !strings.Contains(log, want) {
		t.Fatalf("calls:\n%s\nwant %s", log, want)
	}
	// After the join the master's API server name points at itself.
	if hosts := s.read(t, s.hosts); !strings.HasSuffix(hosts, m1+" apiserver.cluster.local # drove:apiserver\n") || strings.Count(hosts, "apiserver.cluster.local") != 1 {
		t.Errorf("hosts:\n%s", hosts)
	}
	if s.read(t, filepath.Join(s.rootKube, "config")) != "admin\n" {
		t.Error("admin kubeconfig not copied")
	}
	// A rerun after an interruption finds the node joined and does not
	// join again.
	if _, err := s.run(t, jm.Action.Command, outs, map[string]string{"HostIP": m1}); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(s.read(t, s.log), "kubeadm join"); n != 1 {
		t.Errorf("kubeadm join ran %d times", n)
	}
	// Interrupted before the etcd member was added: the rerun joins.
	if err := os.Remove(filepath.Join(s.etcKube, "manifests", "etcd.yaml")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.run(t, jm.Action.Command, outs, map[string]string{"HostIP": m1}); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(s.read(t, s.log), "kubeadm join"); n != 2 {
		t.Errorf("an unfinished master join is not retried: kubeadm join ran %d times", n)
	}

	w := newSandbox(t)
	w.tool(t, "kubeadm", `exit 0`)
	_, jw := findStep(t, p, "join-workers")
	if _, err := w.run(t, jw.Action.Command, outs, map[string]string{"HostIP": w0}); err != nil {
		t.Fatal(err)
	}
	if log := w.read(t, w.log); !strings.Contains(log, "kubeadm join apiserver.cluster.local:6443 --token tok.en --discovery-token-ca-cert-hash sha256:h --cri-socket") ||
		strings.Contains(log, "control-plane") {
		t.Errorf("worker join:\n%s", log)
	}
	if hosts := w.read(t, w.hosts); !strings.Contains(hosts, "127.0.0.1 apiserver.cluster.local # drove:apiserver\n") {
		t.Errorf("worker hosts:\n%s", hosts)
	}
}

func TestKubeadmInitScript(t *testing.T) {
	s := newSandbox(t)
	admin := filepath.Join(s.etcKube, "admin.conf")
	s.tool(t, "kubeadm", `echo admin > `+quote(admin))
	// kubectl finds cluster-info only once init has run.
	s.tool(t, "kubectl", `grep -q ran `+quote(s.log))
	p := install(t, cluster3x3("kubernetes"))
	_, st := findStep(t, p, "kubeadm-init")
	for range 2 {
		if _, err := s.run(t, st.Action.Command, nil, nil); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(s.log, append([]byte(s.read(t, s.log)), "ran\n"...), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	log := s.read(t, s.log)
	if n := strings.Count(log, "kubeadm init --config "+s.etcKube+"/kubeadm-config.yaml --upload-certs"); n != 1 {
		t.Errorf("kubeadm init ran %d times over two runs:\n%s", n, log)
	}
	if hosts := s.read(t, s.hosts); !strings.HasSuffix(hosts, m0+" apiserver.cluster.local # drove:apiserver\n") {
		t.Errorf("hosts:\n%s", hosts)
	}
	if s.read(t, filepath.Join(s.rootKube, "config")) != "admin\n" {
		t.Error("admin kubeconfig not copied")
	}
}

func TestNodeScript(t *testing.T) {
	s := newSandbox(t)
	s.tool(t, "kubectl", `case "$1 $2" in
"get nodes") printf 'node-a\t10.0.0.11\nnode-b\t10.0.0.12 fd00::12\nnode-c\t10.0.0.1\n' ;;
"taint node") case "$*" in *-) exit 1 ;; esac ;;
esac`)
	d := cluster3x3("kubernetes")
	d.Hosts = []Host{d.Hosts[0], d.Hosts[3], d.Hosts[4]} // m0, w0, w1
	p := install(t, d)
	_, st := findStep(t, p, "node-labels")
	if _, err := s.run(t, st.Action.Command, nil, nil); err != nil {
		t.Fatal(err)
	}
	log := s.read(t, s.log)
	for _, want := range []string{
		"kubectl label node node-c --overwrite node-role.kubernetes.io/master=\n",
		"kubectl taint node node-c node-role.kubernetes.io/control-plane:NoSchedule-\n",
		"kubectl label node node-a --overwrite node-role.kubernetes.io/node= node-role.kubernetes.io/gpu= disk=ssd\n",
		"kubectl taint node node-b --overwrite gpu=true:NoSchedule\n",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("calls lack %q:\n%s", want, log)
		}
	}
	// A host Kubernetes does not know fails the step.
	bad := nodeScript("kubectl", []nodeChange{{IP: "10.0.0.99", Labels: []string{"a=b"}}})
	if _, err := s.run(t, bad, nil, nil); err == nil {
		t.Fatal("labelling a missing node succeeded")
	}
}

// TestScriptsParse checks every shell command of every plan with sh -n,
// after rendering its templates as the coordinator would.
func TestScriptsParse(t *testing.T) {
	seen := map[string]bool{}
	for _, rt := range Names() {
		d := cluster3x3(rt)
		d.Hooks = []Hook{{Name: "h", Type: "SHELL", Phase: "PreInit|pre-install", Data: "echo 'it''s' {{x}}"}}
		if rt != "plain" {
			d.Hooks = append(d.Hooks, Hook{Name: "c", Type: "CLUSTERCHECK", Phase: "PreGuest"},
				Hook{Name: "n", Type: "HOSTNAME", Phase: "PreInit", Data: w0 + " a"})
		}
		r := mustLookup(t, rt)
		newer := d
		newer.KubeVersion = "v1.28.0"
		var plans []protocol.PlanSpec
		for _, build := range []func() (protocol.PlanSpec, error){
			func() (protocol.PlanSpec, error) { return r.Install(d) },
			func() (protocol.PlanSpec, error) { u := d; u.Hosts = d.Hosts[:4]; return r.ScaleUp(u, d.Hosts[4:]) },
			func() (protocol.PlanSpec, error) { return r.ScaleDown(d, []string{m2, w0}) },
			func() (protocol.PlanSpec, error) { return r.Delete(d) },
			func() (protocol.PlanSpec, error) { return r.Upgrade(d, newer) },
		} {
			p, err := build()
			if err != nil {
				t.Fatalf("%s: %v", rt, err)
			}
			plans = append(plans, p)
		}
		for _, p := range plans {
			for _, ph := range p.Phases {
				for _, st := range ph.Steps {
					if st.Action.Kind != kindShell || seen[st.Action.Command] {
						continue
					}
					seen[st.Action.Command] = true
					refs, err := templateRefs(st.Action)
					if err != nil {
						t.Fatal(err)
					}
					outs := map[string]string{}
					for _, r := range refs {
						outs[r.step+"/"+r.name] = "x"
					}
					cmd := renderTemplate(t, st.Action.Command, outs)
					c := exec.Command("/bin/sh", "-n")
					c.Stdin = strings.NewReader(cmd)
					if out, err := c.CombinedOutput(); err != nil {
						t.Errorf("%s %s: %s: sh -n: %v %s\n%s", rt, p.Name, st.Name, err, out, cmd)
					}
				}
			}
		}
	}
	if len(seen) < 40 {
		t.Fatalf("only %d scripts checked", len(seen))
	}
	// And the checker is not vacuous.
	c := exec.Command("/bin/sh", "-n")
	c.Stdin = strings.NewReader("if true; then\n")
	if c.Run() == nil {
		t.Fatal("sh -n accepts a broken script")
	}
}
