package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/nats-io/nats.go"

	"github.com/drove-project/drove/cmd/drove/cli"
	"github.com/drove-project/drove/internal/lab"
	"github.com/drove-project/drove/layers/store"
	"github.com/drove-project/drove/protocol"
)

// These tests deliver real images between real agent processes of a
// loopback lab; each agent caps what it serves with --upload-limit so a
// delivery takes a few seconds and faults land in the middle of it.

const swarmImage = "swarm/test:1"

// swarmFixture is a lab whose seeds hold a random image, and a CLI data
// dir holding the same image (distribute reads piece hashes from it).
type swarmFixture struct {
	l      *lab.Lab
	nc     *nats.Conn
	cliDir string
	digest v1.Hash
	size   int64
}

func newSwarmFixture(t *testing.T, nodes int, size int64, uploadLimit string, seeds []string, env map[string][]string) *swarmFixture {
	t.Helper()
	if testing.Short() {
		t.Skip("multi-process lab test (-short)")
	}
	l := upLab(t, lab.Options{Dir: t.TempDir(), Binary: droveBin, Masters: 1, Nodes: nodes, FirstIP: testFirstIP,
		ExtraArgs: []string{"--upload-limit", uploadLimit}, NodeEnv: env})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := l.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	f := &swarmFixture{l: l, nc: connect(t, l), cliDir: t.TempDir(), size: size}
	for _, dir := range append([]string{f.cliDir}, nodeDirs(t, l, seeds)...) {
		s, err := store.Open(filepath.Join(dir, "store"))
		if err != nil {
			t.Fatal(err)
		}
		if f.digest, err = cli.WriteRandomImage(t.Context(), s, swarmImage, size, 3, 42); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func nodeDirs(t *testing.T, l *lab.Lab, names []string) []string {
	var out []string
	for _, name := range names {
		n, err := l.Node(name)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, n.DataDir)
	}
	return out
}

// distribute starts `drove distribute` and returns a function that waits
// for it: its exit error and output.
func (f *swarmFixture) distribute(t *testing.T, seeds ...string) (wait func() (error, string)) {
	t.Helper()
	args := []string{"--data-dir", f.cliDir, "distribute", swarmImage, "--server", strings.Join(f.l.Servers(), ","),
		"--token-file", filepath.Join(f.l.Dir, "token")}
	for _, s := range seeds {
		args = append(args, "--seed-node", s)
	}
	cmd := exec.Command(droveBin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })
	return func() (error, string) {
		select {
		case err := <-done:
			return err, out.String()
		case <-time.After(3 * time.Minute):
			cmd.Process.Kill()
			return <-done, out.String() + "\n(killed after 3 minutes)"
		}
	}
}

// plan returns the distribution's plan (the newest plan).
func (f *swarmFixture) plan(t *testing.T) protocol.PlanDetail {
	t.Helper()
	var pl protocol.PlanList
	call(t, f.nc, &protocol.PlanListRequest{}, &pl)
	if len(pl.Plans) == 0 {
		return protocol.PlanDetail{}
	}
	newest := slices.MaxFunc(pl.Plans, func(a, b protocol.PlanSummary) int { return strings.Compare(a.ID, b.ID) })
	var d protocol.PlanDetail
	call(t, f.nc, &protocol.PlanGetRequest{PlanID: newest.ID}, &d)
	return d
}

// progress returns the tracker's view of the newest distribution.
func (f *swarmFixture) progress(t *testing.T) map[string]protocol.PeerProgress {
	t.Helper()
	var ds protocol.DistributionStatus
	call(t, f.nc, &protocol.DistributionStatusRequest{}, &ds)
	out := map[string]protocol.PeerProgress{}
	for _, d := range ds.Distributions {
		for _, p := range d.Peers {
			out[p.Peer.ID] = p
		}
	}
	return out
}

