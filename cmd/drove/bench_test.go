package main

import (
	"encoding/json"
	"testing"
)

// TestBenchStepsReports runs a small `drove bench steps` end to end: the
// lab comes up, every step is committed, and the report carries the
// measured figures and the baseline (the numbers themselves are for
// people, not for assertions on a shared machine).
func TestBenchStepsReports(t *testing.T) {
	out := drove(t, t.TempDir(), "bench", "steps", "--agents", "2", "--masters", "1", "--steps", "20", "--steady", "3", "-o", "json")
	var r struct {
		Steps         int     `json:"steps"`
		ResultsPerSec float64 `json:"resultsPerSecond"`
		SteadyP99Ms   float64 `json:"steadyDispatchToResultP99Ms"`
		NATSP99Ms     float64 `json:"natsRequestReplyP99Ms"`
		Ratio         float64 `json:"steadyP99OverNatsP99"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if r.Steps != 20 || r.ResultsPerSec <= 0 || r.NATSP99Ms <= 0 || r.Ratio <= 0 {
		t.Fatalf("report %+v", r)
	}
}
