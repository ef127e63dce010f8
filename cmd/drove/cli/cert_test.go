package cli

import (
	"slices"
	"strings"
	"testing"

	"github.com/drove-project/drove/layers/clusterfile"
	"github.com/drove-project/drove/layers/render"
)

func TestCertAddsSANs(t *testing.T) {
	noCluster(t)
	d := t.TempDir()
	fc := startFakeCoord(t)
	cli := func(args ...string) droveRun { return runCLI(t, d, "", append(args, fc.args()...)...) }
	kubeCluster(t, d, fc)
	if r := cli("upgrade", "k8s:v2", "--seed-node", "m1"); r.code != 0 {
		t.Fatalf("upgrade: %s", r.err)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"cert"}, "--alt-names NAME"},
		{[]string{"cert", "--alt-names", "a b.example"}, `"a b.example" is neither`},
		{[]string{"cert", "--alt-names=-x.example"}, "neither an IP address nor a DNS name"},
	} {
		if r := cli(c.args...); r.code != exitUsage || !strings.Contains(r.err, c.want) {
			t.Errorf("drove %s: exit %d, %q; want a usage error with %q", strings.Join(c.args, " "), r.code, r.err, c.want)
		}
	}

	r := cli("cert", "--alt-names", "x.example.com,10.0.0.100", "--alt-names", "*.apps.example.com")
	if r.code != 0 || len(fc.submitted()) != 3 {
		t.Fatalf("cert: exit %d, %d plans\n%s", r.code, len(fc.submitted()), r.err)
	}
	p := fc.submitted()[2]
	if got, want := phasesOf(p.Plan), []string{"certs-master-1", "upload-config"}; !slices.Equal(got, want) {
		t.Errorf("phases %v, want %v", got, want)
	}
	if got := planNodes(t, p.Plan); !slices.Equal(got, []string{"m1"}) {
		t.Errorf("the plan runs on %v, want the master only", got)
	}
	_, cfg := stepOf(t, p.Plan, "certs-config-1")
	for _, san := range []string{"x.example.com", "10.0.0.100", "'*.apps.example.com'", "apiserver.cluster.local", "127.0.0.11"} {
		if !strings.Contains(cfg.Action.Content, "- "+san+"\n") {
			t.Errorf("kubeadm config lacks SAN %s:\n%s", san, cfg.Action.Content)
		}
	}
	if !strings.Contains(cfg.Action.Content, "kubernetesVersion: v1.31.0") {
		t.Errorf("the config is not the running version's:\n%s", cfg.Action.Content)
	}
	rev := p.Revision
	f, err := clusterfile.Parse("revision", []byte(rev.Clusterfile))
	if err != nil {
		t.Fatal(err)
	}
	if got := clusterfile.EnvMap(f.Cluster.Env)["CertSANs"]; !slices.Equal(got, []string{"x.example.com;10.0.0.100;*.apps.example.com"}) {
		t.Errorf("revision CertSANs %q", got)
	}
	if rev.Image != "k8s:v2" || rev.PreviousImage != "k8s:v1" {
		t.Errorf("cert changed the revision's images: %+v (a rollback must still go back)", rev)
	}
	if !strings.Contains(r.out, "names x.example.com, 10.0.0.100, *.apps.example.com too") || !strings.Contains(r.err, "CertSANs=") {
		t.Errorf("stdout %q stderr %q", r.out, r.err)
	}

	// Names it has already: nothing runs.
	if r := cli("cert", "--alt-names", "10.0.0.100"); r.code != 0 || !strings.Contains(r.out, "nothing to do") || len(fc.submitted()) != 3 {
		t.Errorf("cert of known names: exit %d, %d plans, %q", r.code, len(fc.submitted()), r.out)
	}
	// A later upgrade keeps them.
	if r := cli("rollback", "--seed-node", "m1"); r.code != 0 || !strings.Contains(fc.submitted()[3].Revision.Clusterfile, "x.example.com") {
		t.Errorf("rollback after cert: exit %d\n%s", r.code, r.err)
	}
}

func TestCertRefusesOtherRuntimes(t *testing.T) {
	noCluster(t)
	d := t.TempDir()
	buildPlainImage(t, d)
	fc := startFakeCoord(t)
	fc.setMembers(labMembers()...)
	args := fc.args()
	if r := runCLI(t, d, "", append([]string{"run", "plain-hello:v1", "-m", "127.0.0.11", "--seed-node", "m1"}, args...)...); r.code != 0 {
		t.Fatalf("install: %s", r.err)
	}
	r := runCLI(t, d, "", append([]string{"cert", "--alt-names", "x.example.com"}, args...)...)
	if r.code == 0 || !strings.Contains(r.err, "not supported") || !strings.Contains(r.err, "runs plain") || len(fc.submitted()) != 1 {
		t.Errorf("cert on a plain cluster: exit %d, %q", r.code, r.err)
	}
}

// FuzzValidAltName: a name --alt-names accepts survives the CertSANs env
// (one list entry, itself) and holds nothing a shell or YAML would read
// as more than a word.
func FuzzValidAltName(f *testing.F) {
	for _, s := range []string{"x.example.com", "*.apps.example.com", "10.0.0.1", "fd00::1", "a;b", "a b", "-x", "fe80::1%eth0", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !validAltName(s) {
			return
		}
		if s == "" || strings.ContainsAny(s, " \t\r\n;,'\"$`\\{}%") {
			t.Fatalf("accepted %q", s)
		}
		env, err := render.ParseEnv([]string{render.KeyCertSANs + "=" + s})
		if err != nil || !slices.Equal(env[render.KeyCertSANs], []string{s}) {
			t.Fatalf("%q as CertSANs: %v %v", s, env, err)
		}
	})
}
