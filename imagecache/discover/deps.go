package discover

import (
	"fmt"
	"strings"

	chartcommon "helm.sh/helm/v4/pkg/chart/common"
	chartvalues "helm.sh/helm/v4/pkg/chart/common/util"
	chart "helm.sh/helm/v4/pkg/chart/v2"
)

// prepareDependencies does to c what helm does to a chart's subcharts
// before rendering, as Helm's documentation of Chart.yaml dependencies
// describes it: it fails when a listed dependency is missing from charts/,
// renames aliased subcharts, and leaves out the subcharts that the default
// values disable through their condition or tags. Charts in charts/ that
// Chart.yaml does not list are always kept. Not done: import-values.
//
// (helm's own code for this, pkg/chart/v2/util, is not used: it pulls in a
// module drove's go.sum does not hold.)
func prepareDependencies(c *chart.Chart) error {
	if err := checkDependencies(c); err != nil {
		return err
	}
	applyAliases(c)
	vals, err := chartvalues.CoalesceValues(c, map[string]any{})
	if err != nil {
		return fmt.Errorf("coalesce default values: %w", err)
	}
	pruneDisabled(c, vals, "")
	return nil
}

// checkDependencies fails when Chart.yaml of c or of one of its subcharts
// lists a dependency that its charts/ directory does not hold, as helm
// install does: its images would be silently missing.
func checkDependencies(c *chart.Chart) error {
	have := map[string]bool{}
	for _, d := range c.Dependencies() {
		have[d.Name()] = true
	}
	var missing []string
	for _, r := range listed(c) {
		if !have[r.Name] {
			missing = append(missing, r.Name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("chart %s: listed in Chart.yaml but missing from charts/ (run helm dependency build): %s", c.ChartFullPath(), strings.Join(missing, ", "))
	}
	for _, d := range c.Dependencies() {
		if err := checkDependencies(d); err != nil {
			return err
		}
	}
	return nil
}

// listed returns the dependencies Chart.yaml of c lists.
func listed(c *chart.Chart) []*chart.Dependency {
	if c.Metadata == nil {
		return nil
	}
	var out []*chart.Dependency
	for _, r := range c.Metadata.Dependencies {
		if r != nil {
			out = append(out, r)
		}
	}
	return out
}

// applyAliases replaces, through the whole tree under c, each subchart
// that Chart.yaml lists under one or more aliases by renamed copies, one per
// alias: templates and values then go by the alias, as in helm.
func applyAliases(c *chart.Chart) {
	byName := map[string]*chart.Chart{}
	for _, d := range c.Dependencies() {
		byName[d.Name()] = d
	}
	var aliased []*chart.Dependency
	for _, r := range listed(c) {
		if r.Alias != "" && r.Alias != r.Name {
			aliased = append(aliased, r)
		}
	}
	if len(aliased) > 0 {
		keep := map[string]bool{} // names still used unaliased
		for _, r := range listed(c) {
			if r.Alias == "" || r.Alias == r.Name {
				keep[r.Name] = true
			}
		}
		var deps []*chart.Chart
		for _, d := range c.Dependencies() {
			if keep[d.Name()] || !isListed(c, d.Name()) {
				deps = append(deps, d)
			}
		}
		for _, r := range aliased {
			cp := copyChart(byName[r.Name])
			cp.Metadata.Name = r.Alias
			deps = append(deps, cp)
		}
		c.SetDependencies(deps...)
	}
	for _, d := range c.Dependencies() {
		applyAliases(d)
	}
}

// isListed reports whether Chart.yaml of c lists a dependency named name.
func isListed(c *chart.Chart, name string) bool {
	for _, r := range listed(c) {
		if r.Name == name {
			return true
		}
	}
	return false
}

// copyChart copies c and its subcharts deep enough to rename and re-parent
// them without touching the original tree.
func copyChart(c *chart.Chart) *chart.Chart {
	out := *c
	md := *c.Metadata
	out.Metadata = &md
	subs := make([]*chart.Chart, 0, len(c.Dependencies()))
	for _, d := range c.Dependencies() {
		subs = append(subs, copyChart(d))
	}
	out.SetDependencies(subs...)
	return &out
}

// pruneDisabled removes, through the tree under c, the subcharts that
// Chart.yaml lists with a condition or tags that vals (the coalesced default
// values of the top chart) turn off; prefix is c's path in vals ("" for the
// top chart, "web." below it). Conditions are tried in order and the first
// one that is a bool decides; without one, tags decide: off if one is false
// and none is true.
func pruneDisabled(c *chart.Chart, vals chartcommon.Values, prefix string) {
	off := map[string]bool{}
	for _, r := range listed(c) {
		if !enabled(r, vals, prefix) {
			name := r.Name
			if r.Alias != "" {
				name = r.Alias
			}
			off[name] = true
		}
	}
	var keep []*chart.Chart
	for _, d := range c.Dependencies() {
		if !off[d.Name()] {
			keep = append(keep, d)
		}
	}
	if len(keep) != len(c.Dependencies()) {
		c.SetDependencies(keep...)
	}
	for _, d := range keep {
		pruneDisabled(d, vals, prefix+d.Name()+".")
	}
}

// enabled decides whether dependency r is on at vals.
func enabled(r *chart.Dependency, vals chartcommon.Values, prefix string) bool {
	for _, cond := range strings.Split(r.Condition, ",") {
		if cond = strings.TrimSpace(cond); cond == "" {
			continue
		}
		if v, err := vals.PathValue(prefix + cond); err == nil {
			if b, ok := v.(bool); ok {
				return b
			}
		}
	}
	tags, err := vals.Table("tags")
	if err != nil {
		return true
	}
	var anyTrue, anyFalse bool
	for _, t := range r.Tags {
		if b, ok := tags[t].(bool); ok {
			anyTrue = anyTrue || b
			anyFalse = anyFalse || !b
		}
	}
	return anyTrue || !anyFalse
}
