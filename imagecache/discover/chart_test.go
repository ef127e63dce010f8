package discover

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// webImages are the images of testdata/charts/web at its default values:
// its own templated image, its subchart with the parent's tag, and the same
// subchart under an alias with the parent's repository. The debug
// container and the metrics subchart are off by default.
var webImages = []string{
	"docker.io/library/redis:7.2.4",
	"docker.io/valkey/valkey:7.2",
	"registry.example.com/team/web:1.2.3",
}

func TestChartImages(t *testing.T) {
	got, err := ChartImages(context.Background(), "testdata/charts/web")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"redis:7.2.4", "registry.example.com/team/web:1.2.3", "valkey/valkey:7.2"}
	if !slices.Equal(got, want) {
		t.Fatalf("ChartImages = %q, want %q", got, want)
	}
}

// TestChartImagesEnabled turns on what testdata/charts/web disables by
// default: the images left out above must then appear, which shows they
// were left out by the condition and the if, not by accident.
func TestChartImagesEnabled(t *testing.T) {
	dir := copyTestdata(t, "testdata/charts/web")
	values := filepath.Join(dir, "values.yaml")
	data, err := os.ReadFile(values)
	if err != nil {
		t.Fatal(err)
	}
	data = []byte(strings.ReplaceAll(string(data), "enabled: false", "enabled: true"))
	if err := os.WriteFile(values, data, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := ChartImages(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"busybox:1.36", "quay.io/prometheus/node-exporter:v1.8.0", "redis:7.2.4", "registry.example.com/team/web:1.2.3", "valkey/valkey:7.2"}
	if !slices.Equal(got, want) {
		t.Fatalf("ChartImages = %q, want %q", got, want)
	}
}

// TestChartImagesTags: a dependency whose tag is false at the default
// values is left out; a true condition wins over a false tag.
func TestChartImagesTags(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"Chart.yaml": "apiVersion: v2\nname: top\nversion: 1.0.0\ndependencies:\n" +
			"  - {name: a, version: 1.0.0, tags: [extras]}\n" +
			"  - {name: b, version: 1.0.0, tags: [extras], condition: b.enabled}\n",
		"values.yaml":                 "tags: {extras: false}\nb: {enabled: true}\n",
		"charts/a/Chart.yaml":         "apiVersion: v2\nname: a\nversion: 1.0.0\n",
		"charts/a/templates/pod.yaml": "kind: Pod\nspec: {containers: [{image: a:1}]}\n",
		"charts/b/Chart.yaml":         "apiVersion: v2\nname: b\nversion: 1.0.0\n",
		"charts/b/templates/pod.yaml": "kind: Pod\nspec: {containers: [{image: b:1}]}\n",
	})
	got, err := ChartImages(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"b:1"}; !slices.Equal(got, want) {
		t.Fatalf("ChartImages = %q, want %q", got, want)
	}
}

func TestChartImagesErrors(t *testing.T) {
	for _, tc := range []struct {
		name     string
		files    map[string]string
		sentinel error
		want     []string
	}{
		{
			name: "required value",
			files: map[string]string{
				"Chart.yaml":             "apiVersion: v2\nname: broken\nversion: 1.0.0\n",
				"templates/deploy.yaml":  "image: {{ required \"image.tag is required\" .Values.image.tag }}\n",
				"values.yaml":            "image: {}\n",
				"templates/_helpers.tpl": "",
			},
			sentinel: ErrChart,
			want:     []string{"image.tag is required"},
		},
		{
			name: "unknown function",
			files: map[string]string{
				"Chart.yaml":            "apiVersion: v2\nname: broken\nversion: 1.0.0\n",
				"templates/deploy.yaml": "a: b\n\nimage: {{ nosuchfunc }}\n",
			},
			sentinel: ErrChart,
			want:     []string{"broken/templates/deploy.yaml:3", "nosuchfunc"},
		},
		{
			name: "missing dependency",
			files: map[string]string{
				"Chart.yaml": "apiVersion: v2\nname: broken\nversion: 1.0.0\ndependencies:\n  - {name: db, version: 1.0.0, repository: https://charts.example.com}\n",
			},
			sentinel: ErrChart,
			want:     []string{"db", "missing from charts/"},
		},
		{
			name:     "bad Chart.yaml",
			files:    map[string]string{"Chart.yaml": "apiVersion: v2\nname: [\n"},
			sentinel: ErrChart,
			want:     []string{"Chart.yaml"},
		},
		{
			name: "rendered manifest not YAML",
			files: map[string]string{
				"Chart.yaml":          "apiVersion: v2\nname: broken\nversion: 1.0.0\n",
				"templates/pod.yaml":  "kind: Pod\nspec:\n  containers: [\n",
				"templates/good.yaml": "kind: Pod\n",
			},
			sentinel: ErrSyntax,
			want:     []string{"broken/templates/pod.yaml:3: yaml syntax error"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "broken")
			writeFiles(t, dir, tc.files)
			got, err := ChartImages(context.Background(), dir)
			if err == nil {
				t.Fatalf("ChartImages = %q, want an error", got)
			}
			if !errors.Is(err, tc.sentinel) {
				t.Errorf("error does not wrap %v: %v", tc.sentinel, err)
			}
			if !strings.Contains(err.Error(), dir) {
				t.Errorf("error does not name the chart %s: %v", dir, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not say %q: %v", w, err)
				}
			}
		})
	}
}

func TestChartImagesCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := ChartImages(ctx, "testdata/charts/web"); !errors.Is(err, context.Canceled) {
		t.Fatalf("error = %v, want context.Canceled", err)
	}
}

// copyTestdata copies the chart in dir into a new temporary directory and
// returns where.
func copyTestdata(t *testing.T, dir string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), filepath.Base(dir))
	if err := os.CopyFS(dst, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	return dst
}

// writeFiles writes files (slash-separated paths relative to dir).
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
