package cli

import (
	"bytes"
	"encoding/json"
	"flag"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/drove-project/drove/protocol"
)

var update = flag.Bool("update", false, "rewrite golden files")

const (
	plainKubefile = "FROM scratch\nENV GREETING=hello\nCOPY scripts scripts\nCMDS [\"sh scripts/hello.sh\"]\n"
	helloScript   = "echo \"$GREETING from $HostIP\" > /tmp/hello-$HostIP.txt\n"
)

// buildImage builds a cluster image from kubefile and files into dataDir's
// store and returns its digest. Builds are reproducible (fixed times).
func buildImage(t *testing.T, dataDir, name, kubefile string, files map[string]string) string {
	t.Helper()
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	return strings.TrimSpace(mustRun(t, dataDir, "build", "-t", name, writeBuildContext(t, kubefile, files)))
}

func buildPlainImage(t *testing.T, dataDir string) string {
	t.Helper()
	return buildImage(t, dataDir, "plain-hello:v1", plainKubefile, map[string]string{"scripts/hello.sh": helloScript})
}

// noCluster makes sure no environment variable points the CLI at a
// cluster.
func noCluster(t *testing.T) {
	t.Setenv("DROVE_SERVER", "")
	t.Setenv("DROVE_TOKEN", "")
}

func TestRunFlagErrors(t *testing.T) {
	noCluster(t)
	d := t.TempDir()
	bad := filepath.Join(t.TempDir(), "Clusterfile")
	if err := os.WriteFile(bad, []byte("apiVersion: sealer.io/v2\nkind: Cluster\nspec:\n  hosts:\n    - ips: [10.0.0.1]\n      roles: [master]\n    - ips: [10.0.0.1]\n      roles: [node]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"run"}, exitUsage, "name the image"},
		{[]string{"run", "x:1"}, exitUsage, "--masters LIST"},
		{[]string{"run", "x:1", "-m", "10.0.0.1", "-o", "json"}, exitUsage, "add --dry-run"},
		{[]string{"run", "x:1", "-m", "10.0.0.1", "--dry-run", "-o", "yaml"}, exitUsage, `unknown output format "yaml"`},
		{[]string{"run", "x:1", "-m", "10.0.0.1", "--seed-node", "n1", "--origin-addr", "10.0.0.9"}, exitUsage, "--origin-addr"},
		{[]string{"run", "x:1", "-m", "10.0.0.1", "--origin-addr", "a:b:c"}, exitUsage, "--origin-addr"},
		{[]string{"run", "x:1", "-m", "10.0.0.300", "--dry-run"}, exitFailed, "--masters"},
		{[]string{"run", "x:1", "-m", "10.0.0.1", "-n", "10.0.0.1", "--dry-run"}, exitFailed, "10.0.0.1"},
		{[]string{"apply"}, exitUsage, "-f FILE"},
		{[]string{"apply", "-f", bad, "--dry-run"}, exitFailed, bad + ":7"},
		{[]string{"join"}, exitUsage, "--masters LIST"},
		{[]string{"delete"}, exitUsage, "--all"},
		{[]string{"delete", "--all", "-n", "10.0.0.2"}, exitUsage, "leave out"},
		{[]string{"delete", "--all", "-o", "json"}, exitUsage, "add --dry-run"},
	} {
		r := runCLI(t, d, "", c.args...)
		if r.code != c.code || !strings.Contains(r.err, c.want) {
			t.Errorf("drove %s: exit %d, stderr %q; want exit %d and %q", strings.Join(c.args, " "), r.code, r.err, c.code, c.want)
		}
	}
}

func TestRunFlagsToOptions(t *testing.T) {
	noCluster(t)
	o := &runOptions{Image: "img:1"}
	fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
	o.addFlags(fs, true)
	err := fs.Parse([]string{"-m", "10.0.0.1-10.0.0.3", "-n", "10.0.0.10,10.0.0.11", "-p", "pw", "--pk", "/k",
		"-e", "CertSANs=a,b", "-e", "X=1", "--cmds", "echo a,b", "--cmds", "date", "--apps", "x,y"})
	if err != nil {
		t.Fatal(err)
	}
	if err := o.complete(fs); err != nil {
		t.Fatal(err)
	}
	if o.SSH.User != "" || o.SSH.Port != 0 || o.SSH.Passwd != "pw" || o.SSH.Pk != "/k" {
		t.Errorf("ssh: %+v: only the flags given may be set", o.SSH)
	}
	if !o.SetCmds || !o.SetApps || !slices.Equal(o.Cmds, []string{"echo a,b", "date"}) || !slices.Equal(o.Apps, []string{"x", "y"}) {
		t.Errorf("cmds %q (set %v), apps %q (set %v)", o.Cmds, o.SetCmds, o.Apps, o.SetApps)
	}
	if !slices.Equal(o.Env, []string{"CertSANs=a,b", "X=1"}) {
		t.Errorf("env %q: -e values keep their commas", o.Env)
	}
	g := &Globals{Streams: Streams{Err: &bytes.Buffer{}}, DataDir: t.TempDir()}
	f, err := o.load(g)
	if err != nil {
		t.Fatal(err)
	}
	c := f.Cluster
	if got := c.Masters(); !slices.Equal(got, []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"}) {
		t.Errorf("masters %v", got)
	}
	if got := c.Nodes(); !slices.Equal(got, []string{"10.0.0.10", "10.0.0.11"}) {
		t.Errorf("nodes %v", got)
	}
	if c.SSH.User != "root" || c.SSH.Port != 22 || c.SSH.Passwd != "pw" {
		t.Errorf("cluster ssh %+v: want root, 22 and the password", c.SSH)
	}
	if !slices.Equal(c.Cmds, o.Cmds) || !slices.Equal(c.AppNames, o.Apps) || c.Image != "img:1" {
		t.Errorf("cluster: %+v", c)
	}

	// With -f, the flags given override the file, the others leave it be.
	cf := filepath.Join(t.TempDir(), "Clusterfile")
	os.WriteFile(cf, []byte(`apiVersion: sealer.io/v2
kind: Cluster
spec:
  image: file:1
  ssh: {user: admin, passwd: filepw, port: "2222"}
  env: [A=file, B=file]
  hosts:
    - ips: [10.0.1.1]
      roles: [master]
    - ips: [10.0.1.2]
      roles: [node]
      env: [B=host]
`), 0o644)
	o2 := &runOptions{}
	fs2 := pflag.NewFlagSet("apply", pflag.ContinueOnError)
	o2.addFlags(fs2, true)
	o2.Clusterfile = cf
	if err := fs2.Parse([]string{"-n", "10.0.1.3", "-e", "B=cli", "-p", "clipw"}); err != nil {
		t.Fatal(err)
	}
	if err := o2.complete(fs2); err != nil {
		t.Fatal(err)
	}
	f2, err := o2.load(g)
	if err != nil {
		t.Fatal(err)
	}
	c2 := f2.Cluster
	if c2.Image != "file:1" || !slices.Equal(c2.Masters(), []string{"10.0.1.1"}) || !slices.Equal(c2.Nodes(), []string{"10.0.1.3"}) {
		t.Errorf("overridden cluster: image %s masters %v nodes %v", c2.Image, c2.Masters(), c2.Nodes())
	}
	if c2.SSH.User != "admin" || c2.SSH.Port != 2222 || c2.SSH.Passwd != "clipw" {
		t.Errorf("ssh %+v: user and port from the file, password from -p", c2.SSH)
	}
}

// TestRunDryRunJSON is the golden plan of a 1-master 2-node plain cluster,
// printed with no coordinator to ask.
func TestRunDryRunJSON(t *testing.T) {
	noCluster(t)
	d := t.TempDir()
	digest := buildPlainImage(t, d)
	r := runCLI(t, d, "", "run", "plain-hello:v1", "-m", "10.0.0.1", "-n", "10.0.0.2,10.0.0.3", "--dry-run", "-o", "json")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.err)
	}
	if !strings.Contains(r.err, "no coordinator reachable") || !strings.Contains(r.err, "not compared") {
		t.Errorf("stderr does not say the revision was not compared: %q", r.err)
	}
	var view struct {
		Phases []struct {
			Name     string `json:"name"`
			Parallel *int   `json:"parallel"`
			Steps    []struct {
				Node    *string `json:"node"`
				Action  *string `json:"action"`
				Command *string `json:"command"`
			} `json:"steps"`
		} `json:"phases"`
	}
	dec := json.NewDecoder(strings.NewReader(r.out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&view); err != nil {
		t.Fatalf("output is not the dry-run schema: %v\n%s", err, r.out)
	}
	for _, ph := range view.Phases {
		for _, s := range ph.Steps {
			if ph.Parallel == nil || s.Node == nil || s.Action == nil || s.Command == nil {
				t.Fatalf("phase %s: a field is missing: %s", ph.Name, r.out)
			}
		}
	}
	got := strings.ReplaceAll(r.out, digest, "sha256:IMAGE")
	golden := filepath.Join("testdata", "run-dryrun-plain.json")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("dry-run output differs from %s (go test -run TestRunDryRunJSON -update rewrites it):\n%s", golden, got)
	}
	// The table shows the same steps.
	tab := mustRun(t, d, "run", "plain-hello:v1", "-m", "10.0.0.1", "-n", "10.0.0.2,10.0.0.3", "--dry-run")
	if !strings.HasPrefix(tab, "PHASE") || strings.Count(tab, "\n") != 1+10 || !strings.Contains(tab, "launch      1         10.0.0.1") {
		t.Errorf("table:\n%s", tab)
	}
}

