package runtime

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRollback(t *testing.T) {
	cur := cluster3x3("kubernetes")
	cur.Image, cur.ImageDigest, cur.KubeVersion = "k:v1.28.4", "sha256:"+strings.Repeat("2", 64), "v1.28.4"
	prev := cluster3x3("kubernetes")
	prev.Rollback = true
	prev.Hooks = []Hook{
		{Name: "back", Type: "SHELL", Phase: "rollback", Data: "echo back"},
		{Name: "up", Type: "SHELL", Phase: "upgrade", Data: "echo up"},
	}
	p, err := mustLookup(t, "kubernetes").Upgrade(cur, prev)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(p.Name, "rollback k:v1.28.4 to ") {
		t.Errorf("plan name %q", p.Name)
	}
	if got := phaseNames(p); got[len(got)-1] != "rollback" || hasStep(p, "upgrade-up") || !hasStep(p, "rollback-back") {
		t.Errorf("phases %v: the rollback hooks run last, not the upgrade hooks", got)
	}
	_, st := findStep(t, p, "upgrade-master-1")
	if !strings.Contains(st.Action.Command, "kubeadm upgrade apply 'v1.27.3' --yes --force") || st.Action.Rootfs != digest {
		t.Errorf("master0 goes back with the old image's kubeadm, forced:\n%s", st.Action.Command)
	}
	_, st = findStep(t, p, "upgrade-master-2")
	if !strings.Contains(st.Action.Command, "kubeadm upgrade node") || strings.Contains(st.Action.Command, "upgrade apply") {
		t.Errorf("the other masters run upgrade node:\n%s", st.Action.Command)
	}

	for _, tc := range []struct{ from, to, want string }{
		{"v1.27.3", "v1.28.0", "goes forward"},
		{"v1.29.1", "v1.27.3", "more than one minor release"},
	} {
		c, b := cur, prev
		c.KubeVersion, b.KubeVersion = tc.from, tc.to
		if _, err := mustLookup(t, "kubernetes").Upgrade(c, b); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("rollback %s → %s: %v", tc.from, tc.to, err)
		}
	}
	k3sCur, k3sPrev := cur, prev
	k3sCur.Runtime, k3sPrev.Runtime = "k3s", "k3s"
	k3sPrev.Hooks = nil
	if _, err := mustLookup(t, "k3s").Upgrade(k3sCur, k3sPrev); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "k3s cannot go back") {
		t.Errorf("k3s rollback to an older version: %v", err)
	}
	// The same version (another build of it) is fine for every runtime.
	k3sPrev.KubeVersion = k3sCur.KubeVersion
	if _, err := mustLookup(t, "k3s").Upgrade(k3sCur, k3sPrev); err != nil {
		t.Errorf("k3s rollback to the same version: %v", err)
	}
}

// The upgrade step replaces the tools where the host has them (its own
// PATH, not the image's bin), and restarts the kubelet only under systemd.
// Every tool is found in the test's host dir first: this machine's own
// (a /usr/bin/kubectl) must never be what the script replaces.
func TestUpgradeScriptReplacesHostTools(t *testing.T) {
	s := newSandbox(t)
	hostBin := filepath.Join(t.TempDir(), "host-bin") // outside the sandbox: that is the image's rootfs
	if err := os.MkdirAll(hostBin, 0o755); err != nil {
		t.Fatal(err)
	}
	tools := []string{"kubeadm", "kubelet", "kubectl"}
	for _, tool := range tools {
		if err := os.WriteFile(filepath.Join(hostBin, tool), []byte("#!/bin/sh\necho old\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		s.tool(t, tool, "")
	}
	s.tool(t, "systemctl", "") // never this machine's
	cur := cluster3x3("kubernetes")
	next := cur
	next.KubeVersion = "v1.28.0"
	p, err := mustLookup(t, "kubernetes").Upgrade(cur, next)
	if err != nil {
		t.Fatal(err)
	}
	_, st := findStep(t, p, "upgrade-master-1")
	cmd := strings.ReplaceAll(st.Action.Command, "/usr/bin/", filepath.Join(t.TempDir(), "usr-bin")+"/")
	out, err := s.run(t, cmd, nil, map[string]string{"PATH": hostBin + ":" + os.Getenv("PATH")})
	if err != nil {
		t.Fatal(err)
	}
	for _, tool := range tools {
		if got, err := os.ReadFile(filepath.Join(hostBin, tool)); err != nil || !strings.HasPrefix(string(got), "#!/bin/sh\necho \"kube") {
			t.Errorf("host %s: %q %v, want the image's", tool, got, err)
		}
	}
	if !strings.Contains(s.read(t, s.log), "kubeadm upgrade apply v1.28.0 --yes") {
		t.Errorf("calls:\n%s", s.read(t, s.log))
	}
	if _, err := os.Stat("/run/systemd/system"); err != nil && !strings.Contains(out, "restart the kubelet yourself") {
		t.Errorf("without systemd the step does not say the kubelet needs a restart: %q", out)
	}

	// A tool the host does not have goes to /usr/bin; one only in the
	// image's rootfs is not the host's.
	fn := strings.ReplaceAll(hostBinFn, "/usr/bin/", "/fallback/") + "drove_hostbin drove-no-such-tool; drove_hostbin kubeadm\n"
	out, err = s.run(t, fn, nil, map[string]string{"PATH": s.bin + ":/bin"})
	if err != nil {
		t.Fatal(err)
	}
	if want := "/fallback/drove-no-such-tool\n/fallback/kubeadm\n"; out != want {
		t.Errorf("drove_hostbin printed %q, want %q", out, want)
	}
}
