package render

import (
	"errors"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

const kubeadmBase = `# defaults of the image
apiVersion: kubeadm.k8s.io/v1beta3
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: 192.168.0.1 # the first master
  bindPort: 6443
nodeRegistration:
  criSocket: /run/containerd/containerd.sock
---
apiVersion: kubeadm.k8s.io/v1beta3
kind: ClusterConfiguration
kubernetesVersion: v1.22.15
controlPlaneEndpoint: apiserver.cluster.local:6443
networking:
  podSubnet: 100.64.0.0/10
  serviceSubnet: 10.96.0.0/22
apiServer:
  certSANs:
    - 127.0.0.1
    - apiserver.cluster.local
`

func TestMergeDocuments(t *testing.T) {
	tests := []struct {
		name     string
		base     string
		overlays []string
		want     string
	}{
		{
			name: "kubeadm ClusterConfiguration overlay, KubeletConfiguration appended",
			base: kubeadmBase,
			overlays: []string{`apiVersion: kubeadm.k8s.io/v1beta3
kind: ClusterConfiguration
networking:
  podSubnet: 10.244.0.0/16
apiServer:
  certSANs:
    - 10.0.0.9
  extraArgs:
    audit-log-maxage: "30"
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
maxPods: 200
`},
			want: `# defaults of the image
apiVersion: kubeadm.k8s.io/v1beta3
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: 192.168.0.1 # the first master
  bindPort: 6443
nodeRegistration:
  criSocket: /run/containerd/containerd.sock
---
apiVersion: kubeadm.k8s.io/v1beta3
kind: ClusterConfiguration
kubernetesVersion: v1.22.15
controlPlaneEndpoint: apiserver.cluster.local:6443
networking:
  podSubnet: 10.244.0.0/16
  serviceSubnet: 10.96.0.0/22
apiServer:
  certSANs:
    - 10.0.0.9
  extraArgs:
    audit-log-maxage: "30"
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
maxPods: 200
`,
		},
		{
			name: "InitConfiguration overlay leaves ClusterConfiguration alone",
			base: kubeadmBase,
			overlays: []string{`apiVersion: kubeadm.k8s.io/v1beta3
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: 10.1.1.1
`},
			want: strings.Replace(kubeadmBase, "192.168.0.1", "10.1.1.1", 1),
		},
		{
			name:     "other apiVersion of the same kind is appended",
			base:     "apiVersion: a/v1\nkind: K\nx: 1\n",
			overlays: []string{"apiVersion: a/v2\nkind: K\nx: 2\n"},
			want:     "apiVersion: a/v1\nkind: K\nx: 1\n---\napiVersion: a/v2\nkind: K\nx: 2\n",
		},
		{
			name: "plain mapping goes into every document (sealer's section merge)",
			base: `apiVersion: v1
data:
  key1: myConfigMap1
kind: ConfigMap
metadata:
  name: myConfigMap1
---
apiVersion: v1
data:
  key2: myConfigMap2
kind: ConfigMap
metadata:
  name: myConfigMap2
`,
			overlays: []string{"data:\n  test-key: test-key\nmetadata:\n  namespace: test-namespace\n"},
			want: `apiVersion: v1
data:
  key1: myConfigMap1
  test-key: test-key
kind: ConfigMap
metadata:
  name: myConfigMap1
  namespace: test-namespace
---
apiVersion: v1
data:
  key2: myConfigMap2
  test-key: test-key
kind: ConfigMap
metadata:
  name: myConfigMap2
  namespace: test-namespace
`,
		},
		{
			name:     "metadata.name picks one of several documents of a kind",
			base:     "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  k: a\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\ndata:\n  k: b\n",
			overlays: []string{"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\ndata:\n  k: B\n"},
			want:     "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  k: a\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\ndata:\n  k: B\n",
		},
		{
			name:     "scalars, lists and type changes replace; null replaces",
			base:     "a: 1\nb: [1, 2, 3]\nc:\n  d: 1\ne: x\nf: keep\n",
			overlays: []string{"a: 2\nb: [9]\nc: flat\ne:\n  nested: true\nf: null\n"},
			want:     "a: 2\nb: [9]\nc: flat\ne:\n  nested: true\nf: null\n",
		},
		{
			name:     "overlays apply in order, a later one merging into an appended document",
			base:     "",
			overlays: []string{"apiVersion: v1\nkind: K\na: 1\nb: 1\n", "apiVersion: v1\nkind: K\nb: 2\n"},
			want:     "apiVersion: v1\nkind: K\na: 1\nb: 2\n",
		},
		{
			name:     "aliases are expanded so the result stands alone",
			base:     "x: &anchor\n  p: 1\ny: *anchor\n",
			overlays: []string{"y:\n  q: 2\n"},
			want:     "x:\n  p: 1\ny:\n  p: 1\n  q: 2\n",
		},
		{
			name:     "empty documents are dropped",
			base:     "---\n---\na: 1\n---\n",
			overlays: []string{"", "---\n"},
			want:     "a: 1\n",
		},
		{
			name:     "kind without apiVersion matches any apiVersion of that kind",
			base:     "apiVersion: a/v1\nkind: K\nx: 1\n---\napiVersion: a/v1\nkind: L\nx: 1\n",
			overlays: []string{"kind: K\nx: 2\n"},
			want:     "apiVersion: a/v1\nkind: K\nx: 2\n---\napiVersion: a/v1\nkind: L\nx: 1\n",
		},
		{
			name: "nothing at all gives empty output",
			want: "",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var overlays [][]byte
			for _, o := range tt.overlays {
				overlays = append(overlays, []byte(o))
			}
			got, err := MergeDocuments([]byte(tt.base), overlays...)
			if err != nil {
				t.Fatalf("MergeDocuments: %v", err)
			}
			if string(got) != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tt.want)
			}
			again, err := MergeDocuments(got, overlays...)
			if err != nil {
				t.Fatalf("merge again: %v", err)
			}
			if string(again) != string(got) {
				t.Errorf("merging twice changed the result:\n%s\nthen:\n%s", got, again)
			}
		})
	}
}

