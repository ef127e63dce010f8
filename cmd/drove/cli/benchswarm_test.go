package cli

import (
	"strings"
	"testing"

	"github.com/drove-project/drove/internal/cpustat"
)

// TestHostCPULine: the bench's CPU line gives the measured shares and
// flags a run whose CPUs were busy or stolen (at least cpuBound) as
// CPU-bound, and only such a run.
func TestHostCPULine(t *testing.T) {
	for _, tc := range []struct {
		u     cpustat.Usage
		want  string
		bound bool
	}{
		{cpustat.Usage{Busy: 0.63, Idle: 0.37}, "63% busy during delivery, 0% stolen", false},
		{cpustat.Usage{Busy: 0.99, Idle: 0.01}, "99% busy during delivery, 0% stolen", true},
		{cpustat.Usage{Busy: 0.80, Idle: 0.05, Steal: 0.15}, "80% busy during delivery, 15% stolen", true},
		{cpustat.Usage{Busy: 0.89, Idle: 0.11}, "89% busy", false},
	} {
		got := hostCPULine(tc.u)
		if !strings.Contains(got, tc.want) || strings.Contains(got, "CPU-bound") != tc.bound {
			t.Errorf("hostCPULine(%+v) = %q, want %q, CPU-bound flagged: %v", tc.u, got, tc.want, tc.bound)
		}
	}
}