// labMembers are three alive agents as a coordinator lists them.
func labMembers() []protocol.Member {
	return []protocol.Member{
		{ID: "m1", Address: "127.0.0.11", Roles: []string{"master"}, State: "alive", Registered: true, Coord: true, GossipPort: 7946},
		{ID: "n1", Address: "127.0.0.12", Roles: []string{"node"}, State: "alive", Registered: true},
		{ID: "n2", Address: "127.0.0.13", Roles: []string{"node"}, State: "alive", Registered: true},
		{ID: "n3", Address: "127.0.0.14", Roles: []string{"node"}, State: "alive", Registered: true},
	}
}

// planNodes lists every node a plan's steps target, and checks that each
// step's NodeEnv is keyed by those nodes.
func planNodes(t *testing.T, p protocol.PlanSpec) []string {
	t.Helper()
	var out []string
	for _, ph := range p.Phases {
		for _, st := range ph.Steps {
			for k := range st.NodeEnv {
				if !slices.Contains(st.Target.Nodes, k) {
					t.Errorf("step %s: nodeEnv for %s, which it does not target (%v)", st.Name, k, st.Target.Nodes)
				}
			}
			for _, n := range st.Target.Nodes {
				out = appendNew(out, n)
			}
		}
	}
	slices.Sort(out)
	return out
}

