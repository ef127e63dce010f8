package runtime

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// kubeadmDocs decodes a generated config into maps by kind.
func kubeadmDocs(t *testing.T, config []byte) map[string]map[string]any {
	t.Helper()
	dec := yaml.NewDecoder(strings.NewReader(string(config)))
	out := map[string]map[string]any{}
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			break
		}
		kind, _ := m["kind"].(string)
		if _, dup := out[kind]; dup {
			t.Fatalf("two %s documents:\n%s", kind, config)
		}
		out[kind] = m
	}
	return out
}

func get(m map[string]any, path ...string) any {
	var v any = m
	for _, p := range path {
		mm, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = mm[p]
	}
	return v
}

func strs(v any) []string {
	var out []string
	l, _ := v.([]any)
	for _, x := range l {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

const imageKubeadm = `apiVersion: kubeadm.k8s.io/v1beta2
kind: ClusterConfiguration
kubernetesVersion: v1.19.8
imageRepository: sea.hub:5000/library
apiServer:
  certSANs: [extra.example, 127.0.0.1]
  extraArgs:
    feature-gates: TTLAfterFinished=true
    audit-log-maxage: "30"
networking:
  dnsDomain: cluster.local
---
apiVersion: kubeadm.k8s.io/v1beta2
kind: InitConfiguration
nodeRegistration:
  criSocket: /run/custom.sock
  kubeletExtraArgs:
    max-pods: "200"
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: systemd
`

func TestKubeadmConfigVersionAndSANs(t *testing.T) {
	for _, tc := range []struct {
		version, api string
		listArgs     bool
	}{
		{"v1.19.8", "kubeadm.k8s.io/v1beta2", false},
		{"v1.21.14", "kubeadm.k8s.io/v1beta2", false},
		{"v1.22.0", "kubeadm.k8s.io/v1beta3", false},
		{"1.27.3", "kubeadm.k8s.io/v1beta3", false},
		{"v1.30.9", "kubeadm.k8s.io/v1beta3", false},
		{"v1.31.0", "kubeadm.k8s.io/v1beta4", true},
		{"v1.33.1-rc.0", "kubeadm.k8s.io/v1beta4", true},
	} {
		t.Run(tc.version, func(t *testing.T) {
			d := cluster3x3("kubernetes")
			d.KubeVersion = tc.version
			d.KubeadmDefault = []byte(imageKubeadm)
			d.KubeadmDocs = [][]byte{[]byte("apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\nnetworking:\n  dnsDomain: corp.local\n")}
			c, err := newCluster(&d, true)
			if err != nil {
				t.Fatal(err)
			}
			s, err := buildKubeadmConfig(c, "containerd")
			if err != nil {
				t.Fatal(err)
			}
			docs := kubeadmDocs(t, s.config)
			cc, ic := docs[kindClusterConf], docs[kindInit]
			if cc == nil || ic == nil || docs["KubeletConfiguration"] == nil {
				t.Fatalf("documents missing:\n%s", s.config)
			}
			if cc["apiVersion"] != tc.api || ic["apiVersion"] != tc.api {
				t.Errorf("apiVersion %v/%v, want %s", cc["apiVersion"], ic["apiVersion"], tc.api)
			}
			if docs["KubeletConfiguration"]["apiVersion"] != "kubelet.config.k8s.io/v1beta1" {
				t.Error("a non-kubeadm document changed version")
			}
			if want := "v" + strings.TrimPrefix(tc.version, "v"); cc["kubernetesVersion"] != want {
				t.Errorf("kubernetesVersion %v, want %s", cc["kubernetesVersion"], want)
			}
			if cc["controlPlaneEndpoint"] != "apiserver.cluster.local:6443" || get(ic, "localAPIEndpoint", "advertiseAddress") != m0 {
				t.Errorf("endpoint %v, advertise %v", cc["controlPlaneEndpoint"], get(ic, "localAPIEndpoint", "advertiseAddress"))
			}
			sans := strs(get(cc, "apiServer", "certSANs"))
			for _, want := range []string{"extra.example", "apiserver.cluster.local", "127.0.0.1", "10.103.97.2", m0, m1, m2, "k8s.example.com"} {
				if !slices.Contains(sans, want) {
					t.Errorf("certSANs %v lack %s", sans, want)
				}
			}
			if n := len(sans); n != len(slices.Compact(slices.Sorted(slices.Values(sans)))) {
				t.Errorf("certSANs repeat a name: %v", sans)
			}
			if get(cc, "networking", "podSubnet") != "100.64.0.0/10" || get(cc, "networking", "serviceSubnet") != "10.96.0.0/16" {
				t.Errorf("networking %v", cc["networking"])
			}
			// The Clusterfile overlay, written for v1beta3, merged into the
			// image's v1beta2 document instead of adding a second one.
			if get(cc, "networking", "dnsDomain") != "corp.local" || cc["imageRepository"] != "sea.hub:5000/library" {
				t.Errorf("overlay not merged: %v", cc)
			}
			if s.criSocket != "/run/custom.sock" {
				t.Errorf("the image's criSocket was replaced: %q", s.criSocket)
			}
			args := get(cc, "apiServer", "extraArgs")
			kubelet := get(ic, "nodeRegistration", "kubeletExtraArgs")
			if tc.listArgs {
				l, ok := args.([]any)
				if !ok || len(l) != 2 || get(l[0].(map[string]any), "name") != "feature-gates" || get(l[1].(map[string]any), "value") != "30" {
					t.Errorf("v1beta4 extraArgs must be a name/value list: %#v", args)
				}
				if kl, ok := kubelet.([]any); !ok || len(kl) != 1 {
					t.Errorf("v1beta4 kubeletExtraArgs: %#v", kubelet)
				}
			} else if m, ok := args.(map[string]any); !ok || m["audit-log-maxage"] != "30" {
				t.Errorf("extraArgs: %#v", args)
			}
		})
	}
}

func TestKubeadmConfigFromScratch(t *testing.T) {
	d := cluster3x3("kubernetes")
	d.Env = nil
	c, _ := newCluster(&d, true)
	s, err := buildKubeadmConfig(c, "docker")
	if err != nil {
		t.Fatal(err)
	}
	docs := kubeadmDocs(t, s.config)
	if len(docs) != 2 || get(docs[kindClusterConf], "networking") != nil {
		t.Fatalf("config:\n%s", s.config)
	}
	if s.criSocket != "unix:///var/run/cri-dockerd.sock" || get(docs[kindInit], "nodeRegistration", "criSocket") != s.criSocket {
		t.Errorf("docker from 1.24 goes through cri-dockerd: %q", s.criSocket)
	}
	d.KubeVersion = "v1.23.17"
	if s, _ := buildKubeadmConfig(c, "docker"); s.criSocket != "/var/run/dockershim.sock" {
		t.Errorf("docker before 1.24: %q", s.criSocket)
	}
	if s, _ := buildKubeadmConfig(c, "isulad"); s.criSocket != "" {
		t.Errorf("an unknown CRI gets a socket: %q", s.criSocket)
	}
}

func TestKubeadmConfigVersionFromImage(t *testing.T) {
	d := cluster3x3("kubernetes")
	d.KubeVersion = ""
	d.KubeadmDefault = []byte(imageKubeadm)
	c, _ := newCluster(&d, true)
	s, err := buildKubeadmConfig(c, "containerd")
	if err != nil || s.version.String() != "v1.19.8" {
		t.Fatalf("version %v, %v", s.version, err)
	}
	d.KubeadmDefault = nil
	if _, err := buildKubeadmConfig(c, "containerd"); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "no Kubernetes version") {
		t.Fatalf("err = %v", err)
	}
	d.KubeVersion = "v1.27.3"
	d.KubeadmDocs = [][]byte{[]byte("apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\nnetworking: [unclosed\n")}
	if _, err := buildKubeadmConfig(c, "containerd"); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "document 1 from the Clusterfile") {
		t.Fatalf("err = %v", err)
	}
}

