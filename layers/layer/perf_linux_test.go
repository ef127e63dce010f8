//go:build perf

package layer

import (
	"path/filepath"
	"testing"
	"time"
)

// TestWriteLayerThroughput checks the build throughput target on 1 GiB (a
// 768 MiB random file and 10,000 small files): writing a zstd layer must
// take at most 1/0.6 of the time of `tar -c | sha256sum` over the same
// files. It needs about 1 GiB of disk and a minute; run it with -tags perf.
func TestWriteLayerThroughput(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tree")
	makeBenchTree(t, dir, 768<<20, 256<<20, 10000)
	baseline, ok := tarSha256Baseline(t, dir)
	if !ok {
		t.Skip("tar or sha256sum not installed")
	}
	writeDir(t, dir, Zstd) // warm up like the baseline
	start := time.Now()
	writeDir(t, dir, Zstd)
	ours := time.Since(start)
	ratio := float64(baseline) / float64(ours)
	t.Logf("tar|sha256sum %v, WriteLayer(zstd) %v: %.2fx", baseline, ours, ratio)
	if ratio < 0.6 {
		t.Errorf("throughput %.2fx of tar|sha256sum, want at least 0.6x", ratio)
	}
}
