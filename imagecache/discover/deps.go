package discover

import (
	"fmt"
	"strings"

	chart "helm.sh/helm/v4/pkg/chart/v2"
	chartutil "helm.sh/helm/v4/pkg/chart/v2/util"
)

// prepareDependencies does to c what `helm template` does to a chart's
// dependencies before rendering it with no values given: it fails when
// Chart.yaml lists a dependency that charts/ does not hold, then lets
// helm's own chartutil.ProcessDependencies rename aliased subcharts, leave
// out those whose condition or tags the default values turn off, and copy
// import-values from subcharts into their parents.
func prepareDependencies(c *chart.Chart) error {
	if err := checkDependencies(c); err != nil {
		return err
	}
	if err := chartutil.ProcessDependencies(c, map[string]any{}); err != nil {
		return fmt.Errorf("process dependencies: %w", err)
	}
	return nil
}

// checkDependencies fails when Chart.yaml of c lists a dependency whose
// name no chart in its charts/ directory has. Like helm install and helm
// template, it looks at the top chart only: a subchart's missing
// dependency is not rendered, and not installed either. (Helm's own check,
// action.CheckDependencies, lives in a package whose modules drove's go.sum
// does not hold.)
func checkDependencies(c *chart.Chart) error {
	if c.Metadata == nil {
		return nil
	}
	have := map[string]bool{}
	for _, d := range c.Dependencies() {
		have[d.Name()] = true
	}
	var missing []string
	for _, r := range c.Metadata.Dependencies {
		if r != nil && !have[r.Name] {
			missing = append(missing, r.Name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("chart %s: listed in Chart.yaml but missing from charts/ (run helm dependency build): %s", c.Name(), strings.Join(missing, ", "))
	}
	return nil
}
