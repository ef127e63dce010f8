package runtime

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// FuzzPluginData feeds Gen-1 plugin data, an on/scope value and a taint
// to the parsers: they never panic, what they accept is well formed, and
// a plan built from it passes Check. Seeds: testdata/fuzz/FuzzPluginData.
func FuzzPluginData(f *testing.F) {
	f.Add("10.0.0.11 worker-a\n10.0.0.12 b", "master|node", "k=v:NoSchedule")
	f.Add("10.0.0.11-10.0.0.13 dedicated=db:NoExecute", "10.0.0.1,10.0.0.11-10.0.0.12", "k:NoSchedule-")
	f.Add("# c\n10.0.0.11 a=b,c=d", "node-role.kubernetes.io/master=", "k-")
	f.Fuzz(func(t *testing.T, data, on, taintText string) {
		for _, parse := range []func(string) ([]nodeChange, error){parseHostnameData, parseLabelData, parseTaintData} {
			changes, err := parse(data)
			if err != nil {
				continue
			}
			for _, ch := range changes {
				if a, err := netip.ParseAddr(ch.IP); err != nil || a.String() != ch.IP {
					t.Fatalf("accepted IP %q", ch.IP)
				}
			}
		}
		if tt, err := parseTaint(taintText); err == nil {
			again, err := parseTaint(tt.arg())
			if err != nil || again != tt {
				t.Fatalf("taint %q → %q does not round-trip: %+v %v", taintText, tt.arg(), again, err)
			}
			if strings.ContainsAny(tt.arg(), " \t\n") {
				t.Fatalf("taint %q has blanks", tt.arg())
			}
		}
		d := cluster3x3("kubernetes")
		d.Hooks = []Hook{
			{Name: "s", Type: "SHELL", Phase: "PostInstall|pre-init-host", On: on, Data: data},
			{Name: "l", Type: "LABEL", Phase: "PreGuest", Data: data},
			{Name: "t", Type: "TAINT", Phase: "PostInstall", Data: data},
			{Name: "h", Type: "HOSTNAME", Phase: "PreInit", Data: data},
		}
		for i := range d.Hooks {
			p, err := mustLookup(t, "kubernetes").Install(Desired{
				Runtime: d.Runtime, Image: d.Image, ImageDigest: d.ImageDigest, KubeVersion: d.KubeVersion,
				Hosts: d.Hosts, Hooks: d.Hooks[i : i+1]})
			if err != nil {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("error %v is not ErrInvalid", err)
				}
				continue
			}
			if err := Check(p); err != nil {
				t.Fatalf("plan fails Check: %v", err)
			}
		}
	})
}

// FuzzKubeadmConfig merges arbitrary image and Clusterfile kubeadm YAML:
// buildKubeadmConfig never panics, and what it returns has the endpoint
// and master0's address. Seeds: testdata/fuzz/FuzzKubeadmConfig.
func FuzzKubeadmConfig(f *testing.F) {
	f.Add([]byte(imageKubeadm), []byte("apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\nnetworking: {dnsDomain: x}\n"), "v1.31.2")
	f.Add([]byte("apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nnodeRegistration:\n  kubeletExtraArgs:\n  - name: a\n    value: b\n"), []byte{}, "v1.27.0")
	f.Add([]byte("a: &x [*x]\n"), []byte("- 1\n"), "")
	f.Fuzz(func(t *testing.T, base, overlay []byte, version string) {
		d := cluster3x3("kubernetes")
		d.KubeVersion, d.KubeadmDefault, d.KubeadmDocs = version, base, [][]byte{overlay}
		c, err := newCluster(&d, true)
		if err != nil {
			t.Fatal(err)
		}
		s, err := buildKubeadmConfig(c, "containerd")
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v is not ErrInvalid", err)
			}
			return
		}
		cfg := string(s.config)
		if !strings.Contains(cfg, "controlPlaneEndpoint: apiserver.cluster.local:6443") || !strings.Contains(cfg, "advertiseAddress: "+m0) {
			t.Fatalf("config lacks the endpoint or master0:\n%s", cfg)
		}
		if _, err := decodeYAML(s.config); err != nil {
			t.Fatalf("config does not parse again: %v\n%s", err, cfg)
		}
	})
}
