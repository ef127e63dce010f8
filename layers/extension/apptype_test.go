package extension

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// writeTree creates files (paths ending in "/" are directories) under a
// new temporary directory and returns it as an fs.FS.
func writeTree(t *testing.T, paths ...string) fs.FS {
	t.Helper()
	root := t.TempDir()
	for _, p := range paths {
		full := filepath.Join(root, filepath.FromSlash(p))
		if p[len(p)-1] == '/' {
			if err := os.MkdirAll(full, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte("x: 1\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return os.DirFS(root)
}

func TestDetectApp(t *testing.T) {
	tree := []string{
		"chart/Chart.yaml", "chart/values.yaml", "chart/templates/deploy.yaml",
		"nochart/Chart.yaml", "nochart/values.yaml",
		"yamls/a.yaml", "yamls/b.YML", "yamls/sub/c.yaml",
		"scripts/b.sh", "scripts/a.sh",
		"more/z.sh",
		"mixed/app.yaml", "mixed/install.sh",
		"odd/readme.md", "odd/a.yaml",
		"empty/",
		"app.yaml", "install.sh", "notes.txt",
	}
	fsys := writeTree(t, tree...)
	tests := []struct {
		name    string
		sources []string
		typ     string
		files   []string
	}{
		{"helm chart dir", []string{"chart"}, AppTypeHelm, []string{"app"}},
		{"helm wins over others", []string{"app.yaml", "chart"}, AppTypeHelm, []string{"app"}},
		{"chart without templates is kube", []string{"nochart"}, AppTypeKube, []string{"Chart.yaml", "values.yaml"}},
		{"kube dir, nested, any case", []string{"yamls"}, AppTypeKube, []string{"a.yaml", "b.YML", "sub/c.yaml"}},
		{"kube file", []string{"app.yaml"}, AppTypeKube, []string{"app.yaml"}},
		{"kube files and dirs", []string{"app.yaml", "yamls"}, AppTypeKube, []string{"app.yaml", "a.yaml", "b.YML", "sub/c.yaml"}},
		{"shell dir", []string{"scripts"}, AppTypeShell, []string{"a.sh", "b.sh"}},
		{"shell uses first source only", []string{"scripts", "more"}, AppTypeShell, []string{"a.sh", "b.sh"}},
		{"shell file first", []string{"install.sh", "scripts"}, AppTypeShell, []string{"install.sh"}},
		{"mixed dir", []string{"mixed"}, "", nil},
		{"mixed sources", []string{"install.sh", "app.yaml"}, "", nil},
		{"other file", []string{"notes.txt"}, "", nil},
		{"other file in dir", []string{"odd"}, "", nil},
		{"empty dir", []string{"empty"}, "", nil},
		{"context root", []string{"."}, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app, err := DetectApp(context.Background(), fsys, "app", tt.sources)
			if err != nil {
				t.Fatal(err)
			}
			if app.Type != tt.typ || !reflect.DeepEqual(app.Files, tt.files) || app.Name != "app" || app.Version != AppVersion {
				t.Errorf("got type %q files %q (%+v), want type %q files %q", app.Type, app.Files, app, tt.typ, tt.files)
			}
		})
	}
}

func TestDetectAppErrors(t *testing.T) {
	fsys := writeTree(t, "a/x.yaml")
	_, err := DetectApp(context.Background(), fsys, "app", []string{"missing.yaml"})
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing source: error %v is not fs.ErrNotExist", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = DetectApp(ctx, fsys, "app", []string{"a"})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("canceled: error %v is not context.Canceled", err)
	}
}
