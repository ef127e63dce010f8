package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/drove-project/drove/internal/lab"
	"github.com/drove-project/drove/internal/progress"
	"github.com/drove-project/drove/internal/testcontainerd"
	"github.com/drove-project/drove/layers/store"
)

// benchClusterImage is the name the bench gives its cluster image.
const benchClusterImage = "bench/images:v1"

type benchImagesOptions struct {
	Nodes  int
	Images int
	Size   string
	Uplink string
	NetNS  bool
	Output string
	Dir    string
}

// benchImagesResult is `drove bench images -o json`.
type benchImagesResult struct {
	Nodes           int     `json:"nodes"`
	Images          int     `json:"images"`
	SizeBytes       int64   `json:"size_bytes"` // all the container images' layer content
	UplinkBytesPerS int64   `json:"uplink_bytes_per_s"`
	SOverBS         float64 `json:"s_over_b_s"` // one copy through one uplink
	// The registry baseline: every node pulls every image from one
	// registry behind one uplink.
	TRegistryS          float64 `json:"t_registry_s"`
	TRegistryP50S       float64 `json:"t_registry_p50_s"`
	RegistrySlowestNode string  `json:"registry_slowest_node"`
	RegistryUploadBytes int64   `json:"registry_upload_bytes"`
	// drove: `drove run --import` of a cluster image caching the same
	// images, served by one seed node behind the same uplink.
	TDroveS           float64 `json:"t_drove_s"`
	TDroveP50S        float64 `json:"t_drove_p50_s"`
	DroveSlowestNode  string  `json:"drove_slowest_node"`
	DroveDistributedS float64 `json:"drove_distributed_s"` // the last node had the cluster image unpacked
	DroveRunS         float64 `json:"drove_run_s"`         // the whole command, until it returned
	SeedUploadBytes   int64   `json:"seed_upload_bytes"`
	Ratio             float64 `json:"ratio"` // t_registry / t_drove
}

