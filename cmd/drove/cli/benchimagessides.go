package cli

// The two sides `drove bench images` compares, and what they share: the
// random container images in the upstream registry, the cluster image
// caching them, and the check that a node's containerd has them all.

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/drove-project/drove/imagecache"
	"github.com/drove-project/drove/internal/progress"
	"github.com/drove-project/drove/internal/testcontainerd"
	"github.com/drove-project/drove/layers/build"
	"github.com/drove-project/drove/layers/registry"
	"github.com/drove-project/drove/layers/store"
	"github.com/drove-project/drove/protocol"
)

// benchLayersPerImage is how many random layers each container image has.
const benchLayersPerImage = 3

// benchContainerdNS is the containerd namespace both sides fill: the
// kubelet's.
const benchContainerdNS = "k8s.io"

// benchImage is a container image in the upstream registry.
type benchImage struct {
	Ref    string  // HOST:PORT/bench/imgN:v1
	Digest v1.Hash // its manifest, as the registry serves it
}

// pushBenchImages writes n container images of random gzip layers, total
// bytes of layer content in all, to the registry at host (plain HTTP).
func pushBenchImages(ctx context.Context, host string, n int, total int64) ([]benchImage, error) {
	var out []benchImage
	layers := n * benchLayersPerImage
	for i := range n {
		rng := rand.NewChaCha8([32]byte{byte(i), byte(i >> 8), 'i', 'm', 'g'})
		var ls []v1.Layer
		for j := range benchLayersPerImage {
			k := i*benchLayersPerImage + j
			part := total / int64(layers)
			if k == layers-1 {
				part = total - part*int64(layers-1)
			}
			l, err := randomGzipLayer(rng, fmt.Sprintf("data/img%d-layer%d.bin", i, j), part)
			if err != nil {
				return nil, err
			}
			ls = append(ls, l)
		}
		img, err := mutate.AppendLayers(mutate.MediaType(mutate.ConfigMediaType(empty.Image, types.OCIConfigJSON), types.OCIManifestSchema1), ls...)
		if err != nil {
			return nil, err
		}
		cf, err := img.ConfigFile()
		if err != nil {
			return nil, err
		}
		cf = cf.DeepCopy()
		cf.OS, cf.Architecture = "linux", goruntime.GOARCH
		if img, err = mutate.ConfigFile(img, cf); err != nil {
			return nil, err
		}
		ref := fmt.Sprintf("%s/bench/img%d:v1", host, i)
		r, err := name.ParseReference(ref, name.Insecure)
		if err != nil {
			return nil, err
		}
		if err := remote.Write(r, img, remote.WithContext(ctx)); err != nil {
			return nil, fmt.Errorf("push %s to the bench registry: %w", ref, err)
		}
		d, err := img.Digest()
		if err != nil {
			return nil, err
		}
		out = append(out, benchImage{Ref: ref, Digest: d})
	}
	return out, nil
}

// randomGzipLayer is a gzip layer holding one file of size random bytes.
func randomGzipLayer(rng io.Reader, path string, size int64) (v1.Layer, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	if err != nil {
		return nil, err
	}
	tw := tar.NewWriter(zw)
	if err := tw.WriteHeader(&tar.Header{Name: path, Mode: 0o644, Size: size, Typeflag: tar.TypeReg}); err != nil {
		return nil, err
	}
	if _, err := io.CopyN(tw, rng, size); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil },
		tarball.WithMediaType(types.OCILayer))
}

// buildBenchClusterImage builds, in the store s, a cluster image whose
// imageList names images, caches them (pulling from the registry, as
// `drove build` does) and tags it ref; it returns the image's descriptor.
func buildBenchClusterImage(ctx context.Context, s *store.Store, dir, ref string, images []benchImage) (v1.Descriptor, error) {
	ctxDir := filepath.Join(dir, "context")
	if err := os.MkdirAll(ctxDir, 0o755); err != nil {
		return v1.Descriptor{}, err
	}
	var list strings.Builder
	for _, im := range images {
		list.WriteString(im.Ref + "\n")
	}
	files := map[string]string{"Kubefile": "FROM scratch\nCOPY imageList imageList\n", "imageList": list.String()}
	for f, content := range files {
		if err := os.WriteFile(filepath.Join(ctxDir, f), []byte(content), 0o644); err != nil {
			return v1.Descriptor{}, err
		}
	}
	ropts := registry.Options{Insecure: true} // the registry is plain HTTP on the lab bridge
	work := filepath.Join(dir, "build")
	res, err := build.Build(ctx, s, build.Options{Context: ctxDir, WorkDir: work, Registry: ropts,
		Out: io.Discard, Progress: progress.New(io.Discard, true)})
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("build the bench cluster image: %w", err)
	}
	cached, err := imagecache.Add(ctx, s, res.Descriptor, imagecache.Options{Registry: ropts, WorkDir: work, Out: io.Discard})
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("cache the bench container images: %w", err)
	}
	if len(cached.Images) != len(images) {
		return v1.Descriptor{}, fmt.Errorf("the bench cluster image caches %d container images, want %d", len(cached.Images), len(images))
	}
	if err := s.Tag(ref, cached.Descriptor); err != nil {
		return v1.Descriptor{}, err
	}
	return cached.Descriptor, nil
}

// copyImage copies the image desc from one store to another and tags it
// ref there.
func copyImage(ctx context.Context, from, to *store.Store, desc v1.Descriptor, ref string) error {
	var err error
	if desc.MediaType.IsIndex() {
		idx, ierr := from.Index(desc.Digest)
		if ierr != nil {
			return ierr
		}
		desc, err = to.WriteIndex(ctx, idx, store.WriteOptions{})
	} else {
		img, ierr := from.Image(desc.Digest)
		if ierr != nil {
			return ierr
		}
		desc, err = to.WriteImage(ctx, img, store.WriteOptions{})
	}
	if err != nil {
		return fmt.Errorf("copy %s to the seed's store: %w", ref, err)
	}
	return to.Tag(ref, desc)
}

