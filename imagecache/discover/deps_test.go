package discover

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"
)

// TestChartImagesImportValues: import-values, in both of helm's forms,
// carries a subchart's values into its parent's templates, and the parent's
// own values win over what it imports (postgres:16.4 in the parent,
// postgres:16 in the subchart).
func TestChartImagesImportValues(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"Chart.yaml": "apiVersion: v2\nname: top\nversion: 1.0.0\ndependencies:\n" +
			"  - name: db\n    version: 1.0.0\n" +
			"    import-values:\n      - defaults\n      - {child: image, parent: dbImage}\n",
		"values.yaml": "dbImage: {tag: \"16.4\"}\n",
		"templates/pods.yaml": "kind: Pod\nspec:\n  containers:\n" +
			"    - image: \"{{ .Values.dbImage.repository }}:{{ .Values.dbImage.tag }}\"\n" +
			"    - image: \"{{ .Values.migrate.repository }}:{{ .Values.migrate.tag }}\"\n",
		"charts/db/Chart.yaml":         "apiVersion: v2\nname: db\nversion: 1.0.0\n",
		"charts/db/values.yaml":        "image: {repository: postgres, tag: \"16\"}\nexports:\n  defaults:\n    migrate: {repository: flyway/flyway, tag: \"10\"}\n",
		"charts/db/templates/sts.yaml": "kind: StatefulSet\nspec: {template: {spec: {containers: [{image: \"{{ .Values.image.repository }}:{{ .Values.image.tag }}\"}]}}}\n",
	})
	got, err := ChartImages(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"flyway/flyway:10", "postgres:16", "postgres:16.4"}; !slices.Equal(got, want) {
		t.Fatalf("ChartImages = %q, want %q", got, want)
	}
}

// TestChartImagesNestedMissingDependency: as in helm install and helm
// template, only the top chart's dependencies must be in charts/; a
// subchart whose own dependency is missing renders without it.
func TestChartImagesNestedMissingDependency(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"Chart.yaml":                  "apiVersion: v2\nname: top\nversion: 1.0.0\ndependencies:\n  - {name: mid, version: 1.0.0}\n",
		"charts/mid/Chart.yaml":       "apiVersion: v2\nname: mid\nversion: 1.0.0\ndependencies:\n  - {name: gone, version: 1.0.0}\n",
		"charts/mid/templates/p.yaml": "kind: Pod\nspec: {containers: [{image: mid:1}]}\n",
	})
	got, err := ChartImages(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"mid:1"}; !slices.Equal(got, want) {
		t.Fatalf("ChartImages = %q, want %q", got, want)
	}
}

// TestChartImagesMissingDependencies: every missing dependency of the top
// chart is named, under its chart name rather than its alias.
func TestChartImagesMissingDependencies(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "top")
	writeFiles(t, dir, map[string]string{
		"Chart.yaml": "apiVersion: v2\nname: top\nversion: 1.0.0\ndependencies:\n" +
			"  - {name: here, version: 1.0.0}\n  - {name: db, version: 1.0.0}\n  - {name: kv, alias: cache, version: 1.0.0}\n",
		"charts/here/Chart.yaml": "apiVersion: v2\nname: here\nversion: 1.0.0\n",
	})
	_, err := ChartImages(context.Background(), dir)
	if !errors.Is(err, ErrChart) {
		t.Fatalf("error = %v, want ErrChart", err)
	}
	const want = ": chart top: listed in Chart.yaml but missing from charts/ (run helm dependency build): db, kv"
	if got := err.Error(); got != dir+": render helm chart at default values"+want {
		t.Fatalf("error = %q, want it to end %q", got, want)
	}
}