func TestRunAgainstCoordinator(t *testing.T) {
	noCluster(t)
	d := t.TempDir()
	buildPlainImage(t, d)
	fc := startFakeCoord(t)
	fc.setMembers(labMembers()...)
	run := func(extra ...string) droveRun {
		args := append([]string{"run", "plain-hello:v1", "-m", "127.0.0.11", "--seed-node", "m1"}, extra...)
		return runCLI(t, d, "", append(args, fc.args()...)...)
	}

	r := run("-n", "127.0.0.12,127.0.0.13")
	if r.code != 0 {
		t.Fatalf("install: exit %d\n%s", r.code, r.err)
	}
	subs := fc.submitted()
	if len(subs) != 1 || !strings.HasPrefix(subs[0].Plan.Name, "install ") {
		t.Fatalf("submitted %d plans, want the install", len(subs))
	}
	install := subs[0]
	if got := planNodes(t, install.Plan); !slices.Equal(got, []string{"m1", "n1", "n2"}) {
		t.Errorf("install targets %v: want the node IDs m1, n1, n2", got)
	}
	dist := install.Plan.Phases[0].Steps[0].Action.Distribution
	if dist == nil || dist.ID != install.PlanID || !slices.Equal(dist.Seeds, []string{"m1"}) {
		t.Errorf("distribution %+v: want the plan's ID and seed m1", dist)
	}
	if install.Revision == nil || !strings.Contains(install.Revision.Clusterfile, "127.0.0.13") || install.Revision.Runtime != "plain" {
		t.Fatalf("revision %+v", install.Revision)
	}
	if strings.Contains(install.Revision.Clusterfile, "passwd") {
		t.Errorf("the revision keeps SSH settings:\n%s", install.Revision.Clusterfile)
	}
	if !strings.Contains(r.out, "cluster applied (revision 1)") {
		t.Errorf("stdout %q", r.out)
	}

	// The same again: nothing is submitted.
	r = run("-n", "127.0.0.12,127.0.0.13")
	if r.code != 0 || !strings.Contains(r.out, "cluster is up to date (revision 1)") || len(fc.submitted()) != 1 {
		t.Fatalf("second run: exit %d, %d plans, stdout %q\n%s", r.code, len(fc.submitted()), r.out, r.err)
	}

	// One node fewer: a scale-down of that node only.
	r = run("-n", "127.0.0.12")
	if r.code != 0 || len(fc.submitted()) != 2 {
		t.Fatalf("scale-down: exit %d, %d plans\n%s", r.code, len(fc.submitted()), r.err)
	}
	down := fc.submitted()[1]
	if !strings.HasPrefix(down.Plan.Name, "scale-down") || !slices.Equal(planNodes(t, down.Plan), []string{"n2"}) {
		t.Errorf("scale-down plan %q targets %v", down.Plan.Name, planNodes(t, down.Plan))
	}
	if strings.Contains(down.Revision.Clusterfile, "127.0.0.13") {
		t.Errorf("revision after the scale-down still lists 127.0.0.13")
	}

	// join: only the new node runs anything (m1 serves the image).
	r = runCLI(t, d, "", append([]string{"join", "-n", "127.0.0.14"}, fc.args()...)...)
	if r.code != 0 || len(fc.submitted()) != 3 {
		t.Fatalf("join: exit %d, %d plans\n%s", r.code, len(fc.submitted()), r.err)
	}
	up := fc.submitted()[2]
	for _, ph := range up.Plan.Phases {
		for _, st := range ph.Steps {
			want := []string{"n3"}
			if st.Action.Kind == protocol.ActionDistribute {
				want = []string{"n3", "m1"}
			}
			if !slices.Equal(st.Target.Nodes, want) {
				t.Errorf("scale-up step %s targets %v, want %v", st.Name, st.Target.Nodes, want)
			}
		}
	}

	// A changed env: the files are rendered again on every host, nothing
	// else runs.
	r = runCLI(t, d, "", append([]string{"run", "plain-hello:v1", "-m", "127.0.0.11", "-n", "127.0.0.12,127.0.0.14", "-e", "GREETING=bye"}, fc.args()...)...)
	if r.code != 0 || len(fc.submitted()) != 4 {
		t.Fatalf("env change: exit %d, %d plans\n%s", r.code, len(fc.submitted()), r.err)
	}
	re := fc.submitted()[3]
	var phases []string
	for _, ph := range re.Plan.Phases {
		phases = append(phases, ph.Name)
	}
	if !slices.Equal(phases, []string{"distribute", "render"}) || !slices.Equal(planNodes(t, re.Plan), []string{"m1", "n1", "n3"}) {
		t.Errorf("re-render plan: phases %v on %v", phases, planNodes(t, re.Plan))
	}
	if env := re.Plan.Phases[1].Steps[0].Action.Env; env["GREETING"] != "bye" {
		t.Errorf("render env %v", env)
	}

	// delete --nodes: that host's scale-down, and a revision without it.
	r = runCLI(t, d, "", append([]string{"delete", "--nodes", "127.0.0.99", "--force"}, fc.args()...)...)
	if r.code == 0 || !strings.Contains(r.err, "127.0.0.99: not a host of the cluster") {
		t.Errorf("delete of a stranger: exit %d, %q", r.code, r.err)
	}
	r = runCLI(t, d, "", append([]string{"delete", "--nodes", "127.0.0.14", "--force", "--prune"}, fc.args()...)...)
	if r.code != 0 || len(fc.submitted()) != 5 {
		t.Fatalf("delete --nodes: exit %d, %d plans\n%s", r.code, len(fc.submitted()), r.err)
	}
	del := fc.submitted()[4]
	if last := del.Plan.Phases[len(del.Plan.Phases)-1]; !strings.HasPrefix(del.Plan.Name, "scale-down") || last.Name != "prune" ||
		!slices.Equal(planNodes(t, del.Plan), []string{"n3"}) {
		t.Errorf("delete --nodes --prune: plan %q, last phase %s, on %v", del.Plan.Name, last.Name, planNodes(t, del.Plan))
	}
	if rc := del.Revision.Clusterfile; strings.Contains(rc, "127.0.0.14") || !strings.Contains(rc, "127.0.0.12") {
		t.Errorf("revision after delete --nodes:\n%s", rc)
	}
	r = run("-n", "127.0.0.12", "-e", "GREETING=bye")
	if !strings.Contains(r.out, "cluster is up to date (revision 5)") || len(fc.submitted()) != 5 {
		t.Errorf("after delete --nodes the same hosts are up to date: %q %s", r.out, r.err)
	}

	// Another image: refused.
	buildImage(t, d, "plain-hello:v2", strings.Replace(plainKubefile, "ENV GREETING=hello", "ENV GREETING=hi", 1), map[string]string{"scripts/hello.sh": helloScript})
	r = runCLI(t, d, "", append([]string{"run", "plain-hello:v2", "-m", "127.0.0.11"}, fc.args()...)...)
	if r.code == 0 || !strings.Contains(r.err, "drove upgrade") || len(fc.submitted()) != 5 {
		t.Errorf("another image: exit %d, %d plans, stderr %q", r.code, len(fc.submitted()), r.err)
	}
}

