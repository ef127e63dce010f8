package cli

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/drove-project/drove/protocol"
)

// buildKubeImage builds a kubernetes-runtime image of a Kubernetes version
// (its bin/kubeadm is never run here) and returns its digest.
func buildKubeImage(t *testing.T, dataDir, name, version, runtimeLabel string) string {
	t.Helper()
	kubefile := "FROM scratch\nLABEL cluster.alpha.sealer.io/cluster-runtime-type=" + runtimeLabel + "\nKUBEVERSION " + version + "\nCOPY bin bin\n"
	return buildImage(t, dataDir, name, kubefile, map[string]string{"bin/kubeadm": "#!/bin/sh\necho " + version + "\n"})
}

// kubeCluster installs k8s:v1 (1.30.2) on m1 (master) and n1, n2 through
// the fake coordinator, and returns the image digests by name.
func kubeCluster(t *testing.T, d string, fc *fakeCoord) map[string]string {
	t.Helper()
	digests := map[string]string{
		"k8s:v1":  buildKubeImage(t, d, "k8s:v1", "1.30.2", "kubernetes"),
		"k8s:v2":  buildKubeImage(t, d, "k8s:v2", "1.31.0", "kubernetes"),
		"k8s:v4":  buildKubeImage(t, d, "k8s:v4", "1.33.0", "kubernetes"),
		"k3s:v2":  buildKubeImage(t, d, "k3s:v2", "1.31.0", "k3s"),
		"plain:1": buildPlainImage(t, d),
	}
	fc.setMembers(labMembers()...)
	r := runCLI(t, d, "", append([]string{"run", "k8s:v1", "-m", "127.0.0.11", "-n", "127.0.0.12,127.0.0.13", "--seed-node", "m1"}, fc.args()...)...)
	if r.code != 0 {
		t.Fatalf("install: exit %d\n%s", r.code, r.err)
	}
	return digests
}

func stepOf(t *testing.T, p protocol.PlanSpec, name string) (string, protocol.StepSpec) {
	t.Helper()
	for _, ph := range p.Phases {
		for _, st := range ph.Steps {
			if st.Name == name {
				return ph.Name, st
			}
		}
	}
	t.Fatalf("plan %q has no step %s", p.Name, name)
	return "", protocol.StepSpec{}
}

func phasesOf(p protocol.PlanSpec) []string {
	var out []string
	for _, ph := range p.Phases {
		out = append(out, ph.Name)
	}
	return out
}

