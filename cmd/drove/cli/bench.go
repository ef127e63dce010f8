package cli

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/drove-project/drove/internal/progress"
	"github.com/drove-project/drove/layers/build"
	"github.com/drove-project/drove/layers/layer"
	"github.com/drove-project/drove/layers/store"
)

func newBenchCmd(g *Globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure drove against a baseline taken in the same run",
	}
	cmd.AddCommand(newBenchBuildCmd(g), newBenchStepsCmd(g), newBenchSwarmCmd(g), newBenchImagesCmd(g))
	return cmd
}

type benchBuildOptions struct {
	BigMiB      int
	SmallFiles  int
	SmallMiB    int
	Dir         string
	Compression string
	Output      string
}

// benchBuildResult is what `drove bench build -o json` prints.
type benchBuildResult struct {
	ContextBytes    int64   `json:"contextBytes"`
	BaselineSeconds float64 `json:"baselineSeconds"` // tar -c DIR | sha256sum
	BuildSeconds    float64 `json:"buildSeconds"`
	Ratio           float64 `json:"ratio"` // build throughput / baseline throughput
	WarmSeconds     float64 `json:"warmRebuildSeconds"`
	BaselineMiBps   float64 `json:"baselineMiBps"`
	BuildMiBps      float64 `json:"buildMiBps"`
	Compression     string  `json:"compression"`
	GoalRatio       float64 `json:"goalRatio"`
	GoalWarmSeconds float64 `json:"goalWarmSeconds"`
	MeetsRatioGoal  bool    `json:"meetsRatioGoal"`
	MeetsWarmGoal   bool    `json:"meetsWarmGoal"`
}

