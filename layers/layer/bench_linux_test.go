package layer

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// makeBenchTree writes one random file of bigSize bytes and n small random
// files that together hold smallTotal bytes, in 100 directories.
func makeBenchTree(tb testing.TB, dir string, bigSize, smallTotal int64, n int) {
	tb.Helper()
	must(tb, os.MkdirAll(dir, 0o755))
	f, err := os.Create(filepath.Join(dir, "big.bin"))
	must(tb, err)
	_, err = io.CopyN(f, rand.Reader, bigSize)
	must(tb, err)
	must(tb, f.Close())
	small := make([]byte, smallTotal/int64(n))
	for i := range n {
		_, _ = rand.Read(small)
		p := filepath.Join(dir, fmt.Sprintf("d%02d/f%05d", i%100, i))
		if i < 100 {
			must(tb, os.MkdirAll(filepath.Dir(p), 0o755))
		}
		must(tb, os.WriteFile(p, small, 0o644))
	}
}

// tarSha256Baseline times `tar -c dir | sha256sum`, the reference the
// build's throughput is measured against; ok is false without those tools.
func tarSha256Baseline(tb testing.TB, dir string) (d time.Duration, ok bool) {
	tb.Helper()
	for _, tool := range []string{"tar", "sha256sum", "sh"} {
		if _, err := exec.LookPath(tool); err != nil {
			return 0, false
		}
	}
	run := func() time.Duration {
		start := time.Now()
		out, err := exec.Command("sh", "-c", `tar -cf - -C "$1" . | sha256sum`, "sh", dir).CombinedOutput()
		if err != nil {
			tb.Fatalf("baseline: %v: %s", err, out)
		}
		return time.Since(start)
	}
	run() // warm the page cache
	return run(), true
}

// writeDir writes the whole of dir as one layer, as a COPY of it would.
func writeDir(tb testing.TB, dir string, c Compression) Result {
	tb.Helper()
	entries, err := ResolveCopy(dir, []string{"."}, "/data/")
	must(tb, err)
	res, err := WriteLayer(context.Background(), io.Discard, entries, Options{Compression: c})
	must(tb, err)
	return res
}

// BenchmarkWriteLayer writes 64 MiB (a 48 MiB file and 2,000 small ones)
// with each compression and reports the throughput as a ratio of
// `tar -c | sha256sum` over the same files, measured in the same run
// (x-tar; the target is at least 0.6).
func BenchmarkWriteLayer(b *testing.B) {
	dir := filepath.Join(b.TempDir(), "tree")
	makeBenchTree(b, dir, 48<<20, 16<<20, 2000)
	baseline, haveBaseline := tarSha256Baseline(b, dir)
	for _, c := range []Compression{Zstd, Gzip, None} {
		b.Run(string(c), func(b *testing.B) {
			b.SetBytes(64 << 20)
			for b.Loop() {
				writeDir(b, dir, c)
			}
			if haveBaseline {
				perOp := b.Elapsed() / time.Duration(b.N)
				b.ReportMetric(float64(baseline)/float64(perOp), "x-tar")
			}
		})
	}
}