func TestUpgradeAndRollback(t *testing.T) {
	noCluster(t)
	d := t.TempDir()
	fc := startFakeCoord(t)
	cli := func(args ...string) droveRun { return runCLI(t, d, "", append(args, fc.args()...)...) }

	// Nothing applied yet.
	fc.setMembers(labMembers()...)
	buildKubeImage(t, d, "k8s:v0", "1.30.0", "kubernetes")
	if r := cli("upgrade", "k8s:v0"); r.code == 0 || !strings.Contains(r.err, "no cluster has been applied") {
		t.Fatalf("upgrade of nothing: exit %d, %q", r.code, r.err)
	}
	digests := kubeCluster(t, d, fc)

	refused := []struct {
		args []string
		want string
	}{
		{[]string{"upgrade"}, "drove upgrade IMAGE"},
		{[]string{"upgrade", "k8s:v2", "--batch", "-1"}, "--batch -1"},
		{[]string{"rollback"}, "not made by drove upgrade"},
		{[]string{"upgrade", "k8s:v1"}, "nothing to upgrade"},
		{[]string{"upgrade", "k3s:v2"}, "installs with the k3s runtime, the cluster runs kubernetes"},
		{[]string{"upgrade", "plain-hello:v1"}, "installs with the plain runtime"},
		{[]string{"upgrade", "k8s:v4"}, "skips a minor release"},
	}
	for _, c := range refused {
		if r := cli(c.args...); r.code == 0 || !strings.Contains(r.err, c.want) {
			t.Errorf("drove %s: exit %d, stderr %q; want it refused with %q", strings.Join(c.args, " "), r.code, r.err, c.want)
		}
	}
	if n := len(fc.submitted()); n != 1 {
		t.Fatalf("%d plans after refusals, want only the install", n)
	}

	// A host without its agent: said, and nothing submitted.
	fc.setMembers(labMembers()[:2]...)
	if r := cli("upgrade", "k8s:v2", "--seed-node", "m1"); r.code == 0 || !strings.Contains(r.err, "no alive drove agent on 127.0.0.13") || len(fc.submitted()) != 1 {
		t.Errorf("upgrade with a host down: exit %d, %d plans, %q", r.code, len(fc.submitted()), r.err)
	}
	fc.setMembers(labMembers()...)

	// The dry run prints the plan and submits nothing.
	r := cli("upgrade", "k8s:v2", "--batch", "2", "--dry-run", "-o", "json")
	var view struct {
		Phases []struct {
			Name  string `json:"name"`
			Steps []struct {
				Node, Command string
			} `json:"steps"`
		} `json:"phases"`
	}
	if err := json.Unmarshal([]byte(r.out), &view); r.code != 0 || err != nil || len(view.Phases) == 0 || len(fc.submitted()) != 1 {
		t.Fatalf("dry run: exit %d, %v, %d plans\n%s%s", r.code, err, len(fc.submitted()), r.out, r.err)
	}

	r = cli("upgrade", "k8s:v2", "--batch", "2", "--seed-node", "m1")
	if r.code != 0 || len(fc.submitted()) != 2 {
		t.Fatalf("upgrade: exit %d, %d plans\n%s", r.code, len(fc.submitted()), r.err)
	}
	up := fc.submitted()[1]
	if up.Plan.Name != "upgrade k8s:v1 to k8s:v2" {
		t.Errorf("plan %q", up.Plan.Name)
	}
	var dryPhases []string
	for _, ph := range view.Phases {
		dryPhases = append(dryPhases, ph.Name)
	}
	want := []string{"distribute", "render", "upgrade-master-1", "upgrade-workers-1"}
	if got := phasesOf(up.Plan); !slices.Equal(got, want) || !slices.Equal(dryPhases, want) {
		t.Errorf("phases %v, dry run %v; want %v (both workers in one batch of 2)", got, dryPhases, want)
	}
	ph, st := stepOf(t, up.Plan, "upgrade-master-1")
	if !strings.Contains(st.Action.Command, "kubeadm upgrade apply 'v1.31.0' --yes") || st.Action.Rootfs != digests["k8s:v2"] || !slices.Equal(st.Target.Nodes, []string{"m1"}) {
		t.Errorf("%s: master0's step on %v in %s:\n%s", ph, st.Target.Nodes, st.Action.Rootfs, st.Action.Command)
	}
	if _, st := stepOf(t, up.Plan, "upgrade-workers-1"); !slices.Equal(st.Target.Nodes, []string{"n1", "n2"}) || !strings.Contains(st.Action.Command, "kubeadm upgrade node") {
		t.Errorf("workers' step on %v:\n%s", st.Target.Nodes, st.Action.Command)
	}
	if dist := up.Plan.Phases[0].Steps[0].Action.Distribution; dist == nil || dist.ImageDigest != digests["k8s:v2"] || dist.ID != up.PlanID {
		t.Errorf("the new image is not what is delivered first: %+v", dist)
	}
	rev := up.Revision
	if rev == nil || rev.Image != "k8s:v2" || rev.ImageDigest != digests["k8s:v2"] || rev.PreviousImage != "k8s:v1" ||
		rev.PreviousImageDigest != digests["k8s:v1"] || !strings.Contains(rev.Clusterfile, "image: k8s:v2") || rev.Runtime != "kubernetes" {
		t.Fatalf("revision after the upgrade: %+v", rev)
	}
	if !strings.Contains(r.out, "upgraded to k8s:v2") {
		t.Errorf("stdout %q", r.out)
	}

	// An apply with the old image is told to upgrade; going back by name
	// is told to roll back.
	if r := cli("run", "k8s:v1", "-m", "127.0.0.11", "-n", "127.0.0.12,127.0.0.13"); r.code == 0 || !strings.Contains(r.err, "drove upgrade") {
		t.Errorf("run with the old image: exit %d, %q", r.code, r.err)
	}
	if r := cli("upgrade", "k8s:v1"); r.code == 0 || !strings.Contains(r.err, "drove rollback") {
		t.Errorf("upgrade to the previous image: exit %d, %q", r.code, r.err)
	}

	r = cli("rollback", "--seed-node", "m1")
	if r.code != 0 || len(fc.submitted()) != 3 {
		t.Fatalf("rollback: exit %d, %d plans\n%s", r.code, len(fc.submitted()), r.err)
	}
	back := fc.submitted()[2]
	if back.Plan.Name != "rollback k8s:v2 to k8s:v1" {
		t.Errorf("plan %q", back.Plan.Name)
	}
	if _, st := stepOf(t, back.Plan, "upgrade-master-1"); !strings.Contains(st.Action.Command, "kubeadm upgrade apply 'v1.30.2' --yes --force") || st.Action.Rootfs != digests["k8s:v1"] {
		t.Errorf("master0 rolls back with the old image's kubeadm, forced:\n%s", st.Action.Command)
	}
	if rev := back.Revision; rev.Image != "k8s:v1" || rev.ImageDigest != digests["k8s:v1"] || rev.PreviousImageDigest != "" || !strings.Contains(rev.Clusterfile, "image: k8s:v1") {
		t.Errorf("revision after the rollback: %+v", rev)
	}
	if !strings.Contains(r.out, "rolled back to k8s:v1") {
		t.Errorf("stdout %q", r.out)
	}
	if r := cli("rollback"); r.code == 0 || !strings.Contains(r.err, "not made by drove upgrade") || len(fc.submitted()) != 3 {
		t.Errorf("a second rollback: exit %d, %q", r.code, r.err)
	}
	// The same hosts and image as applied: up to date again.
	if r := cli("run", "k8s:v1", "-m", "127.0.0.11", "-n", "127.0.0.12,127.0.0.13", "--seed-node", "m1"); !strings.Contains(r.out, "up to date") {
		t.Errorf("run after the rollback: %q %s", r.out, r.err)
	}
}

