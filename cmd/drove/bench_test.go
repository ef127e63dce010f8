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

// TestBenchSwarmReports runs a small `drove bench swarm` on loopback (the
// uplink capped by --upload-limit): calibration, delivery and the star
// baseline all complete and the report has the keys, with every
// node having received about one image.
func TestBenchSwarmReports(t *testing.T) {
	const size = 8 << 20
	out := drove(t, t.TempDir(), "bench", "swarm", "--nodes", "2", "--size", "8MiB", "--uplink", "20MiB", "-o", "json")
	var r map[string]float64
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	for _, k := range []string{"nodes", "size_bytes", "uplink_bytes_per_s", "s_over_b_eff_s", "t_p50_s", "t_last_s",
		"seed_upload_bytes", "max_node_download_bytes", "star_s"} {
		if _, ok := r[k]; !ok {
			t.Errorf("report lacks %q: %s", k, out)
		}
	}
	if len(r) != 9 || r["nodes"] != 2 || r["size_bytes"] != size || r["t_last_s"] <= 0 || r["star_s"] <= 0 ||
		r["max_node_download_bytes"] < size {
		t.Fatalf("report %v", r)
	}
}
