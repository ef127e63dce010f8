package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/drove-project/drove/agent"
	"github.com/drove-project/drove/cmd/drove/cli"
	"github.com/drove-project/drove/internal/lab"
	"github.com/drove-project/drove/layers/store"
	"github.com/drove-project/drove/protocol"
)

// Media seeding (issue 7): one node of a netns lab was installed from
// media that carry the cluster image as an OCI image layout (`drove save`,
// untarred); its agent runs with --media DIR, imports the layout into its
// store and serves it through the swarm.

const (
	mediaSeedNode = "n3"
	mediaSeedSize = 48 << 20 // three layers of 16 MiB
)

// mediaSeedFixture is a netns lab of a master and five nodes of which
// mediaSeedNode has the image on its media, and nothing else has it
// except the CLI's store (distribute computes piece hashes from it).
type mediaSeedFixture struct {
	swarmFixture
	media  string  // the media layout
	tamper v1.Hash // the layer flipped on the media, if any
	layer  int64   // its size
}

// newMediaSeedFixture builds the image in the CLI's store, saves it with
// `drove save`, untars it into the media directory (flipping a byte of
// the image's second layer when tamper is set) and starts the lab with the
// media node pointed at it.
func newMediaSeedFixture(t *testing.T, tamper bool) *mediaSeedFixture {
	t.Helper()
	if testing.Short() {
		t.Skip("multi-process lab test (-short)")
	}
	if os.Geteuid() != 0 {
		t.Skip("netns lab test: needs root to create network namespaces")
	}
	for _, tool := range []string{"ip", "tar"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("media seeding lab test: needs %s: %v", tool, err)
		}
	}
	f := &mediaSeedFixture{swarmFixture: swarmFixture{cliDir: t.TempDir(), size: mediaSeedSize}}
	s, err := store.Open(filepath.Join(f.cliDir, "store"))
	if err != nil {
		t.Fatal(err)
	}
	if f.digest, err = cli.WriteRandomImage(t.Context(), s, swarmImage, mediaSeedSize, 3, 7); err != nil {
		t.Fatal(err)
	}
	saved := filepath.Join(t.TempDir(), "image.tar")
	drove(t, f.cliDir, "save", "-o", saved, swarmImage)
	f.media = filepath.Join(t.TempDir(), "drove", "image")
	if err := os.MkdirAll(f.media, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("tar", "-xf", saved, "-C", f.media).CombinedOutput(); err != nil {
		t.Fatalf("untar the saved image onto the media: %v\n%s", err, out)
	}
	if tamper {
		img, err := s.Image(f.digest)
		if err != nil {
			t.Fatal(err)
		}
		m, err := img.Manifest()
		if err != nil {
			t.Fatal(err)
		}
		f.tamper, f.layer = m.Layers[1].Digest, m.Layers[1].Size
		path := filepath.Join(f.media, "blobs", "sha256", f.tamper.Hex)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)/3] ^= 0x01
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f.l = upLab(t, lab.Options{Dir: t.TempDir(), Binary: droveBin, Masters: 1, Nodes: 5, NetNS: true,
		NodeArgs: map[string][]string{mediaSeedNode: {"--media", f.media}}})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := f.l.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	f.nc = connect(t, f.l)
	return f
}

// mediaRefused waits until `drove status -o json` shows how many blobs of
// its media the media node refused (a label it gossips), and returns that.
func (f *mediaSeedFixture) mediaRefused(t *testing.T) string {
	t.Helper()
	var got string
	waitFor(t, "drove status to show the media node's import", 60*time.Second, func() bool {
		out := drove(t, f.cliDir, "status", "-o", "json", "--server", strings.Join(f.l.Servers(), ","),
			"--token-file", filepath.Join(f.l.Dir, "token"))
		var st protocol.Status
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("drove status -o json: %v\n%s", err, out)
		}
		for _, m := range st.Members {
			if m.ID == mediaSeedNode {
				got = m.Labels[agent.MediaRefusedLabel]
			}
		}
		return got != ""
	})
	return got
}

// step is the plan's step on node.
func (f *mediaSeedFixture) step(t *testing.T, node string) protocol.NodeStepStatus {
	t.Helper()
	for _, ph := range f.plan(t).Phases {
		for _, s := range ph.Steps {
			if s.Node == node {
				return s
			}
		}
	}
	t.Fatalf("no step on %s in the plan", node)
	return protocol.NodeStepStatus{}
}