// benchNode is a receiving node of the bench: its lab namespace and the
// containerd socket the side under way uses.
type benchNode struct {
	Name, NetNS, Containerd string
}

// pullFromRegistry is the baseline: on every node at once, one
// `ctr image pull --plain-http` per image, all at once, run in the node's
// namespace (ctr fetches; containerd unpacks). It returns when each node
// had every image.
func pullFromRegistry(ctx context.Context, nodes []benchNode, images []benchImage) (map[string]time.Duration, error) {
	ip, err := exec.LookPath("ip")
	if err != nil {
		return nil, fmt.Errorf("the baseline runs ctr in the nodes' namespaces with ip (iproute2): %w", err)
	}
	start := time.Now()
	var mu sync.Mutex
	done := map[string]time.Duration{}
	var errs []error
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var nwg sync.WaitGroup
			var nerr error
			var nmu sync.Mutex
			for _, im := range images {
				nwg.Add(1)
				go func() {
					defer nwg.Done()
					cmd := exec.CommandContext(ctx, ip, "netns", "exec", n.NetNS, testcontainerd.CtrBinary,
						"--address", n.Containerd, "-n", benchContainerdNS, "image", "pull", "--plain-http", im.Ref)
					cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
					if out, err := cmd.CombinedOutput(); err != nil {
						nmu.Lock()
						nerr = fmt.Errorf("%s: ctr image pull %s: %w: %s", n.Name, im.Ref, err, lastLines(string(out), 5))
						nmu.Unlock()
					}
				}()
			}
			nwg.Wait()
			mu.Lock()
			defer mu.Unlock()
			if nerr != nil {
				errs = append(errs, nerr)
				return
			}
			done[n.Name] = time.Since(start)
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		return nil, fmt.Errorf("the registry baseline failed on %d nodes, first: %w", len(errs), errs[0])
	}
	return done, nil
}

// droveImportRun is what the drove side measured.
type droveImportRun struct {
	done        map[string]time.Duration // node -> its container-images step finished
	distributed time.Duration            // the last receiver's distribute step finished
	wall        time.Duration            // the whole `drove run`
}

// runDroveImport runs `drove run IMAGE --import` in this process: the
// receivers are the cluster (the first its master), seed serves the image
// from its store. Each node's time is when the coordinators recorded its
// container-images step's result.
func runDroveImport(ctx context.Context, cliDir, image, seed string, masters, nodes, servers []string, tokenFile string) (*droveImportRun, error) {
	var log bytes.Buffer
	g := &Globals{Streams: Streams{In: strings.NewReader(""), Out: &log, Err: &log}, DataDir: cliDir, Quiet: true,
		Log: slog.New(slog.DiscardHandler)}
	o := &runOptions{Image: image, Masters: masters, Nodes: nodes, Import: true, SetImport: true, SeedNodes: []string{seed},
		AgentWait: time.Minute}
	o.client = clientFlags{Server: strings.Join(servers, ","), TokenFile: tokenFile, Timeout: time.Minute}
	start := time.Now()
	if err := runRun(ctx, g, o); err != nil {
		return nil, fmt.Errorf("drove run %s --import: %w\n%s", image, err, lastLines(log.String(), 30))
	}
	r := &droveImportRun{wall: time.Since(start), done: map[string]time.Duration{}}
	nc, err := o.client.connect(g)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	rev, err := getRevision(ctx, g, &o.client, nc)
	if err != nil {
		return nil, err
	}
	var d protocol.PlanDetail
	if err := o.client.call(ctx, nc, &protocol.PlanGetRequest{PlanID: rev.PlanID}, &d); err != nil {
		return nil, fmt.Errorf("read plan %s of drove run: %w", rev.PlanID, err)
	}
	for _, ph := range d.Phases {
		for _, st := range ph.Steps {
			at := time.UnixMilli(st.FinishedAt).Sub(start)
			switch {
			case ph.Name == "container-images":
				r.done[st.Node] = at
			case ph.Name == "distribute" && st.Node != seed:
				r.distributed = max(r.distributed, at)
			}
		}
	}
	if want := len(masters) + len(nodes); len(r.done) != want {
		return nil, fmt.Errorf("plan %s of drove run has a container-images step on %d nodes, want %d", rev.PlanID, len(r.done), want)
	}
	return r, nil
}

// checkImported fails unless the containerd at addr has every image, by
// its name and at its digest, unpacked into the default snapshotter.
func checkImported(ctx context.Context, node, addr string, images []benchImage) error {
	c, err := client.New(addr, client.WithDefaultNamespace(benchContainerdNS))
	if err != nil {
		return fmt.Errorf("%s: connect to containerd at %s: %w", node, addr, err)
	}
	defer c.Close()
	ctx = namespaces.WithNamespace(ctx, benchContainerdNS)
	for _, im := range images {
		img, err := c.GetImage(ctx, im.Ref)
		if err != nil {
			return fmt.Errorf("%s: containerd lacks %s: %w", node, im.Ref, err)
		}
		if got := img.Target().Digest.String(); got != im.Digest.String() {
			return fmt.Errorf("%s: containerd has %s at %s, want %s", node, im.Ref, got, im.Digest)
		}
		ok, err := img.IsUnpacked(ctx, "")
		if err != nil {
			return fmt.Errorf("%s: is %s unpacked: %w", node, im.Ref, err)
		}
		if !ok {
			return fmt.Errorf("%s: %s is in containerd but not unpacked", node, im.Ref)
		}
	}
	return nil
}

// lastLines is the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