func newBenchBuildCmd(g *Globals) *cobra.Command {
	o := &benchBuildOptions{}
	cmd := &cobra.Command{
		Use:   "build",
		Short: "Time a build of a large context against tar | sha256sum over the same files",
		Long: `bench build writes a context of one large file and many small ones (random
data; 768 MiB + 10,000 files totalling 256 MiB by default), times
"tar -c DIR | sha256sum" over it as the baseline, then a cold build of
"COPY . data/" into a scratch store, then a warm rebuild (every step cached).
It prints both times, the throughput ratio (goal >= 0.6) and the warm
rebuild time (goal <= 1 s).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutputFormat(o.Output); err != nil {
				return err
			}
			return runBenchBuild(cmd.Context(), g, o)
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.BigMiB, "big-mib", 768, "size of the large file in MiB")
	f.IntVar(&o.SmallFiles, "small-files", 10000, "number of small files")
	f.IntVar(&o.SmallMiB, "small-mib", 256, "total size of the small files in MiB")
	f.StringVar(&o.Dir, "dir", "", "scratch directory (default: a temporary one, removed afterwards)")
	f.StringVar(&o.Compression, "compression", "gzip", "layer compression to measure")
	f.StringVarP(&o.Output, "output", "o", "table", "output format: table, json or yaml")
	return cmd
}

// benchDir is where a benchmark works: explicit when given (kept), else a
// new temporary directory named after the bench, removed by cleanup. With
// inMemory it is made in /dev/shm when there is one: benches of the
// network should not measure the disk.
func benchDir(explicit, bench string, inMemory bool) (dir string, cleanup func(), err error) {
	if explicit != "" {
		return explicit, func() {}, nil
	}
	parent := ""
	if st, err := os.Stat("/dev/shm"); inMemory && err == nil && st.IsDir() {
		parent = "/dev/shm"
	}
	d, err := os.MkdirTemp(parent, "drove-bench-"+bench+"-")
	if err != nil {
		return "", nil, err
	}
	return d, func() { os.RemoveAll(d) }, nil
}

func runBenchBuild(ctx context.Context, g *Globals, o *benchBuildOptions) error {
	dir, cleanup, err := benchDir(o.Dir, "build", false)
	if err != nil {
		return err
	}
	defer cleanup()
	ctxDir := filepath.Join(dir, "context")
	fmt.Fprintf(g.Err, "writing context in %s ...\n", ctxDir)
	size, err := writeBenchContext(ctxDir, o)
	if err != nil {
		return err
	}
	kf := filepath.Join(dir, "Kubefile")
	if err := os.WriteFile(kf, []byte("FROM scratch\nCOPY . data/\n"), 0o644); err != nil {
		return err
	}

	fmt.Fprintln(g.Err, "baseline: tar -c DIR | sha256sum ...")
	start := time.Now()
	tarCmd := exec.CommandContext(ctx, "sh", "-c", `tar -C "$1" -cf - . | sha256sum >/dev/null`, "sh", ctxDir)
	tarCmd.Stderr = g.Err
	if err := tarCmd.Run(); err != nil {
		return fmt.Errorf("baseline tar | sha256sum: %w", err)
	}
	baseline := time.Since(start)

	s, err := store.Open(filepath.Join(dir, "data", "store"))
	if err != nil {
		return err
	}
	bo := build.Options{File: kf, Context: ctxDir, Tags: []string{"bench:build"}, Compression: layer.Compression(o.Compression),
		WorkDir: filepath.Join(dir, "data", "build"), Out: io.Discard, Progress: progress.New(io.Discard, true)}
	fmt.Fprintln(g.Err, "cold build ...")
	start = time.Now()
	if _, err := build.Build(ctx, s, bo); err != nil {
		return err
	}
	cold := time.Since(start)
	fmt.Fprintln(g.Err, "warm rebuild ...")
	start = time.Now()
	res, err := build.Build(ctx, s, bo)
	if err != nil {
		return err
	}
	warm := time.Since(start)
	if res.Cached != res.Steps {
		return fmt.Errorf("warm rebuild reused %d of %d steps: the cache is broken", res.Cached, res.Steps)
	}
	mib := float64(size) / (1 << 20)
	r := benchBuildResult{
		ContextBytes: size, BaselineSeconds: baseline.Seconds(), BuildSeconds: cold.Seconds(),
		Ratio: baseline.Seconds() / cold.Seconds(), WarmSeconds: warm.Seconds(),
		BaselineMiBps: mib / baseline.Seconds(), BuildMiBps: mib / cold.Seconds(),
		Compression: o.Compression, GoalRatio: 0.6, GoalWarmSeconds: 1,
	}
	r.MeetsRatioGoal = r.Ratio >= r.GoalRatio
	r.MeetsWarmGoal = r.WarmSeconds <= r.GoalWarmSeconds
	if o.Output != "table" {
		return writeStructured(g.Out, o.Output, r)
	}
	fmt.Fprintf(g.Out, "context:            %s (%d small files)\n", progress.HumanBytes(size), o.SmallFiles)
	fmt.Fprintf(g.Out, "tar | sha256sum:    %.2f s (%.0f MiB/s)\n", r.BaselineSeconds, r.BaselineMiBps)
	fmt.Fprintf(g.Out, "drove build (%s): %.2f s (%.0f MiB/s)\n", o.Compression, r.BuildSeconds, r.BuildMiBps)
	fmt.Fprintf(g.Out, "ratio:              %.2f (goal >= %.1f: %s)\n", r.Ratio, r.GoalRatio, pass(r.MeetsRatioGoal))
	fmt.Fprintf(g.Out, "warm rebuild:       %.3f s (goal <= %.0f s: %s)\n", r.WarmSeconds, r.GoalWarmSeconds, pass(r.MeetsWarmGoal))
	return nil
}

func pass(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

// writeBenchContext fills dir with random data: one big file and many small
// ones spread over 100 directories.
func writeBenchContext(dir string, o *benchBuildOptions) (int64, error) {
	rng := rand.NewChaCha8([32]byte{'d', 'r', 'o', 'v', 'e'})
	buf := make([]byte, 1<<20)
	var total int64
	write := func(path string, n int64) error {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		for n > 0 {
			chunk := min(n, int64(len(buf)))
			rng.Read(buf[:chunk])
			if _, err := f.Write(buf[:chunk]); err != nil {
				f.Close()
				return err
			}
			n -= chunk
			total += chunk
		}
		return f.Close()
	}
	if err := write(filepath.Join(dir, "big.bin"), int64(o.BigMiB)<<20); err != nil {
		return 0, err
	}
	if o.SmallFiles > 0 {
		each := (int64(o.SmallMiB) << 20) / int64(o.SmallFiles)
		for i := 0; i < o.SmallFiles; i++ {
			if err := write(filepath.Join(dir, fmt.Sprintf("d%02d", i%100), fmt.Sprintf("f%05d", i)), each); err != nil {
				return 0, err
			}
		}
	}
	return total, nil
}