// TestMediaSeedsSwarm (issue 7, media seeding): six lab nodes, only the
// media node holds the image, and no origin serves it (--seed-node): all
// complete, from the media node's uploads alone; the CLI started no origin
// and the coordinator's NATS carried control traffic only.
func TestMediaSeedsSwarm(t *testing.T) {
	f := newMediaSeedFixture(t, false)
	if got := f.mediaRefused(t); got != "0" {
		t.Fatalf("the media node refused %s blobs of complete media", got)
	}
	n, err := f.l.Node(mediaSeedNode)
	if err != nil {
		t.Fatal(err)
	}
	ms, err := store.Open(filepath.Join(n.DataDir, "store"))
	if err != nil {
		t.Fatal(err)
	}
	if e, err := ms.Resolve(swarmImage); err != nil || e.Descriptor.Digest != f.digest {
		t.Fatalf("the media node's store does not name %s after the import: %+v %v", swarmImage, e, err)
	}
	var before protocol.Status
	call(t, f.nc, &protocol.StatusRequest{}, &before)
	err, out := f.distribute(t, mediaSeedNode)()
	if err != nil {
		t.Fatalf("distribute --seed-node %s: %v\n%s", mediaSeedNode, err, out)
	}
	t.Logf("distribute:\n%s", out)
	receivers := []string{"m1", "n1", "n2", "n4", "n5"}
	for _, node := range append(receivers, mediaSeedNode) {
		f.checkDelivered(t, node)
	}
	seed := f.step(t, mediaSeedNode)
	if down := outputInt(seed, "downloaded"); down != 0 {
		t.Errorf("the media node downloaded %d bytes, want 0: it held the image", down)
	}
	var seedUp int64
	waitFor(t, "the media node's last announce", 10*time.Second, func() bool {
		p, ok := f.progress(t)[mediaSeedNode]
		seedUp = p.Uploaded
		return ok
	})
	seedUp = max(seedUp, outputInt(seed, "uploaded"))
	if seedUp < mediaSeedSize {
		t.Errorf("the media node uploaded %d bytes, want at least one copy (%d): it was the only source", seedUp, mediaSeedSize)
	}
	for id, p := range f.progress(t) {
		if strings.HasPrefix(id, "origin-") || (p.Peer.Seed && id != mediaSeedNode) {
			t.Errorf("a peer other than the media node seeded: %s %+v", id, p)
		}
	}
	if strings.Contains(out, "origin ") {
		t.Errorf("distribute reports an origin:\n%s", out)
	}
	var after protocol.Status
	call(t, f.nc, &protocol.StatusRequest{}, &after)
	control := (after.NATSInBytes + after.NATSOutBytes) - (before.NATSInBytes + before.NATSOutBytes)
	delivered := int64(len(receivers)) * mediaSeedSize
	t.Logf("media node uploaded %d bytes = %.2f·S; coordinator %s NATS carried %d bytes (%.3f%% of %d delivered)",
		seedUp, float64(seedUp)/mediaSeedSize, after.Answerer, control, 100*float64(control)/float64(delivered), delivered)
	if control*100 >= delivered {
		t.Errorf("the coordinator's NATS carried %d bytes, want < 1%% of %d: image bytes went through it", control, delivered)
	}
}

// TestMediaTamperedBlob (issue 7, media seeding): a media tree with one
// tampered layer. The media node refuses that blob and names it in its
// log; `drove distribute` with the CLI as origin completes on every node
// with verified data, the media node fetching only the refused blob and
// the origin uploading little more than that blob (the media node serves
// the rest).
func TestMediaTamperedBlob(t *testing.T) {
	f := newMediaSeedFixture(t, true)
	if got := f.mediaRefused(t); got != "1" {
		t.Fatalf("the media node reports %s refused blobs, want 1", got)
	}
	n, err := f.l.Node(mediaSeedNode)
	if err != nil {
		t.Fatal(err)
	}
	logb, err := os.ReadFile(n.Log)
	if err != nil {
		t.Fatal(err)
	}
	named := false
	for line := range strings.Lines(string(logb)) {
		if strings.Contains(line, "refused") && strings.Contains(line, f.tamper.String()) &&
			strings.Contains(line, filepath.Join(f.media, "blobs", "sha256", f.tamper.Hex)) {
			named = true
		}
	}
	if !named {
		t.Fatalf("the media node's log does not name the refused blob %s and its path", f.tamper)
	}
	origin, _ := f.distributeWatchingOrigin(t)
	for _, node := range []string{"m1", "n1", "n2", mediaSeedNode, "n4", "n5"} {
		f.checkDelivered(t, node)
	}
	if origin.Peer.ID == "" {
		t.Fatal("the tracker never listed the CLI's origin")
	}
	limit := f.layer * 12 / 10
	down := outputInt(f.step(t, mediaSeedNode), "downloaded")
	t.Logf("tampered layer %d bytes; the media node downloaded %d, the origin uploaded %d (%.2f× the layer)",
		f.layer, down, origin.Uploaded, float64(origin.Uploaded)/float64(f.layer))
	if down < f.layer || down > limit {
		t.Errorf("the media node downloaded %d bytes, want the refused layer only: %d..%d", down, f.layer, limit)
	}
	if origin.Uploaded < f.layer || origin.Uploaded > limit {
		t.Errorf("the origin uploaded %d bytes, want about the refused layer: %d..%d", origin.Uploaded, f.layer, limit)
	}
}
