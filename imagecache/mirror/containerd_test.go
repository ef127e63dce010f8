package mirror

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/drove-project/drove/internal/testcontainerd"
)

// TestContainerdPullsThroughHostsDir pulls cached images by their original
// names with Debian's containerd and ctr, the upstream registry being down
// and every name resolved through hosts.toml files from WriteHostsDir
// (ghcr.io through _default/hosts.toml).
func TestContainerdPullsThroughHostsDir(t *testing.T) {
	if testing.Short() {
		t.Skip("starts containerd; skipped with -short")
	}
	d := testcontainerd.Start(t, t.TempDir())
	f := newNodeFixture(t)
	certs := filepath.Join(t.TempDir(), "certs.d")
	if _, err := WriteHostsDir(certs, []string{"docker.io", "registry.k8s.io", "quay.io", f.upstream}, "http://"+f.node, HostsOptions{Default: true, Aliases: []string{SealerHub}}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		ref, want string
		extra     []string
	}{
		{"docker.io/library/nginx:1.25", "app", nil},
		{"registry.k8s.io/pause:3.9", "pause", nil},
		{f.upstream + "/team/app:v1", "app", nil},
		{SealerHub + "/pause:3.9", "pause", nil},
		{"ghcr.io/acme/tool:0.1", "pause", nil}, // no directory of its own: _default
		{"quay.io/org/multi:2", "multi", []string{"--all-platforms"}},
	} {
		args := append([]string{"image", "pull", "--hosts-dir", certs}, c.extra...)
		if out, err := d.Ctr(t, append(args, c.ref)...); err != nil {
			t.Fatalf("ctr image pull %s with its registry unreachable: %v\n%s", c.ref, err, out)
		}
		out, err := d.Ctr(t, "image", "ls")
		if err != nil {
			t.Fatal(err)
		}
		if !lineHas(out, c.ref, f.digests[c.want].String()) {
			t.Errorf("ctr image ls has no %s at %s:\n%s", c.ref, f.digests[c.want], out)
		}
	}
}

// lineHas reports whether one line of out contains every word.
func lineHas(out string, words ...string) bool {
	for _, line := range strings.Split(out, "\n") {
		all := true
		for _, w := range words {
			all = all && strings.Contains(line, w)
		}
		if all {
			return true
		}
	}
	return false
}