func TestKubeadmConfigIsWrittenLiterally(t *testing.T) {
	d := cluster3x3("kubernetes")
	d.KubeadmDocs = [][]byte{[]byte("apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\nclusterName: \"{{ not a template }}\"\n")}
	_, st := findStep(t, install(t, d), "kubeadm-config")
	if got := renderTemplate(t, st.Action.Content, nil); !strings.Contains(got, `clusterName: "{{ not a template }}"`) {
		t.Fatalf("content as the coordinator renders it:\n%s", got)
	}
	if st.Action.Mode != 0o600 {
		t.Errorf("mode %o", st.Action.Mode)
	}
}

func TestKubeVersion(t *testing.T) {
	for _, tc := range []struct {
		in, want string
	}{
		{"v1.27.3", "v1.27.3"}, {"1.27", "v1.27.0"}, {"v1.28.0-rc.1", "v1.28.0-rc.1"}, {"v1.27.3+k3s1", "v1.27.3+k3s1"},
		{"", ""}, {"v1", ""}, {"v1.2.3.4", ""}, {"v1.x.3", ""}, {"v01.2.3", ""}, {"v0.0.1", ""},
	} {
		v, err := parseKubeVersion(tc.in)
		if (tc.want == "") != (err != nil) || (err == nil && v.String() != tc.want) {
			t.Errorf("parseKubeVersion(%q) = %v, %v", tc.in, v, err)
		}
	}
	for _, tc := range []struct {
		from, to string
		ok       bool
	}{
		{"v1.27.3", "v1.28.0", true}, {"v1.27.3", "v1.27.9", true}, {"v1.27.3", "v1.27.3", true},
		{"v1.27.3", "v1.26.9", false}, {"v1.27.3", "v1.29.0", false}, {"v1.27.3", "v1.27.2", false},
	} {
		from, _ := parseKubeVersion(tc.from)
		to, _ := parseKubeVersion(tc.to)
		if err := checkUpgrade(from, to); (err == nil) != tc.ok {
			t.Errorf("checkUpgrade(%s, %s) = %v", tc.from, tc.to, err)
		}
	}
}