func TestMergeDocumentsErrors(t *testing.T) {
	laughs := "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
	prev := "a"
	for _, n := range []string{"b", "c", "d", "e", "f", "g", "h"} {
		laughs += n + ": &" + n + " [*" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + "]\n"
		prev = n
	}
	tests := []struct {
		name     string
		base     string
		overlay  string
		wantErr  error
		wantText string
	}{
		{name: "bad base", base: "a: [1\n", wantText: "parse base YAML: document 1: yaml: line"},
		{name: "bad overlay names its line", base: "a: 1\n", overlay: "a: 1\nb: : :\n", wantText: "parse overlay 1 YAML: document 1: yaml: line 2"},
		{name: "billion laughs", base: laughs, wantErr: ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := MergeDocuments([]byte(tt.base), []byte(tt.overlay))
			if err == nil {
				t.Fatal("no error")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error %v is not %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("error %q does not contain %q", err, tt.wantText)
			}
		})
	}
}

func TestMergeYAML(t *testing.T) {
	tests := []struct {
		name, base, overlay, want string
		wantErr                   error
	}{
		{
			name:    "into every section whatever its kind",
			base:    "kind: A\nx: 1\n---\nkind: B\nx: 1\n",
			overlay: "kind: A\nx: 2\n",
			want:    "kind: A\nx: 2\n---\nkind: A\nx: 2\n",
		},
		{name: "empty base gives the overlay", overlay: "a: 1\n", want: "a: 1\n"},
		{name: "empty overlay keeps base", base: "a: 1\n", want: "a: 1\n"},
		{name: "nested maps", base: "a:\n  b: 1\n  c: 1\n", overlay: "a:\n  c: 2\n  d: 3\n", want: "a:\n  b: 1\n  c: 2\n  d: 3\n"},
		{name: "two overlay documents refused", base: "a: 1\n", overlay: "a: 1\n---\nb: 2\n", wantErr: ErrMultipleDocuments},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := MergeYAML([]byte(tt.base), []byte(tt.overlay))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("error %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("MergeYAML: %v", err)
			}
			if string(got) != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

// TestMergeDocumentsDeterministic checks equal inputs give equal bytes and
// that the result parses back.
func TestMergeDocumentsDeterministic(t *testing.T) {
	overlay := []byte("apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\nz: 1\na: 2\nm: {k: v}\n")
	first, err := MergeDocuments([]byte(kubeadmBase), overlay)
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		got, err := MergeDocuments([]byte(kubeadmBase), overlay)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(first) {
			t.Fatalf("output differs between runs:\n%s\n---\n%s", first, got)
		}
	}
	dec := yaml.NewDecoder(strings.NewReader(string(first)))
	n := 0
	for {
		var v map[string]any
		if err := dec.Decode(&v); err != nil {
			break
		}
		n++
	}
	if n != 2 {
		t.Errorf("result holds %d documents, want 2", n)
	}
}
