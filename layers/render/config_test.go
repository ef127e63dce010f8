package render

import (
	"context"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/drove-project/drove/protocol"
)

func TestApplyConfigs(t *testing.T) {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	tests := []struct {
		name    string
		files   map[string]string // before
		configs []protocol.ConfigFile
		want    map[string]string // after (only these are checked)
	}{
		{
			name:    "overwrite is the default and creates directories",
			files:   map[string]string{"etc/mysql.yaml": "old: 1\n"},
			configs: []protocol.ConfigFile{{Path: "etc/mysql.yaml", Data: "test\n"}, {Path: "etc/new/redis.yaml", Data: "test\n", Strategy: "overwrite"}},
			want:    map[string]string{"etc/mysql.yaml": "test\n", "etc/new/redis.yaml": "test\n"},
		},
		{
			name:    "appName puts the path under application/apps/<app>/",
			configs: []protocol.ConfigFile{{Path: "values.yaml", AppName: "nginx", Data: "replicas: 2\n"}},
			want:    map[string]string{"application/apps/nginx/values.yaml": "replicas: 2\n"},
		},
		{
			name: "merge puts a plain mapping into every document (sealer's example)",
			files: map[string]string{"manifests/cm.yaml": `apiVersion: v1
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
`},
			configs: []protocol.ConfigFile{{Path: "manifests/cm.yaml", Strategy: "merge", Data: "data:\n  test-key: test-key\nmetadata:\n  namespace: test-namespace\n"}},
			want: map[string]string{"manifests/cm.yaml": `apiVersion: v1
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
`},
		},
		{
			name:    "merge into a missing file creates it with the data",
			configs: []protocol.ConfigFile{{Path: "etc/daemon.yaml", Strategy: "merge", Data: "a: 1 # kept as written\n"}},
			want:    map[string]string{"etc/daemon.yaml": "a: 1 # kept as written\n"},
		},
		{
			name:  "merge of kubeadm documents by kind",
			files: map[string]string{"etc/kubeadm.yaml": kubeadmBase},
			configs: []protocol.ConfigFile{{Path: "etc/kubeadm.yaml", Strategy: "merge", Data: `apiVersion: kubeadm.k8s.io/v1beta3
kind: ClusterConfiguration
networking:
  podSubnet: 10.244.0.0/16
`}},
			want: map[string]string{"etc/kubeadm.yaml": strings.Replace(kubeadmBase, "podSubnet: 100.64.0.0/10", "podSubnet: 10.244.0.0/16", 1)},
		},
		{
			name:    "a later Config sees the earlier one's result",
			configs: []protocol.ConfigFile{{Path: "etc/a.yaml", Data: "x: 1\ny: 1\n"}, {Path: "etc/a.yaml", Strategy: "merge", Data: "y: 2\n"}},
			want:    map[string]string{"etc/a.yaml": "x: 1\ny: 2\n"},
		},
		{
			name:    "toJson converts the whole data",
			configs: []protocol.ConfigFile{{Path: "etc/daemon.json", Process: []string{"toJson"}, Data: "registry-mirrors:\n  - https://m\nlog-level: warn\n"}},
			want:    map[string]string{"etc/daemon.json": `{"log-level":"warn","registry-mirrors":["https://m"]}`},
		},
		{
			name:    "toBase64 encodes the whole data",
			configs: []protocol.ConfigFile{{Path: "etc/blob", Process: []string{"toBase64"}, Data: "raw text\n"}},
			want:    map[string]string{"etc/blob": b64("raw text\n")},
		},
		{
			name:    "value|toJson makes each top-level value a JSON string",
			configs: []protocol.ConfigFile{{Path: "charts/app/values.yaml", Process: []string{"value|toJson"}, Data: "config:\n  username: root\n  passwd: xxx\nlist: [1, 2]\nname: n\n"}},
			want:    map[string]string{"charts/app/values.yaml": "config: '{\"passwd\":\"xxx\",\"username\":\"root\"}'\nlist: '[1,2]'\nname: '\"n\"'\n"},
		},
		{
			name:    "value|toBase64 encodes each value",
			configs: []protocol.ConfigFile{{Path: "etc/v.yaml", Process: []string{"value", "toBase64"}, Data: "user: root\nport: 3306\n"}},
			want:    map[string]string{"etc/v.yaml": "user: " + b64("root") + "\nport: " + b64("3306") + "\n"},
		},
		{
			name:    "value|toJson|toBase64 as sealer's pre_process test",
			configs: []protocol.ConfigFile{{Path: "etc/v.yaml", Process: []string{"value|toJson|toBase64"}, Data: "\nconfig:\n  username: root\n  passwd: xxx\n"}},
			want:    map[string]string{"etc/v.yaml": "config: " + b64(`{"passwd":"xxx","username":"root"}`) + "\n"},
		},
		{
			name: "toSecret base64s values into an existing Secret (sealer's example)",
			files: map[string]string{"manifests/secret.yaml": `apiVersion: v1
data:
kind: Secret
metadata:
  name: gu-demo-configuration
  namespace: default
type: Opaque`},
			configs: []protocol.ConfigFile{{Path: "manifests/secret.yaml", Process: []string{"value|toSecret"}, Data: "global: e2FiYzogeHh4fQo=\ncomponents: e215c3FsOntjcHU6e3JlcXVlc3Q6IDEwMDBtfX19Cg==\n"}},
			want: map[string]string{"manifests/secret.yaml": `apiVersion: v1
data:
  global: ZTJGaVl6b2dlSGg0ZlFvPQ==
  components: ZTIxNWMzRnNPbnRqY0hVNmUzSmxjWFZsYzNRNklERXdNREJ0ZlgxOUNnPT0=
kind: Secret
metadata:
  name: gu-demo-configuration
  namespace: default
type: Opaque
`},
		},
		{
			name:    "value|toJson|toSecret replaces a key and keeps others, in the Secret document only",
			files:   map[string]string{"manifests/s.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: s\ndata:\n  keep: a2VlcA==\n  config: b2xk\n"},
			configs: []protocol.ConfigFile{{Path: "manifests/s.yaml", Process: []string{"value", "toJson", "toSecret"}, Data: "config:\n  user: root\n"}},
			want:    map[string]string{"manifests/s.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: s\ndata:\n  keep: a2VlcA==\n  config: " + b64(`{"user":"root"}`) + "\n"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			writeTree(t, root, tt.files)
			for _, c := range tt.configs {
				if err := ValidateConfig(c); err != nil {
					t.Fatalf("ValidateConfig(%+v): %v", c, err)
				}
			}
			if err := ApplyConfigs(context.Background(), root, tt.configs); err != nil {
				t.Fatalf("ApplyConfigs: %v", err)
			}
			for name, content := range tt.want {
				if got := readFile(t, filepath.Join(root, filepath.FromSlash(name))); got != content {
					t.Errorf("%s:\n%s\nwant:\n%s", name, got, content)
				}
			}
			// Applying again changes nothing more, except that a file
			// overwritten then merged, or a whole-data transform, is the
			// same fixed point: every case here is idempotent.
			before := snapshot(t, root)
			if err := ApplyConfigs(context.Background(), root, tt.configs); err != nil {
				t.Fatalf("ApplyConfigs again: %v", err)
			}
			if after := snapshot(t, root); !reflect.DeepEqual(before, after) {
				t.Errorf("applying twice changed files:\n%v\n%v", before, after)
			}
		})
	}
}

