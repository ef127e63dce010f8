package discover

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	chartcommon "helm.sh/helm/v4/pkg/chart/common"
	chartvalues "helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"
)

// Release values templates see, as `helm template` sets them.
const (
	releaseName      = "release-name"
	releaseNamespace = "default"
)

// chartFound is one image field of a rendered chart.
type chartFound struct {
	Template string // as helm names it: "web/charts/cache/templates/sts.yaml"
	Found
}

// ChartImages renders the Helm chart in chartDir at its default values
// (values.yaml) and returns the image fields of every rendered manifest
// (see ManifestImages), as rendered, sorted and without duplicates.
// Subcharts render with their parent, processed by helm's own code as
// `helm template` does: aliases, conditions and tags, import-values.
// Nothing is fetched: a dependency that the top chart's Chart.yaml lists
// but its charts/ lacks is an error (as in helm, a subchart's own missing
// dependency is just not rendered).
//
// A chart that does not load or render is an *Error wrapping ErrChart and
// naming chartDir with helm's message; a rendered manifest that is not YAML
// is an *Error wrapping ErrSyntax naming the template and line.
func ChartImages(ctx context.Context, chartDir string) ([]string, error) {
	found, err := chartImages(ctx, chartDir, chartDir)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(found))
	for _, f := range found {
		out = append(out, f.Ref)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// chartImages renders the chart in dir; name is how errors call it.
func chartImages(ctx context.Context, dir, name string) ([]chartFound, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rendered, err := renderChart(dir)
	if err != nil {
		return nil, &Error{File: name, Msg: "render helm chart at default values: " + err.Error(), Err: ErrChart}
	}
	templates := make([]string, 0, len(rendered))
	for t := range rendered {
		if !strings.HasSuffix(t, "NOTES.txt") {
			templates = append(templates, t)
		}
	}
	sort.Strings(templates)
	var out []chartFound
	for _, t := range templates {
		found, err := ManifestImages([]byte(rendered[t]), t)
		if err != nil {
			return nil, fmt.Errorf("helm chart %s rendered at default values: %w", name, err)
		}
		for _, f := range found {
			out = append(out, chartFound{Template: t, Found: f})
		}
	}
	return out, nil
}

// renderChart loads the chart in dir and renders it as `helm template`
// would with no values given: templates by name, partials left out.
func renderChart(dir string) (out map[string]string, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("helm panicked: %v", r)
		}
	}()
	chrt, err := loader.LoadDir(dir)
	if err != nil {
		return nil, err
	}
	if err := prepareDependencies(chrt); err != nil {
		return nil, err
	}
	opts := chartcommon.ReleaseOptions{Name: releaseName, Namespace: releaseNamespace, Revision: 1, IsInstall: true}
	vals, err := chartvalues.ToRenderValues(chrt, map[string]any{}, opts, chartcommon.DefaultCapabilities.Copy())
	if err != nil {
		return nil, err
	}
	return engine.Render(chrt, vals)
}