// freePort is a TCP port nothing listens on.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

func TestRunUnreachableHostSubmitsNothing(t *testing.T) {
	noCluster(t)
	d := t.TempDir()
	buildPlainImage(t, d)
	fc := startFakeCoord(t)
	fc.setMembers(labMembers()[0])
	r := runCLI(t, d, "", append([]string{"run", "plain-hello:v1", "-m", "127.0.0.11", "-n", "127.0.0.1", "-p", "pw",
		"--port", strconv.Itoa(freePort(t)), "--known-hosts", filepath.Join(t.TempDir(), "known_hosts"), "--seed-node", "m1"}, fc.args()...)...)
	if r.code == 0 || !strings.Contains(r.err, "host 127.0.0.1") || !strings.Contains(r.err, "nothing was submitted") {
		t.Errorf("exit %d, stderr %q: want an error naming the host", r.code, r.err)
	}
	if n := len(fc.submitted()); n != 0 {
		t.Errorf("%d plans submitted", n)
	}

	// No credentials at all: said before anything is tried.
	t.Setenv("HOME", t.TempDir())
	r = runCLI(t, d, "", append([]string{"run", "plain-hello:v1", "-m", "127.0.0.11", "-n", "127.0.0.1", "--seed-node", "m1"}, fc.args()...)...)
	if r.code == 0 || !strings.Contains(r.err, "no SSH credentials for host 127.0.0.1") || !strings.Contains(r.err, "--pk") {
		t.Errorf("exit %d, stderr %q", r.code, r.err)
	}
}