// A failed upgrade leaves the revision as it was: rollback still goes to
// what was before the last upgrade that succeeded, and the same upgrade
// can be run again.
func TestUpgradeFailureKeepsRevision(t *testing.T) {
	noCluster(t)
	d := t.TempDir()
	fc := startFakeCoord(t)
	kubeCluster(t, d, fc)
	fc.planState = func(s protocol.PlanSubmit) protocol.PlanDetail {
		det := succeeded(s)
		det.Summary.State = "failed"
		last := &det.Phases[len(det.Phases)-1]
		last.Steps[0].State, last.Steps[0].ExitCode = protocol.StateFailed, 1
		return det
	}
	args := append([]string{"upgrade", "k8s:v2", "--seed-node", "m1"}, fc.args()...)
	if r := runCLI(t, d, "", args...); r.code != exitFailed || !strings.Contains(r.err, "run the same command again") {
		t.Fatalf("failed upgrade: exit %d\n%s", r.code, r.err)
	}
	fc.planState = nil
	if r := runCLI(t, d, "", append([]string{"rollback"}, fc.args()...)...); r.code == 0 || !strings.Contains(r.err, "not made by drove upgrade") {
		t.Errorf("rollback after a failed upgrade: exit %d, %q", r.code, r.err)
	}
	if r := runCLI(t, d, "", args...); r.code != 0 || len(fc.submitted()) != 3 {
		t.Errorf("the upgrade again: exit %d, %d plans\n%s", r.code, len(fc.submitted()), r.err)
	}
}