// checkDelivered asserts node holds every blob of the image, each
// verifying, and the unpacked rootfs.
func (f *swarmFixture) checkDelivered(t *testing.T, node string) {
	t.Helper()
	n, err := f.l.Node(node)
	if err != nil {
		t.Fatal(err)
	}
	s, err := store.Open(filepath.Join(n.DataDir, "store"))
	if err != nil {
		t.Fatal(err)
	}
	img, err := s.Image(f.digest)
	if err != nil {
		t.Fatalf("%s: image not in its store: %v", node, err)
	}
	if e, err := s.Resolve(swarmImage); err != nil || e.Descriptor.Digest != f.digest {
		t.Fatalf("%s: %s is not named in its store: %+v %v", node, swarmImage, e, err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, layer := range layers {
		d, _ := layer.Digest()
		if err := s.VerifyBlob(d); err != nil {
			t.Fatalf("%s: layer %s: %v", node, d, err)
		}
	}
	var total int64
	for i := range 3 {
		st, err := os.Stat(filepath.Join(n.DataDir, "rootfs", f.digest.Hex, "data", "layer"+strconv.Itoa(i)+".bin"))
		if err != nil {
			t.Fatalf("%s: unpacked rootfs: %v", node, err)
		}
		total += st.Size()
	}
	if total != f.size {
		t.Fatalf("%s: rootfs holds %d bytes, want %d", node, total, f.size)
	}
}

func outputInt(s protocol.NodeStepStatus, key string) int64 {
	n, _ := strconv.ParseInt(s.Outputs[key], 10, 64)
	return n
}

// TestSwarmDelivers (issue tests 1 and 6): an image of three layers, 48 MiB
// of random data, reaches 8 nodes from one seed; every blob verifies on
// every node; the seed uploads less than twice the image; and the
// coordinator's NATS server carries under 1% of the bytes delivered.
func TestSwarmDelivers(t *testing.T) {
	const size = 48 << 20
	f := newSwarmFixture(t, 8, size, "40MiB", []string{"n1"}, nil)
	var before protocol.Status
	call(t, f.nc, &protocol.StatusRequest{}, &before)
	wait := f.distribute(t, "n1")
	err, out := wait()
	if err != nil {
		t.Fatalf("distribute: %v\n%s", err, out)
	}
	t.Logf("distribute:\n%s", out)
	receivers := []string{"m1", "n2", "n3", "n4", "n5", "n6", "n7", "n8"}
	for _, n := range receivers {
		f.checkDelivered(t, n)
	}
	var seedUp int64
	waitFor(t, "the seed's last announce", 10*time.Second, func() bool {
		p, ok := f.progress(t)["n1"]
		seedUp = p.Uploaded
		return ok
	})
	for _, s := range f.plan(t).Phases[0].Steps {
		if s.Node == "n1" {
			seedUp = max(seedUp, outputInt(s, "uploaded"))
		}
	}
	t.Logf("seed uploaded %d bytes = %.2f·S", seedUp, float64(seedUp)/size)
	if seedUp >= 2*size {
		t.Errorf("seed uploaded %d bytes, want < 2·S = %d", seedUp, 2*size)
	}
	var after protocol.Status
	call(t, f.nc, &protocol.StatusRequest{}, &after)
	control := (after.NATSInBytes + after.NATSOutBytes) - (before.NATSInBytes + before.NATSOutBytes)
	delivered := int64(len(receivers)) * size
	t.Logf("coordinator %s NATS carried %d bytes during the delivery: %.3f%% of %d delivered", after.Answerer, control, 100*float64(control)/float64(delivered), delivered)
	if after.Answerer == "" || control <= 0 || control*100 >= delivered {
		t.Errorf("coordinator NATS carried %d bytes (%s), want > 0 and < 1%% of %d", control, after.Answerer, delivered)
	}
}

// TestSwarmBansCorruptPeer (issue test 2): of two seeds, n2 corrupts what
// it serves. Receivers ban it and finish from the honest one.
func TestSwarmBansCorruptPeer(t *testing.T) {
	const size = 24 << 20
	f := newSwarmFixture(t, 5, size, "40MiB", []string{"n1", "n2"},
		map[string][]string{"n2": {"DROVE_TEST_CORRUPT_UPLOADS=1"}})
	err, out := f.distribute(t, "n1", "n2")()
	if err != nil {
		t.Fatalf("distribute: %v\n%s", err, out)
	}
	banned := 0
	for _, s := range f.plan(t).Phases[0].Steps {
		if s.Node == "n1" || s.Node == "n2" {
			continue
		}
		f.checkDelivered(t, s.Node)
		if strings.Contains(s.Outputs["banned"], "n2") {
			banned++
		}
		if strings.Contains(s.Outputs["banned"], "n1") {
			t.Errorf("%s banned the honest seed: %v", s.Node, s.Outputs)
		}
	}
	if banned == 0 {
		t.Fatalf("no receiver banned the corrupting seed n2:\n%s", out)
	}
	t.Logf("%d receivers banned n2", banned)
}

// TestSwarmSeedLeaves (issue test 3): the seed is killed once one full
// copy is out in the swarm; delivery still completes.
func TestSwarmSeedLeaves(t *testing.T) {
	const size = 32 << 20
	f := newSwarmFixture(t, 6, size, "12MiB", []string{"n1"}, nil)
	wait := f.distribute(t, "n1")
	waitFor(t, "the seed's step to end (one full copy out)", 60*time.Second, func() bool {
		for _, ph := range f.plan(t).Phases {
			for _, s := range ph.Steps {
				if s.Node == "n1" && s.State == protocol.StateSucceeded {
					return true
				}
			}
		}
		return false
	})
	if err := f.l.Kill("n1"); err != nil {
		t.Fatal(err)
	}
	err, out := wait()
	if err != nil {
		t.Fatalf("distribute after the seed was killed: %v\n%s", err, out)
	}
	for _, n := range []string{"m1", "n2", "n3", "n4", "n5", "n6"} {
		f.checkDelivered(t, n)
	}
}

// TestSwarmResumesAfterRestart (issue test 4): an agent killed mid-transfer
// and started again fetches only what it had not verified.
func TestSwarmResumesAfterRestart(t *testing.T) {
	const size = 32 << 20
	f := newSwarmFixture(t, 3, size, "8MiB", []string{"n1"}, nil)
	wait := f.distribute(t, "n1")
	var had int64
	waitFor(t, "n3 to hold 40% of the image", 60*time.Second, func() bool {
		had = f.progress(t)["n3"].Have
		return had >= size*4/10
	})
	if err := f.l.Kill("n3"); err != nil {
		t.Fatal(err)
	}
	if err := f.l.Start("n3"); err != nil {
		t.Fatal(err)
	}
	err, out := wait()
	if err != nil {
		t.Fatalf("distribute: %v\n%s", err, out)
	}
	f.checkDelivered(t, "n3")
	for _, s := range f.plan(t).Phases[0].Steps {
		if s.Node != "n3" {
			continue
		}
		got := outputInt(s, "downloaded")
		// Pieces half-fetched when it died are fetched again: allow two.
		if limit := size - had + 2*protocol.DefaultPieceSize; got > limit || got == 0 {
			t.Fatalf("after the restart n3 downloaded %d bytes; it held %d verified, so want 0 < d <= %d", got, had, limit)
		}
		t.Logf("n3 held %d bytes when killed; its second run downloaded %d", had, got)
	}
}

// TestSwarmSurvivesDeadReceivers (issue test 5): a tenth of the receivers
// die halfway; the rest finish.
func TestSwarmSurvivesDeadReceivers(t *testing.T) {
	const size = 24 << 20
	f := newSwarmFixture(t, 10, size, "20MiB", []string{"n1"}, nil)
	wait := f.distribute(t, "n1")
	waitFor(t, "n5 to hold half the image", 60*time.Second, func() bool {
		return f.progress(t)["n5"].Have >= size/2
	})
	if err := f.l.Kill("n5"); err != nil {
		t.Fatal(err)
	}
	err, out := wait()
	if err == nil {
		t.Fatalf("distribute succeeded although n5 died:\n%s", out)
	}
	for _, s := range f.plan(t).Phases[0].Steps {
		switch {
		case s.Node == "n5":
			if s.State == protocol.StateSucceeded {
				t.Fatalf("n5 succeeded after it was killed: %+v", s)
			}
		case s.State != protocol.StateSucceeded:
			t.Fatalf("%s: %s %s", s.Node, s.State, s.Error)
		default:
			if s.Node != "n1" {
				f.checkDelivered(t, s.Node)
			}
		}
	}
}

// TestSwarmOriginDelivers: `drove distribute IMAGE` with no --seed-node
// makes the CLI the origin: it serves the image from its own store (it is
// no node) to 3 lab agents, every one of which gets it verified and
// unpacked; the origin uploads about one copy, leaving once a node holds a
// full copy and the nodes serve each other.
func TestSwarmOriginDelivers(t *testing.T) {
	const size = 24 << 20
	f := newSwarmFixture(t, 2, size, "40MiB", nil, nil)
	origin, out := f.distributeWatchingOrigin(t)
	for _, n := range []string{"m1", "n1", "n2"} {
		f.checkDelivered(t, n)
	}
	plan := f.plan(t)
	for _, s := range plan.Phases[0].Steps {
		if strings.HasPrefix(s.Node, "origin-") {
			t.Fatalf("the origin is a step of the plan: %+v", s)
		}
		if s.Outputs["downloaded"] == "" || outputInt(s, "downloaded") < size {
			t.Errorf("%s downloaded %q bytes, want the image (%d)", s.Node, s.Outputs["downloaded"], size)
		}
	}
	if origin.Peer.ID == "" || !origin.Peer.Seed {
		t.Fatalf("the tracker never listed the origin as a seed: %+v", origin)
	}
	t.Logf("origin %s uploaded %d bytes = %.2f·S, leaving=%v", origin.Peer.ID, origin.Uploaded, float64(origin.Uploaded)/size, origin.Leaving)
	if !origin.Leaving {
		t.Errorf("the origin's last announce does not say it left: %+v", origin)
	}
	if origin.Uploaded < size || origin.Uploaded >= 2*size {
		t.Errorf("origin uploaded %d bytes, want about one copy: S <= up < 2·S (S = %d)", origin.Uploaded, size)
	}
	if !strings.Contains(out, "origin "+origin.Peer.ID+" uploaded") {
		t.Errorf("distribute did not report what the origin uploaded:\n%s", out)
	}
}

// distributeWatchingOrigin runs a distribute with the CLI as origin and
// follows the origin's progress in the tracker until the command has
// ended, then reads it once more (the tracker keeps a peer's last announce
// for a while after it left). It fails the test if the command fails.
func (f *swarmFixture) distributeWatchingOrigin(t *testing.T) (origin protocol.PeerProgress, out string) {
	t.Helper()
	wait := f.distribute(t)
	type result struct {
		err error
		out string
	}
	res := make(chan result, 1)
	go func() {
		err, out := wait()
		res <- result{err, out}
	}()
	var r result
	for follow, ended := true, false; follow; {
		follow = !ended
		for id, p := range f.progress(t) {
			if strings.HasPrefix(id, "origin-") {
				origin = p
			}
		}
		if !ended {
			select {
			case r = <-res:
				ended = true
			case <-time.After(100 * time.Millisecond): // polling interval
			}
		}
	}
	if r.err != nil {
		t.Fatalf("distribute: %v\n%s", r.err, r.out)
	}
	t.Logf("distribute:\n%s", r.out)
	return origin, r.out
}
