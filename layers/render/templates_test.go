package render

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// sealerTemplates holds sealer's pkg/env template test (see shared/README.md).
const sealerTemplates = "../../../shared/reference/sealer-fixtures/pkg/env/test/template"

// TestRenderTreeSealerFixture renders sealer's kubeadm.yaml.tmpl with the
// env of sealer's own test and compares with its kubeadm.yaml. That file
// carries a licence header its template lacks (added to the repository
// later), so leading comment lines are not compared.
func TestRenderTreeSealerFixture(t *testing.T) {
	tmpl, err := os.ReadFile(filepath.Join(sealerTemplates, "kubeadm.yaml.tmpl"))
	if err != nil {
		t.Skipf("sealer fixture missing: %v", err)
	}
	want := readFile(t, filepath.Join(sealerTemplates, "kubeadm.yaml"))
	want = stripLeadingComments(want)

	root := t.TempDir()
	writeTree(t, root, map[string]string{"etc/kubeadm.yaml.tmpl": string(tmpl)})
	env, err := ParseEnv([]string{"PodCIDR=100.64.0.0/10", "SvcCIDR=10.96.0.0/16"})
	if err != nil {
		t.Fatal(err)
	}
	rendered, err := RenderTree(context.Background(), root, env)
	if err != nil {
		t.Fatalf("RenderTree: %v", err)
	}
	if !reflect.DeepEqual(rendered, []string{"etc/kubeadm.yaml"}) {
		t.Errorf("rendered %v", rendered)
	}
	if got := readFile(t, filepath.Join(root, "etc", "kubeadm.yaml")); got != want {
		t.Errorf("rendered:\n%s\nwant:\n%s", got, want)
	}
}

func stripLeadingComments(s string) string {
	lines := strings.SplitAfter(s, "\n")
	for len(lines) > 0 && (strings.HasPrefix(lines[0], "#") || strings.TrimSpace(lines[0]) == "") {
		lines = lines[1:]
	}
	return strings.Join(lines, "")
}

func TestRenderTree(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{
		"etc/kubeadm.yaml.tmpl":          "podSubnet: {{ .PodCIDR }}\n",
		"etc/sub/sans.yaml.tmpl":         "certSANs:\n{{- range .CertSANs }}\n  - {{ . }}\n{{- end }}\n",
		"charts/app/values.yaml.tmpl":    "password: {{ b64enc .Password }}\nplain: {{ b64dec .Encoded }}\n",
		"manifests/missing.yaml.tmpl":    "value: {{ .NotSet }}\n",
		"scripts/init.sh.tmpl":           "not rendered: {{ .PodCIDR }}\n",
		"etc/.tmpl":                      "{{ .PodCIDR }}",
		"etc/readme.txt":                 "{{ .PodCIDR }}",
		"application/apps/x/a.yaml.tmpl": "{{ .PodCIDR }}",
		"manifests/imageList":            "nginx:1\n",
		"etc/existing.conf.tmpl":         "new {{ .Key }}\n",
		"etc/existing.conf":              "old\n",
	})
	if err := os.Chmod(filepath.Join(root, "etc", "sub", "sans.yaml.tmpl"), 0o750); err != nil {
		t.Fatal(err)
	}
	env := Env{"PodCIDR": {"100.64.0.0/10"}, "CertSANs": {"a.example", "10.0.0.1"}, "Password": {"s3cret"}, "Encoded": {"aGVsbG8="}, "Key": {"v"}}
	rendered, err := RenderTree(context.Background(), root, env)
	if err != nil {
		t.Fatalf("RenderTree: %v", err)
	}
	wantRendered := []string{"etc/existing.conf", "etc/kubeadm.yaml", "etc/sub/sans.yaml", "charts/app/values.yaml", "manifests/missing.yaml"}
	if !reflect.DeepEqual(rendered, wantRendered) {
		t.Errorf("rendered %v, want %v", rendered, wantRendered)
	}
	want := map[string]string{
		"etc/kubeadm.yaml":       "podSubnet: 100.64.0.0/10\n",
		"etc/sub/sans.yaml":      "certSANs:\n  - a.example\n  - 10.0.0.1\n",
		"charts/app/values.yaml": "password: czNjcmV0\nplain: hello\n",
		"manifests/missing.yaml": "value: <no value>\n", // sealer's missingkey behaviour
		"etc/existing.conf":      "new v\n",
	}
	for name, content := range want {
		if got := readFile(t, filepath.Join(root, name)); got != content {
			t.Errorf("%s = %q, want %q", name, got, content)
		}
	}
	for _, name := range []string{"scripts/init.sh", "application/apps/x/a.yaml", "etc/readme"} {
		if _, err := os.Stat(filepath.Join(root, name)); !os.IsNotExist(err) {
			t.Errorf("%s was written (outside etc/, charts/, manifests/ or not a template)", name)
		}
	}
	fi, err := os.Stat(filepath.Join(root, "etc", "sub", "sans.yaml"))
	if err != nil || fi.Mode().Perm() != 0o750 {
		t.Errorf("rendered file mode %v (%v), want the template's 0750", fi.Mode(), err)
	}
	// Templates stay; rendering again gives the same tree.
	before := snapshot(t, root)
	if _, err := RenderTree(context.Background(), root, env); err != nil {
		t.Fatal(err)
	}
	if after := snapshot(t, root); !reflect.DeepEqual(before, after) {
		t.Errorf("second render changed the tree:\n%v\n%v", before, after)
	}
}