func newBenchImagesCmd(g *Globals) *cobra.Command {
	o := &benchImagesOptions{}
	cmd := &cobra.Command{
		Use:   "images",
		Short: "Time importing cached container images via drove against every node pulling from one registry",
		Long: `bench images starts its own lab in network namespaces (root): a coordinator,
a seed node, --nodes receivers, each with its own containerd in its
namespace, and a bare host running a real registry (docker-registry). Every
link, the registry's included, is capped at --uplink by tc tbf. The registry
holds --images random container images, --size bytes of layers in all; a
cluster image caching them (as drove build does) is in the seed's store.

  1. the baseline: every receiver pulls every image from the registry at
     once (ctr image pull, run in the node's namespace), until the last
     node has them all;
  2. drove: drove run IMAGE --import over the receivers with the seed as
     the image's origin (the distribute and container-images steps), until
     the last node has imported them all.

Both sides start from one copy behind one capped uplink. It reports both
times, when the slowest node finished on each side, what the registry and
the seed sent (their links' counters), and the ratio t_registry / t_drove.
Both sides end checked: every node's containerd has every image at its
digest, unpacked.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutputFormat(o.Output); err != nil {
				return err
			}
			if o.Nodes < 1 || o.Images < 1 {
				return usageErrorf("--nodes and --images must be at least 1")
			}
			if !o.NetNS {
				return usageErrorf("--netns is required (root): without network namespaces the registry and the seed share this machine's loopback and no uplink caps either side, so the comparison would measure the CPU")
			}
			return runBenchImages(cmd.Context(), g, o)
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.Nodes, "nodes", 16, "receiving nodes")
	f.IntVar(&o.Images, "images", 4, "container images")
	f.StringVar(&o.Size, "size", "64MiB", "bytes of all the container images together (split over their random layers, 3 each)")
	f.StringVar(&o.Uplink, "uplink", "100mbit", "every node's uplink, the registry's included")
	f.BoolVar(&o.NetNS, "netns", false, "network namespaces and tc tbf (root; required)")
	f.StringVar(&o.Dir, "dir", "", "bench directory (default: a temporary one, in /dev/shm when it exists: the bench measures the network, not the disk)")
	f.StringVarP(&o.Output, "output", "o", "table", "output format: table, json or yaml")
	return cmd
}

func runBenchImages(ctx context.Context, g *Globals, o *benchImagesOptions) error {
	size, err := ParseRate(o.Size) // same units
	if err != nil {
		return usageErrorf("--size: %v", err)
	}
	rate, err := ParseRate(o.Uplink)
	if err != nil {
		return usageErrorf("--uplink: %v", err)
	}
	if size < int64(o.Images*benchLayersPerImage) {
		return usageErrorf("--size %s: want at least one byte per layer (%d layers)", o.Size, o.Images*benchLayersPerImage)
	}
	for _, b := range []string{registryBinary, testcontainerd.Binary, testcontainerd.CtrBinary} {
		if _, err := os.Stat(b); err != nil {
			return fmt.Errorf("bench images needs %s (Debian packages docker-registry and containerd): %w", b, err)
		}
	}
	dir, cleanup, err := benchDir(o.Dir, "images", true)
	if err != nil {
		return err
	}
	defer cleanup()
	bin, err := os.Executable()
	if err != nil {
		return err
	}
	// m1 coordinates, n1 seeds, n2.. receive, h1 (bare) runs the registry.
	ctdDir := func(node, side string) string { return filepath.Join(dir, "containerd", node+"-"+side) }
	nodeArgs := map[string][]string{}
	for i := range o.Nodes {
		n := fmt.Sprintf("n%d", i+2)
		nodeArgs[n] = []string{"--containerd-address", testcontainerd.LayoutFor(ctdDir(n, "drove")).Address}
	}
	// LAN timers and one thread of Go code per agent, as bench swarm.
	lo := lab.Options{Dir: filepath.Join(dir, "lab"), Binary: bin, Masters: 1, Nodes: o.Nodes + 1, Bare: 1, FirstIP: 101,
		NetNS: true, Uplink: o.Uplink, ExtraArgs: []string{"--fast=false"}, Env: []string{"GOMAXPROCS=1"}, NodeArgs: nodeArgs}
	fmt.Fprintf(g.Err, "starting a lab: 1 coordinator, 1 seed, %d receivers, 1 registry host ...\n", o.Nodes)
	l, nc, err := startBenchLab(ctx, lo)
	if err != nil {
		return err
	}
	defer l.Down()
	nc.Close() // drove run connects by itself
	seed, host := l.Nodes[1], l.Nodes[len(l.Nodes)-1]
	receivers := l.Nodes[2 : 2+o.Nodes]

	reg, regHost, err := startBenchRegistry(ctx, host.NetNS, host.Addr, filepath.Join(dir, "registry"))
	if err != nil {
		return err
	}
	defer reg.stop()
	fmt.Fprintf(g.Err, "pushing %d container images (%s) to the registry on %s ...\n", o.Images, progress.HumanBytes(size), host.Name)
	images, err := pushBenchImages(ctx, regHost, o.Images, size)
	if err != nil {
		return err
	}
	fmt.Fprintf(g.Err, "building %s caching them, into %s's store ...\n", benchClusterImage, seed.Name)
	cliDir := filepath.Join(dir, "cli")
	cliStore, err := store.Open(filepath.Join(cliDir, "store"))
	if err != nil {
		return err
	}
	desc, err := buildBenchClusterImage(ctx, cliStore, cliDir, benchClusterImage, images)
	if err != nil {
		return err
	}
	seedStore, err := store.Open(filepath.Join(seed.DataDir, "store"))
	if err != nil {
		return err
	}
	if err := copyImage(ctx, cliStore, seedStore, desc, benchClusterImage); err != nil {
		return err
	}

	fmt.Fprintf(g.Err, "registry baseline: %d nodes pull %d images at once ...\n", o.Nodes, o.Images)
	regNodes, stopReg, err := startBenchContainerds(ctx, receivers, func(n string) string { return ctdDir(n, "registry") })
	if err != nil {
		return err
	}
	defer stopReg()
	sentBefore, err := vethSent(host.Veth)
	if err != nil {
		return err
	}
	regDone, err := pullFromRegistry(ctx, regNodes, images)
	if err != nil {
		return err
	}
	sentAfter, err := vethSent(host.Veth)
	if err != nil {
		return err
	}
	regSent := sentAfter - sentBefore
	if err := checkAll(ctx, regNodes, images); err != nil {
		return fmt.Errorf("after the registry baseline: %w", err)
	}
	// The baseline's daemons and their copies go before drove's side
	// starts: the machine's memory holds one side at a time.
	stopReg()
	for _, n := range receivers {
		if err := removeContainerdDir(ctdDir(n.Name, "registry")); err != nil {
			return err
		}
	}

	fmt.Fprintf(g.Err, "drove: drove run %s --import on %d nodes, seeded by %s ...\n", benchClusterImage, o.Nodes, seed.Name)
	droveNodes, stopDrove, err := startBenchContainerds(ctx, receivers, func(n string) string { return ctdDir(n, "drove") })
	if err != nil {
		return err
	}
	defer stopDrove()
	var ips []string
	for _, n := range receivers {
		ips = append(ips, n.Addr)
	}
	if sentBefore, err = vethSent(seed.Veth); err != nil {
		return err
	}
	dr, err := runDroveImport(ctx, cliDir, benchClusterImage, seed.Name, ips[:1], ips[1:], l.Servers(), filepath.Join(l.Dir, "token"))
	if err != nil {
		return err
	}
	if sentAfter, err = vethSent(seed.Veth); err != nil {
		return err
	}
	if err := checkAll(ctx, droveNodes, images); err != nil {
		return fmt.Errorf("after drove run --import: %w", err)
	}

	r := benchImagesResult{Nodes: o.Nodes, Images: o.Images, SizeBytes: size, UplinkBytesPerS: rate,
		SOverBS: float64(size) / float64(rate), RegistryUploadBytes: regSent, SeedUploadBytes: sentAfter - sentBefore,
		DroveRunS: dr.wall.Seconds(), DroveDistributedS: dr.distributed.Seconds()}
	r.RegistrySlowestNode, r.TRegistryS, r.TRegistryP50S = slowest(regDone)
	r.DroveSlowestNode, r.TDroveS, r.TDroveP50S = slowest(dr.done)
	r.Ratio = r.TRegistryS / r.TDroveS
	if o.Output != "table" {
		return writeStructured(g.Out, o.Output, r)
	}
	sz := float64(size)
	fmt.Fprintf(g.Out, "nodes %d, %d images of %s in all, uplink %s/s on every link (netns + tbf): S/B = %.2f s\n",
		r.Nodes, r.Images, progress.HumanBytes(size), progress.HumanBytes(rate), r.SOverBS)
	fmt.Fprintf(g.Out, "t_registry:  %.2f s (p50 %.2f s, slowest %s); the registry sent %s = %.2f·S (floor N·S/B = %.2f s)\n",
		r.TRegistryS, r.TRegistryP50S, r.RegistrySlowestNode, progress.HumanBytes(r.RegistryUploadBytes), float64(r.RegistryUploadBytes)/sz,
		float64(r.Nodes)*r.SOverBS)
	fmt.Fprintf(g.Out, "t_drove:     %.2f s (p50 %.2f s, slowest %s; delivered and unpacked on every node after %.2f s, drove run returned after %.2f s); the seed sent %s = %.2f·S\n",
		r.TDroveS, r.TDroveP50S, r.DroveSlowestNode, r.DroveDistributedS, r.DroveRunS, progress.HumanBytes(r.SeedUploadBytes), float64(r.SeedUploadBytes)/sz)
	fmt.Fprintf(g.Out, "ratio:       t_registry / t_drove = %.2f\n", r.Ratio)
	return nil
}

// startBenchContainerds starts a containerd for every node, in its
// namespace, with its files in dirOf(node name), all at once. stop stops
// them all; calling it again is fine.
func startBenchContainerds(ctx context.Context, nodes []*lab.Node, dirOf func(string) string) ([]benchNode, func(), error) {
	out := make([]benchNode, len(nodes))
	daemons := make([]*nsDaemon, len(nodes))
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		out[i] = benchNode{Name: n.Name, NetNS: n.NetNS, Containerd: testcontainerd.LayoutFor(dirOf(n.Name)).Address}
		wg.Add(1)
		go func() {
			defer wg.Done()
			daemons[i], errs[i] = startNodeContainerd(ctx, n.Name, n.NetNS, dirOf(n.Name))
		}()
	}
	wg.Wait()
	stop := func() {
		var swg sync.WaitGroup
		for _, d := range daemons {
			if d != nil {
				swg.Add(1)
				go func() { defer swg.Done(); d.stop() }()
			}
		}
		swg.Wait()
	}
	if err := errors.Join(errs...); err != nil {
		stop()
		return nil, nil, err
	}
	return out, stop, nil
}

// checkAll checks every node's containerd (checkImported).
func checkAll(ctx context.Context, nodes []benchNode, images []benchImage) error {
	var errs []error
	for _, n := range nodes {
		errs = append(errs, checkImported(ctx, n.Name, n.Containerd, images))
	}
	return errors.Join(errs...)
}

// slowest is the node that finished last, its time and the median time.
func slowest(done map[string]time.Duration) (string, float64, float64) {
	var names []string
	for n := range done {
		names = append(names, n)
	}
	slices.SortFunc(names, func(a, b string) int { return cmp.Compare(done[a], done[b]) })
	if len(names) == 0 {
		return "", 0, 0
	}
	last := names[len(names)-1]
	return last, done[last].Seconds(), done[names[(len(names)-1)/2]].Seconds()
}