func TestRunFailureNamesStepNodeAndOutput(t *testing.T) {
	noCluster(t)
	d := t.TempDir()
	buildPlainImage(t, d)
	fc := startFakeCoord(t)
	fc.setMembers(labMembers()...)
	var lines []string
	for i := 1; i <= 30; i++ {
		lines = append(lines, "line "+strconv.Itoa(i))
	}
	fc.planState = func(s protocol.PlanSubmit) protocol.PlanDetail {
		d := succeeded(s)
		d.Summary.State = "failed"
		last := &d.Phases[len(d.Phases)-1]
		last.Steps[0].State, last.Steps[0].ExitCode, last.Steps[0].Output = protocol.StateFailed, 3, strings.Join(lines, "\n")
		return d
	}
	r := runCLI(t, d, "", append([]string{"run", "plain-hello:v1", "-m", "127.0.0.11", "-n", "127.0.0.12", "--seed-node", "m1"}, fc.args()...)...)
	if r.code != exitFailed {
		t.Fatalf("exit %d", r.code)
	}
	for _, want := range []string{"phase launch, step cmd-1 on m1 (127.0.0.11)", "exit 3", "line 30", "line 11"} {
		if !strings.Contains(r.err, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.err)
		}
	}
	if strings.Contains(r.err, "line 10\n") {
		t.Errorf("stderr quotes more than the output's tail:\n%s", r.err)
	}
	// The failed install recorded no revision; delete --all still knows
	// the hosts from this machine's last run, and asks first: on a
	// terminal, or not at all without one.
	r = runCLI(t, d, "y\n", append([]string{"delete", "--all"}, fc.args()...)...)
	if r.code == 0 || !strings.Contains(r.err, "no terminal") || !strings.Contains(r.err, "--force") || len(fc.submitted()) != 1 {
		t.Fatalf("delete without a terminal: exit %d, %d plans, %q", r.code, len(fc.submitted()), r.err)
	}
	saved := interactive
	t.Cleanup(func() { interactive = saved })
	interactive = func(*Globals) bool { return true }
	r = runCLI(t, d, "n\n", append([]string{"delete", "--all"}, fc.args()...)...)
	if r.code == 0 || !strings.Contains(r.err, "Continue? [y/N]") || !strings.Contains(r.err, "not confirmed") || len(fc.submitted()) != 1 {
		t.Fatalf("unconfirmed delete: exit %d, %d plans, %q", r.code, len(fc.submitted()), r.err)
	}
	fc.planState = nil
	r = runCLI(t, d, "y\n", append([]string{"delete", "--all"}, fc.args()...)...)
	if r.code != 0 || len(fc.submitted()) != 2 {
		t.Fatalf("delete: exit %d, %d plans\n%s", r.code, len(fc.submitted()), r.err)
	}
	del := fc.submitted()[1]
	if !strings.HasPrefix(del.Plan.Name, "delete ") || !slices.Equal(planNodes(t, del.Plan), []string{"m1", "n1"}) {
		t.Errorf("delete plan %q on %v", del.Plan.Name, planNodes(t, del.Plan))
	}
	if del.Revision == nil || del.Revision.Clusterfile != "" {
		t.Errorf("delete --all must clear the revision: %+v", del.Revision)
	}
	if _, err := os.Stat(attemptPath(&Globals{DataDir: d})); !os.IsNotExist(err) {
		t.Errorf("the last run is still recorded after delete --all: %v", err)
	}
}

