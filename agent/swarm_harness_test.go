package agent

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/nats-io/nats.go"

	"github.com/drove-project/drove/layers/store"
	"github.com/drove-project/drove/layers/swarm"
	"github.com/drove-project/drove/protocol"
)

// The swarm tests run several swarms in one process: each with its own
// data directory, store and data endpoint (a real NATS server on
// 127.0.0.1), all announcing over one control NATS server to a fake
// tracker (the coordinator's tracker is another package's service).

func connectControl(t *testing.T, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// fakeTracker answers SwarmAnnounce on the control server: every peer that
// announced (and did not leave) is handed to the others; CopiesOut counts
// complete non-seeds; Done when the test says so.
type fakeTracker struct {
	mu    sync.Mutex
	last  map[string]protocol.SwarmAnnounce
	order []string
	done  bool
	// visible, when set, decides whether a peer is handed to asker.
	visible func(asker string, peer protocol.SwarmAnnounce) bool
}

func startTracker(t *testing.T, url string) *fakeTracker {
	t.Helper()
	tr := &fakeTracker{last: map[string]protocol.SwarmAnnounce{}}
	nc := connectControl(t, url)
	_, err := nc.Subscribe(protocol.APISubject, func(m *nats.Msg) {
		var a protocol.SwarmAnnounce
		if err := protocol.DecodeAs(m.Data, &a); err != nil {
			b, _ := protocol.Encode(protocol.Errorf(protocol.CodeBadRequest, "%v", err))
			m.Respond(b)
			return
		}
		b, _ := protocol.Encode(tr.answer(a))
		m.Respond(b)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return tr
}

func (tr *fakeTracker) answer(a protocol.SwarmAnnounce) *protocol.SwarmPeers {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	id := a.Peer.ID
	if _, ok := tr.last[id]; !ok {
		tr.order = append(tr.order, id)
	}
	tr.last[id] = a
	out := &protocol.SwarmPeers{Done: tr.done}
	for _, p := range tr.order {
		l := tr.last[p]
		if l.Leaving {
			continue
		}
		if l.Complete && !l.Peer.Seed {
			out.CopiesOut++
		}
		if p != id && (tr.visible == nil || tr.visible(id, l)) {
			out.Peers = append(out.Peers, l.Peer)
		}
	}
	return out
}

func (tr *fakeTracker) setDone() {
	tr.mu.Lock()
	tr.done = true
	tr.mu.Unlock()
}

func (tr *fakeTracker) lastOf(id string) (protocol.SwarmAnnounce, bool) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	a, ok := tr.last[id]
	return a, ok
}

// swarmNode is one swarm with everything it needs.
type swarmNode struct {
	id   string
	dir  string
	st   *store.Store
	data *DataServer
	sw   *Swarm
	cfg  SwarmConfig
}

func newSwarmNode(t *testing.T, ctlURL, id string, tune func(*SwarmConfig)) *swarmNode {
	t.Helper()
	n := &swarmNode{id: id, dir: t.TempDir()}
	var err error
	n.st, err = store.Open(filepath.Join(n.dir, "store"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n.data, err = StartDataServer(ctx, DataConfig{Name: id, Host: "127.0.0.1", Token: swarmToken}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.data.Shutdown)
	n.cfg = SwarmConfig{
		NodeID: id, DataAddr: n.data.ClientURL()[len("nats://"):], DataURL: n.data.ClientURL(),
		DataDir: n.dir, Store: n.st, Token: swarmToken, AnnounceInterval: 100 * time.Millisecond,
	}
	if ctlURL != "" {
		n.cfg.Control = connectControl(t, ctlURL)
	}
	if tune != nil {
		tune(&n.cfg)
	}
	n.start(t)
	return n
}

// start (re)creates the node's swarm, as an agent restart would.
func (n *swarmNode) start(t *testing.T) {
	t.Helper()
	sw, err := NewSwarm(n.cfg)
	if err != nil {
		t.Fatal(err)
	}
	n.sw = sw
	t.Cleanup(func() { sw.Close() })
}

// testImage writes an image of random layers of the given sizes into st
// and returns its distribution (pieces of pieceSize) and total size.
func testImage(t *testing.T, st *store.Store, id string, pieceSize int64, layerSizes ...int64) (*protocol.Distribution, int64) {
	t.Helper()
	ctx := context.Background()
	img := empty.Image
	for _, size := range layerSizes {
		l, err := random.Layer(size, types.DockerLayer)
		if err != nil {
			t.Fatal(err)
		}
		if img, err = mutate.AppendLayers(img, l); err != nil {
			t.Fatal(err)
		}
	}
	desc, err := st.WriteImage(ctx, img, store.WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := swarm.ImageBlobs(ctx, st, desc.Digest, pieceSize)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, b := range blobs {
		total += b.Size
	}
	return &protocol.Distribution{ID: id, Image: "test/image:1", ImageDigest: desc.Digest.String(), Blobs: blobs}, total
}

// copyImage puts every blob of dist from one store into another.
func copyImage(t *testing.T, from, to *store.Store, dist *protocol.Distribution) {
	t.Helper()
	for _, b := range dist.Blobs {
		h, _ := v1.NewHash(b.Digest)
		f, err := from.OpenBlob(h)
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = to.WriteBlob(context.Background(), f, h)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
}

// assertHasImage checks that every blob of dist is in the node's store and
// verifies, and that the unpacked rootfs equals want's.
func assertHasImage(t *testing.T, n *swarmNode, dist *protocol.Distribution, want string) {
	t.Helper()
	for _, b := range dist.Blobs {
		h, _ := v1.NewHash(b.Digest)
		if err := n.st.VerifyBlob(h); err != nil {
			t.Errorf("%s: blob %s: %v", n.id, b.Digest, err)
		}
	}
	got := treeOf(t, n.sw.RootFS(dist.ImageDigest))
	if len(got) == 0 {
		t.Errorf("%s: rootfs %s is empty", n.id, n.sw.RootFS(dist.ImageDigest))
	}
	if want != "" {
		ref := treeOf(t, want)
		if len(ref) != len(got) {
			t.Errorf("%s: rootfs has %d files, want %d", n.id, len(got), len(ref))
		}
		for name, b := range ref {
			if !bytes.Equal(got[name], b) {
				t.Errorf("%s: rootfs file %s differs", n.id, name)
			}
		}
	}
}

// treeOf reads every regular file under dir.
func treeOf(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		out[rel] = b
		return err
	})
	if err != nil {
		t.Fatalf("read tree %s: %v", dir, err)
	}
	return out
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(5 * time.Millisecond) // polling interval
	}
}

func pieceCount(dist *protocol.Distribution) int {
	n := 0
	for _, b := range dist.Blobs {
		n += len(b.Pieces)
	}
	return n
}

func isSeedOf(dist *protocol.Distribution, id string) bool { return slices.Contains(dist.Seeds, id) }

func removeFile(p string) error { return os.Remove(p) }
