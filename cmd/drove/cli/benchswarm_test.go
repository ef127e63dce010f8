package cli

import (
	"strings"
	"testing"
	"time"

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

// TestCPUTraceUntil: the usage runs from the first sample to the first one
// at or after the asked time, and is unknown without such a sample.
func TestCPUTraceUntil(t *testing.T) {
	c := &cpuTrace{samples: []cpuSample{
		{0, cpustat.Sample{Busy: 100, Idle: 100}},
		{time.Second, cpustat.Sample{Busy: 150, Idle: 150}},     // half busy so far
		{2 * time.Second, cpustat.Sample{Busy: 340, Idle: 160}}, // then nearly all busy
		{3 * time.Second, cpustat.Sample{Busy: 340, Idle: 360}}, // then idle
	}}
	for _, tc := range []struct {
		d    time.Duration
		want float64
	}{
		{time.Second, 0.5}, {1500 * time.Millisecond, 0.8}, {2 * time.Second, 0.8}, {3 * time.Second, 0.48},
	} {
		u := c.until(tc.d)
		if u == nil || u.Busy != tc.want {
			t.Errorf("until(%v) = %+v, want busy %v", tc.d, u, tc.want)
		}
	}
	if u := c.until(4 * time.Second); u != nil {
		t.Errorf("until(4s) = %+v, want nil: no sample that late", u)
	}
	if u := (&cpuTrace{samples: c.samples[:1]}).until(0); u != nil {
		t.Errorf("one sample: until = %+v, want nil", u)
	}
}