func TestRenderTreeErrorsChangeNothing(t *testing.T) {
	tests := []struct {
		name     string
		files    map[string]string
		wantText string
	}{
		{
			name:     "parse error names file and line",
			files:    map[string]string{"etc/a.yaml.tmpl": "ok: {{ .A }}\n", "manifests/bad.yaml.tmpl": "line1\nline2 {{ .A \n"},
			wantText: "manifests/bad.yaml.tmpl:2",
		},
		{
			name:     "unknown function names file and line",
			files:    map[string]string{"charts/c.tmpl": "\n\n{{ default .A \"x\" }}"},
			wantText: "charts/c.tmpl:3",
		},
		{
			name:     "bad base64 fails the template",
			files:    map[string]string{"etc/z.tmpl": "a\n{{ b64dec .A }}"},
			wantText: "etc/z.tmpl:2",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			writeTree(t, root, tt.files)
			before := snapshot(t, root)
			_, err := RenderTree(context.Background(), root, Env{"A": {"not base64!"}})
			if err == nil || !strings.Contains(err.Error(), tt.wantText) {
				t.Fatalf("error %v, want one naming %s", err, tt.wantText)
			}
			if after := snapshot(t, root); !reflect.DeepEqual(before, after) {
				t.Errorf("a failed render changed files:\n%v\n%v", before, after)
			}
		})
	}
}

func TestRenderTreeSymlinks(t *testing.T) {
	outside := t.TempDir()
	writeTree(t, outside, map[string]string{"secret.tmpl": "{{ .A }} from outside\n", "dir/x.tmpl": "{{ .A }}"})
	root := t.TempDir()
	writeTree(t, root, map[string]string{"etc/ok.tmpl": "{{ .A }}"})
	// A template that is a link out of the rootfs is not read, and a
	// directory link out of it is not walked.
	if err := os.Symlink(filepath.Join(outside, "secret.tmpl"), filepath.Join(root, "etc", "leak.tmpl")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "dir"), filepath.Join(root, "manifests")); err != nil {
		t.Fatal(err)
	}
	_, err := RenderTree(context.Background(), root, Env{"A": {"v"}})
	if !errors.Is(err, ErrPathEscape) {
		t.Fatalf("error %v, want ErrPathEscape for manifests/ linking out", err)
	}
	if _, err := os.Stat(filepath.Join(outside, "dir", "x")); !os.IsNotExist(err) {
		t.Error("a file was written outside the rootfs")
	}
	if _, err := os.Stat(filepath.Join(root, "etc", "ok")); !os.IsNotExist(err) {
		t.Error("a failed render wrote etc/ok")
	}
	// Without the directory link, the file link is skipped and the rest
	// renders.
	if err := os.Remove(filepath.Join(root, "manifests")); err != nil {
		t.Fatal(err)
	}
	rendered, err := RenderTree(context.Background(), root, Env{"A": {"v"}})
	if err != nil {
		t.Fatalf("RenderTree: %v", err)
	}
	if !reflect.DeepEqual(rendered, []string{"etc/ok"}) {
		t.Errorf("rendered %v, want only etc/ok", rendered)
	}
	if _, err := os.Stat(filepath.Join(root, "etc", "leak")); !os.IsNotExist(err) {
		t.Error("a template linking out of the rootfs was rendered")
	}
}

func TestRenderTreeCancelled(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{"etc/a.tmpl": "x"})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := RenderTree(ctx, root, nil); err == nil {
		t.Fatal("no error for a cancelled context")
	}
	if _, err := os.Stat(filepath.Join(root, "etc", "a")); !os.IsNotExist(err) {
		t.Error("cancelled render wrote a file")
	}
}
