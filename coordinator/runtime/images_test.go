package runtime

import (
	"slices"
	"strings"
	"testing"

	"github.com/drove-project/drove/protocol"
)

// The container-images phase comes where each runtime's containerd
// exists: before kubeadm init (the CRI script installed it; kubeadm
// pulls through it), after k3s and k0s started theirs. An image that
// caches nothing gets no phase.
func TestImagesPhasePlacement(t *testing.T) {
	for _, tc := range []struct {
		rt, before, after, addr string
	}{
		{"kubernetes", "init-hosts", "kube-init", ""},
		{"k3s", "join-agents", "labels-taints", "/run/k3s/containerd/containerd.sock"},
		{"k0s", "", "labels-taints", "/run/k0s/containerd.sock"},
		{"plain", "init-hosts", "launch", ""},
	} {
		t.Run(tc.rt, func(t *testing.T) {
			d := cluster3x3(tc.rt)
			if names := phaseNames(install(t, d)); slices.Contains(names, "container-images") {
				t.Fatalf("no cached images, yet phases %v", names)
			}
			d.ContainerImages, d.ImportImages = 3, tc.rt != "plain"
			p := install(t, d)
			names := phaseNames(p)
			i := slices.Index(names, "container-images")
			if i < 0 {
				t.Fatalf("phases %v: no container-images", names)
			}
			if tc.before != "" && (i == 0 || names[i-1] != tc.before) {
				t.Fatalf("phases %v: container-images not right after %s", names, tc.before)
			}
			if tc.after != "" && slices.Index(names, tc.after) != i+1 {
				t.Fatalf("phases %v: container-images not right before %s", names, tc.after)
			}
			if tc.rt == "k3s" || tc.rt == "k0s" {
				if slices.Index(names, "init-hosts") > i-1 || i < 3 {
					t.Fatalf("phases %v: container-images not after the cluster is created", names)
				}
			}
			_, st := findStep(t, p, "container-images")
			if st.Action.Kind != protocol.ActionImages || st.Action.Rootfs != d.ImageDigest || len(st.Target.Nodes) != 6 {
				t.Fatalf("step %+v", st)
			}
			env := st.Action.Env
			if env[protocol.EnvImagesImport] != map[bool]string{true: "true", false: "false"}[d.ImportImages] ||
				env[protocol.EnvRegistryAliases] != DefaultRegistryAlias || env[protocol.EnvContainerdAddress] != tc.addr {
				t.Fatalf("env %v", env)
			}
		})
	}
}

// LoadImages delivers the image and refreshes its images on every host,
// and nothing else; an image caching none is refused.
func TestLoadImagesPlan(t *testing.T) {
	d := cluster3x3("kubernetes")
	if _, err := mustLookup(t, "kubernetes").LoadImages(d); err == nil || !strings.Contains(err.Error(), "caches no container images") {
		t.Fatalf("want a refusal, got %v", err)
	}
	d.ContainerImages, d.ImportImages = 2, true
	p, err := mustLookup(t, "k3s").LoadImages(d)
	if err != nil {
		t.Fatal(err)
	}
	if got := phaseNames(p); !slices.Equal(got, []string{"distribute", "container-images"}) {
		t.Fatalf("phases %v", got)
	}
	_, st := findStep(t, p, "container-images")
	if len(st.Target.Nodes) != 6 || st.Action.Env[protocol.EnvImagesImport] != "true" ||
		st.Action.Env[protocol.EnvContainerdAddress] != "/run/k3s/containerd/containerd.sock" {
		t.Fatalf("step %+v", st)
	}
}