// A host taken out whose agent is gone cannot be cleaned; the revision
// without it is still recorded (by a plan that does nothing).
func TestRunRemovedHostWithoutAgent(t *testing.T) {
	noCluster(t)
	d := t.TempDir()
	buildPlainImage(t, d)
	fc := startFakeCoord(t)
	fc.setMembers(labMembers()...)
	args := append([]string{"run", "plain-hello:v1", "-m", "127.0.0.11", "--seed-node", "m1"}, fc.args()...)
	if r := runCLI(t, d, "", append(args, "-n", "127.0.0.12,127.0.0.13")...); r.code != 0 {
		t.Fatalf("install: %s", r.err)
	}
	fc.setMembers(labMembers()[:2]...)
	r := runCLI(t, d, "", append(args, "-n", "127.0.0.12")...)
	if r.code != 0 || len(fc.submitted()) != 2 {
		t.Fatalf("exit %d, %d plans\n%s", r.code, len(fc.submitted()), r.err)
	}
	rec := fc.submitted()[1]
	if rec.Plan.Name != "record revision" || rec.Revision == nil || strings.Contains(rec.Revision.Clusterfile, "127.0.0.13") {
		t.Errorf("plan %q, revision %+v", rec.Plan.Name, rec.Revision)
	}
	if !strings.Contains(r.err, "no alive agent on 127.0.0.13") {
		t.Errorf("stderr does not warn: %s", r.err)
	}
	if r = runCLI(t, d, "", append(args, "-n", "127.0.0.12")...); !strings.Contains(r.out, "up to date") {
		t.Errorf("third run: %q %s", r.out, r.err)
	}
}