func TestApplyConfigsKeepsMode(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{"etc/secret.conf": "a: 1\n"})
	p := filepath.Join(root, "etc", "secret.conf")
	if err := os.Chmod(p, 0o600); err != nil {
		t.Fatal(err)
	}
	configs := []protocol.ConfigFile{{Path: "etc/secret.conf", Strategy: "merge", Data: "b: 2\n"}, {Path: "etc/fresh.conf", Data: "x"}}
	if err := ApplyConfigs(context.Background(), root, configs); err != nil {
		t.Fatal(err)
	}
	for name, mode := range map[string]os.FileMode{"etc/secret.conf": 0o600, "etc/fresh.conf": 0o644} {
		fi, err := os.Stat(filepath.Join(root, name))
		if err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s mode %v (%v), want %v", name, fi.Mode(), err, mode)
		}
	}
	if got := readFile(t, p); got != "a: 1\nb: 2\n" {
		t.Errorf("merged %q", got)
	}
	left, _ := filepath.Glob(filepath.Join(root, "etc", ".*tmp*"))
	if len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

func TestApplyConfigsRefusesAndWritesNothing(t *testing.T) {
	outside := t.TempDir()
	good := protocol.ConfigFile{Path: "etc/good.yaml", Data: "written: true\n"}
	tests := []struct {
		name     string
		bad      protocol.ConfigFile
		wantErr  error
		wantText string
	}{
		{name: "absolute path", bad: protocol.ConfigFile{Path: "/etc/passwd", Data: "x"}, wantErr: ErrPathEscape, wantText: "spec.path"},
		{name: "dot-dot", bad: protocol.ConfigFile{Path: "../x", Data: "x"}, wantErr: ErrPathEscape, wantText: "spec.path"},
		{name: "dot-dot inside", bad: protocol.ConfigFile{Path: "etc/../../x", Data: "x"}, wantErr: ErrPathEscape, wantText: "spec.path"},
		{name: "dot-dot after appName", bad: protocol.ConfigFile{Path: "../../../x", AppName: "app", Data: "x"}, wantErr: ErrPathEscape, wantText: "spec.path"},
		{name: "appName with a slash", bad: protocol.ConfigFile{Path: "x", AppName: "../../etc", Data: "x"}, wantErr: ErrPathEscape, wantText: "spec.appName"},
		{name: "through a symbolic link out of the rootfs", bad: protocol.ConfigFile{Path: "link/x.yaml", Data: "x"}, wantErr: ErrPathEscape},
		{name: "empty path", bad: protocol.ConfigFile{Data: "x"}, wantErr: ErrBadConfig, wantText: "spec.path is empty"},
		{name: "directory path", bad: protocol.ConfigFile{Path: "etc/", Data: "x"}, wantErr: ErrBadConfig, wantText: "directory"},
		{name: "existing directory", bad: protocol.ConfigFile{Path: "etc", Data: "x"}, wantErr: ErrBadConfig, wantText: "not a regular file"},
		{name: "unknown strategy", bad: protocol.ConfigFile{Path: "etc/a", Data: "x", Strategy: "Merge"}, wantErr: ErrBadConfig, wantText: `spec.strategy: unknown strategy "Merge"`},
		{name: "unknown processor", bad: protocol.ConfigFile{Path: "etc/a", Data: "x", Process: []string{"value|toYaml"}}, wantErr: ErrBadConfig, wantText: `spec.process: unknown processor "toYaml"`},
		{name: "merge data not YAML", bad: protocol.ConfigFile{Path: "etc/a.yaml", Strategy: "merge", Data: "a: 1\nb: [\n"}, wantErr: ErrBadConfig, wantText: "line"},
		{name: "merge into a file that is not YAML", bad: protocol.ConfigFile{Path: "etc/broken.yaml", Strategy: "merge", Data: "a: 1\n"}, wantErr: ErrBadConfig, wantText: "existing file etc/broken.yaml: document 1: yaml: line 1"},
		{name: "value on a list", bad: protocol.ConfigFile{Path: "etc/a", Process: []string{"value", "toJson"}, Data: "- a\n"}, wantErr: ErrBadConfig, wantText: "a sequence at line 1"},
		{name: "value|toBase64 of a mapping", bad: protocol.ConfigFile{Path: "etc/a", Process: []string{"value|toBase64"}, Data: "a:\n  b: 1\n"}, wantErr: ErrBadConfig, wantText: `key "a" at line 2`},
		{name: "toSecret with no file", bad: protocol.ConfigFile{Path: "etc/none.yaml", Process: []string{"value|toSecret"}, Data: "a: b\n"}, wantErr: ErrBadConfig, wantText: "existing file"},
		{name: "toSecret with no Secret", bad: protocol.ConfigFile{Path: "etc/cm.yaml", Process: []string{"toSecret"}, Data: "a: b\n"}, wantErr: ErrBadConfig, wantText: "no document of kind Secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			writeTree(t, root, map[string]string{
				"etc/broken.yaml": "a: [\n",
				"etc/cm.yaml":     "kind: ConfigMap\n",
				"etc/good.yaml":   "before\n",
			})
			if err := os.Symlink("../"+filepath.Base(root)+"/../"+filepath.Base(outside), filepath.Join(root, "link")); err != nil {
				t.Fatal(err)
			}
			before := snapshot(t, root)
			err := ApplyConfigs(context.Background(), root, []protocol.ConfigFile{good, tt.bad})
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error %v, want %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), "config 2 ") || !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("error %q does not name config 2 and %q", err, tt.wantText)
			}
			if after := snapshot(t, root); !reflect.DeepEqual(before, after) {
				t.Errorf("a refused apply changed files:\n%v\n%v", before, after)
			}
			if entries, _ := os.ReadDir(outside); len(entries) != 0 {
				t.Errorf("files written outside the rootfs: %v", entries)
			}
		})
	}
}
