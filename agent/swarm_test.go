package agent

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/nats-io/nats.go"

	"github.com/drove-project/drove/internal/testnats"
	"github.com/drove-project/drove/layers/swarm"
	"github.com/drove-project/drove/protocol"
)

// A seed and two fetchers: both fetchers end with every blob verified in
// their store and the image unpacked like the seed's; the seed serves
// less than two copies (the fetchers trade pieces); when the tracker says
// the distribution is done every node stops serving it.
func TestSwarmSeedAndTwoFetchers(t *testing.T) {
	ctl := testnats.Start(t)
	tr := startTracker(t, ctl)
	// The seed's uplink is capped, the fetchers' are not, as with a busy
	// origin: the fetchers get much of the image from each other.
	seed := newSwarmNode(t, ctl, "seed", func(c *SwarmConfig) { c.UploadLimit = 8 << 20 })
	a := newSwarmNode(t, ctl, "fetcher-a", nil)
	b := newSwarmNode(t, ctl, "fetcher-b", nil)
	dist, size := testImage(t, seed.st, "dist-three", protocol.TransferUnit, 3<<20, 3<<20)
	dist.Seeds = []string{"seed"}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	type result struct {
		code    int
		outputs map[string]string
		err     error
		out     string
	}
	results := map[string]*result{}
	var wg sync.WaitGroup
	for _, n := range []*swarmNode{seed, a, b} {
		r := &result{}
		results[n.id] = r
		wg.Add(1)
		go func() {
			defer wg.Done()
			var out bytes.Buffer
			act := DistributeAction{Swarm: func() *Swarm { return n.sw }}
			r.code, r.outputs, r.err = act.Run(ctx, protocol.Action{Kind: protocol.ActionDistribute, Distribution: dist}, &out)
			r.out = out.String()
		}()
	}
	wg.Wait()
	for id, r := range results {
		if r.err != nil || r.code != 0 {
			t.Fatalf("%s: distribute = %d, %v\n%s", id, r.code, r.err, r.out)
		}
	}
	want := seed.sw.RootFS(dist.ImageDigest)
	if len(treeOf(t, want)) != 2 {
		t.Fatalf("seed's rootfs %s: want the 2 files of the 2 layers", want)
	}
	for _, n := range []*swarmNode{a, b} {
		assertHasImage(t, n, dist, want)
		r := results[n.id]
		if got := r.outputs["rootfs"]; got != n.sw.RootFS(dist.ImageDigest) {
			t.Errorf("%s: output rootfs = %q", n.id, got)
		}
		if got, _ := strconv.ParseInt(r.outputs["downloaded"], 10, 64); got < size {
			t.Errorf("%s: downloaded %d bytes of a %d-byte image", n.id, got, size)
		}
		if r.outputs["pieces"] != strconv.Itoa(pieceCount(dist)) {
			t.Errorf("%s: pieces = %s, want %d", n.id, r.outputs["pieces"], pieceCount(dist))
		}
		if r.outputs["banned"] != "" {
			t.Errorf("%s: banned %q, want none", n.id, r.outputs["banned"])
		}
		if !strings.Contains(r.out, "fetching test/image:1") {
			t.Errorf("%s: step output %q", n.id, r.out)
		}
	}
	// Seed offload: under two copies in all, on the wire.
	up := seed.data.OutBytes()
	t.Logf("image %d bytes; seed sent %d (%.2f×), fetchers sent %d and %d", size, up, float64(up)/float64(size),
		a.data.OutBytes(), b.data.OutBytes())
	if up >= 2*size {
		t.Errorf("seed sent %d bytes for a %d-byte image to 2 fetchers: want < 2×", up, size)
	}
	if got, _ := strconv.ParseInt(results["seed"].outputs["uploaded"], 10, 64); got < protocol.TransferUnit {
		t.Errorf("seed's uploaded output %d, want at least a unit", got)
	}
	// Every node keeps serving until the tracker says done.
	for _, n := range []*swarmNode{seed, a, b} {
		if !n.sw.Serving(dist.ID) {
			t.Errorf("%s stopped serving before the distribution was done", n.id)
		}
	}
	eventually(t, 5*time.Second, "fetchers announce complete", func() bool {
		la, _ := tr.lastOf("fetcher-a")
		lb, _ := tr.lastOf("fetcher-b")
		return la.Complete && lb.Complete && la.Have == size
	})
	tr.setDone()
	for _, n := range []*swarmNode{seed, a, b} {
		eventually(t, 5*time.Second, n.id+" stops serving once done", func() bool { return !n.sw.Serving(dist.ID) })
	}
	if l, _ := tr.lastOf("seed"); !l.Leaving || !l.Peer.Seed || l.Uploaded == 0 {
		t.Errorf("seed's last announce %+v: want leaving, seed, uploaded > 0", l)
	}
}

// A peer that serves corrupted units is banned after its first bad piece;
// the fetch completes from the honest seed.
func TestSwarmBansCorruptingPeer(t *testing.T) {
	ctl := testnats.Start(t)
	tr := startTracker(t, ctl)
	honest := newSwarmNode(t, ctl, "honest", nil)
	liar := newSwarmNode(t, ctl, "liar", nil)
	liar.sw.corrupt = flipByte
	logger, logs := newGossipLogRecorder()
	f := newSwarmNode(t, ctl, "fetcher", func(c *SwarmConfig) { c.Log = logger })
	dist, _ := testImage(t, honest.st, "dist-ban", protocol.DefaultPieceSize, 2<<20, 1<<20)
	copyImage(t, honest.st, liar.st, dist)
	dist.Seeds = []string{"honest", "liar"}
	// The fetcher meets only the liar until the liar has served something,
	// so the first piece it gets is a bad one.
	tr.mu.Lock()
	tr.visible = func(asker string, p protocol.SwarmAnnounce) bool {
		if p.Peer.ID != "honest" {
			return true
		}
		l := tr.last["liar"]
		return l.Uploaded > 0
	}
	tr.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	go honest.sw.Seed(ctx, dist)
	go liar.sw.Seed(ctx, dist)
	st, err := f.sw.Fetch(ctx, dist)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(st.Banned, []string{"liar"}) {
		t.Errorf("banned %v, want [liar]", st.Banned)
	}
	if !logs.has(slog.LevelWarn, "banned") {
		t.Error("the ban was not logged")
	}
	assertHasImage(t, f, dist, honest.sw.RootFS(dist.ImageDigest))
	// A banned peer is never asked again, even if the tracker names it.
	f.sw.mu.Lock()
	ss := f.sw.sessions[dist.ID]
	f.sw.mu.Unlock()
	if ss == nil || !ss.isBanned("liar") {
		t.Error("the session forgot the ban")
	}
}

// An interrupted fetch keeps its verified pieces: after a restart of the
// swarm the next fetch downloads only the rest.
func TestSwarmResumesAfterRestart(t *testing.T) {
	ctl := testnats.Start(t)
	startTracker(t, ctl)
	// A slow seed, so the fetch is still running when it is cancelled.
	seed := newSwarmNode(t, ctl, "seed", func(c *SwarmConfig) { c.UploadLimit = 2 << 20 })
	f := newSwarmNode(t, ctl, "fetcher", nil)
	dist, size := testImage(t, seed.st, "dist-resume", protocol.TransferUnit, 3<<20, 2<<20)
	dist.Seeds = []string{"seed"}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	go seed.sw.Seed(ctx, dist)

	// Watch the fetcher's Have messages on its own endpoint; cancel after
	// 5 (the image has 4 small pieces: manifest, config, layer tails).
	nc, err := connectData(t, f.data.ClientURL(), swarmToken)
	if err != nil {
		t.Fatal(err)
	}
	haves := make(chan struct{}, 64)
	if _, err := nc.Subscribe(protocol.SwarmHaveSubject(dist.ID), func(*nats.Msg) { haves <- struct{}{} }); err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	fctx, fcancel := context.WithCancel(ctx)
	go func() {
		for range 5 {
			<-haves
		}
		fcancel()
	}()
	first, err := f.sw.Fetch(fctx, dist)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("first fetch: err = %v, want it cancelled", err)
	}
	if first.Pieces < 5 || first.Pieces >= pieceCount(dist) {
		t.Fatalf("first fetch verified %d of %d pieces; want it cut short after 5", first.Pieces, pieceCount(dist))
	}

	// "Restart": a new swarm over the same data directory.
	f.sw.Close()
	var kept int64
	for _, b := range dist.Blobs {
		h, _ := v1.NewHash(b.Digest)
		if f.st.HasBlob(h) {
			kept += b.Size
			continue
		}
		p, err := swarm.OpenPartial(filepath.Join(f.dir, "swarm", dist.ID), b)
		if err != nil {
			t.Fatal(err)
		}
		kept += p.HaveBytes()
		p.Close()
	}
	if kept < protocol.TransferUnit {
		t.Fatalf("%d bytes of the first fetch survived on disk, want at least a whole piece", kept)
	}
	f.start(t)
	second, err := f.sw.Fetch(ctx, dist)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("image %d bytes in %d pieces: first fetch %d pieces, %d bytes; second %d pieces, %d bytes",
		size, pieceCount(dist), first.Pieces, first.Downloaded, second.Pieces, second.Downloaded)
	if first.Pieces+second.Pieces != pieceCount(dist) {
		t.Errorf("pieces: %d + %d, want %d in all", first.Pieces, second.Pieces, pieceCount(dist))
	}
	// One peer, so no endgame duplicates: exactly the missing bytes.
	if second.Downloaded != size-kept {
		t.Errorf("second fetch downloaded %d bytes; %d of %d were kept, so want %d", second.Downloaded, kept, size, size-kept)
	}
	assertHasImage(t, f, dist, seed.sw.RootFS(dist.ImageDigest))
	if entries, _ := filepath.Glob(filepath.Join(f.dir, "swarm", dist.ID, "*")); len(entries) != 0 {
		t.Errorf("partial blobs left after the fetch: %v", entries)
	}
	// Once everything is in the store, a fetch (a repeated step) moves
	// nothing.
	third, err := f.sw.Fetch(ctx, dist)
	if err != nil || third.Downloaded != 0 || third.Pieces != 0 {
		t.Errorf("fetch of an image already here: %+v, %v; want nothing moved", third, err)
	}
}

// The upload limit is applied when serving: a fetch from a capped seed
// cannot go faster than the cap (checked as a lower bound only).
func TestSwarmUploadLimit(t *testing.T) {
	ctl := testnats.Start(t)
	startTracker(t, ctl)
	const limit = 1 << 20
	seed := newSwarmNode(t, ctl, "seed", func(c *SwarmConfig) { c.UploadLimit = limit })
	f := newSwarmNode(t, ctl, "fetcher", nil)
	dist, size := testImage(t, seed.st, "dist-limit", protocol.TransferUnit, 3<<20)
	dist.Seeds = []string{"seed"}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	go seed.sw.Seed(ctx, dist)
	start := time.Now()
	if _, err := f.sw.Fetch(ctx, dist); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	// The token bucket starts full (one unit), then refills at the limit.
	floor := time.Duration(float64(size-protocol.TransferUnit) / limit * float64(time.Second))
	t.Logf("%d bytes at %d B/s took %s (floor %s)", size, limit, took, floor)
	if took < floor*9/10 {
		t.Errorf("fetch took %s; the seed's upload limit allows no less than %s", took, floor)
	}
}

// Piece requests that are malformed, name what is not here, or reach
// outside a piece get error headers and no bytes; good ones get the bytes
// of the store or of a verified piece of a Partial.
func TestSwarmServesPieceRequests(t *testing.T) {
	n := newSwarmNode(t, "", "server", nil)
	dist, _ := testImage(t, n.st, "dist-serve", protocol.TransferUnit, 2<<20+100)
	layer := dist.Blobs[len(dist.Blobs)-1]
	ss, err := n.sw.acquire(dist)
	if err != nil {
		t.Fatal(err)
	}
	defer ss.release()
	// A second distribution of an image not in the store: a Partial with
	// only piece 1 verified.
	other, _ := testImage(t, n.st, "dist-partial", protocol.TransferUnit, 2<<20)
	olayer := other.Blobs[len(other.Blobs)-1]
	oh, _ := v1.NewHash(olayer.Digest)
	olayerBytes, err := n.st.ReadBlob(oh)
	if err != nil {
		t.Fatal(err)
	}
	if err := removeBlob(n, olayer.Digest); err != nil {
		t.Fatal(err)
	}
	oss, err := n.sw.acquire(other)
	if err != nil {
		t.Fatal(err)
	}
	defer oss.release()
	if err := oss.blobs[olayer.Digest].partial.WritePiece(1, olayerBytes[protocol.TransferUnit:2*protocol.TransferUnit]); err != nil {
		t.Fatal(err)
	}

	nc, err := connectData(t, n.data.ClientURL(), swarmToken)
	if err != nil {
		t.Fatal(err)
	}
	h, _ := v1.NewHash(layer.Digest)
	layerBytes, err := n.st.ReadBlob(h)
	if err != nil {
		t.Fatal(err)
	}
	last := len(layer.Pieces) - 1
	lastLen := int(swarm.PieceLen(layer, last))
	for _, c := range []struct {
		name    string
		dist    string
		headers map[string]string
		code    protocol.ErrorCode
		want    []byte
	}{
		{"whole blob, first unit", dist.ID, req(layer.Digest, 0, 0, protocol.TransferUnit), "", layerBytes[:protocol.TransferUnit]},
		{"whole blob, short last piece", dist.ID, req(layer.Digest, last, 0, lastLen), "", layerBytes[last*protocol.TransferUnit:]},
		{"part of a unit", dist.ID, req(layer.Digest, 1, 0, 10), "", layerBytes[protocol.TransferUnit : protocol.TransferUnit+10]},
		{"verified piece of a partial", other.ID, req(olayer.Digest, 1, 0, protocol.TransferUnit), "", olayerBytes[protocol.TransferUnit : 2*protocol.TransferUnit]},
		{"piece not verified yet", other.ID, req(olayer.Digest, 0, 0, protocol.TransferUnit), protocol.CodeNotFound, nil},
		{"blob not in the distribution", dist.ID, req(olayer.Digest, 0, 0, 1), protocol.CodeNotFound, nil},
		{"piece past the end", dist.ID, req(layer.Digest, last+1, 0, 1), protocol.CodeBadRequest, nil},
		{"range past the piece", dist.ID, req(layer.Digest, last, 0, lastLen+1), protocol.CodeBadRequest, nil},
		{"offset past the piece", dist.ID, req(layer.Digest, 0, protocol.TransferUnit, 1), protocol.CodeBadRequest, nil},
		{"unaligned offset", dist.ID, req(layer.Digest, 0, 1, 1), protocol.CodeBadRequest, nil},
		{"zero length", dist.ID, req(layer.Digest, 0, 0, 0), protocol.CodeBadRequest, nil},
		{"unit too long", dist.ID, req(layer.Digest, 0, 0, protocol.TransferUnit+1), protocol.CodeBadRequest, nil},
		{"negative piece", dist.ID, req(layer.Digest, -1, 0, 1), protocol.CodeBadRequest, nil},
		{"bad digest", dist.ID, map[string]string{protocol.HeaderBlob: "sha256:zz", protocol.HeaderPiece: "0", protocol.HeaderOffset: "0", protocol.HeaderLength: "1"}, protocol.CodeBadRequest, nil},
		{"no headers", dist.ID, nil, protocol.CodeBadRequest, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			reply, err := nc.RequestMsg(pieceMsg(c.dist, c.headers), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			got := protocol.ErrorCode(reply.Header.Get(protocol.HeaderCode))
			if got != c.code {
				t.Fatalf("code %q (%s), want %q", got, reply.Header.Get(protocol.HeaderError), c.code)
			}
			if c.code != "" {
				if reply.Header.Get(protocol.HeaderError) == "" || len(reply.Data) != 0 {
					t.Errorf("error reply: message %q, %d bytes; want a message and no bytes", reply.Header.Get(protocol.HeaderError), len(reply.Data))
				}
				return
			}
			if !bytes.Equal(reply.Data, c.want) {
				t.Errorf("got %d bytes, want %d bytes of the blob", len(reply.Data), len(c.want))
			}
			sendDone(t, nc, c.dist, c.headers)
		})
	}

	// An upload slot is held until the requester says done, not merely
	// until its bytes are handed to the endpoint: with every slot held, a
	// request waits and is then answered busy; a done lets it through.
	var held []map[string]string
	for i := range uploadSlots {
		h := req(layer.Digest, i, 0, 1)
		reply, err := nc.RequestMsg(pieceMsg(dist.ID, h), 5*time.Second)
		if err != nil || reply.Header.Get(protocol.HeaderCode) != "" {
			t.Fatalf("slot %d: %v %s", i, err, reply.Header.Get(protocol.HeaderError))
		}
		held = append(held, h)
	}
	extra := req(layer.Digest, uploadSlots, 0, 1)
	reply, err := nc.RequestMsg(pieceMsg(dist.ID, extra), 5*time.Second)
	if err != nil || protocol.ErrorCode(reply.Header.Get(protocol.HeaderCode)) != protocol.CodeBusy {
		t.Fatalf("a piece beyond %d held slots: %v, code %q; want busy", uploadSlots, err, reply.Header.Get(protocol.HeaderCode))
	}
	sendDone(t, nc, dist.ID, held[0])
	reply, err = nc.RequestMsg(pieceMsg(dist.ID, extra), 5*time.Second)
	if err != nil || reply.Header.Get(protocol.HeaderCode) != "" || len(reply.Data) != 1 {
		t.Fatalf("after a done: %v, code %q", err, reply.Header.Get(protocol.HeaderCode))
	}
	for _, h := range append(held[1:], extra) {
		sendDone(t, nc, dist.ID, h)
	}

	// Bitfields: a whole blob has every bit, a partial only its verified
	// pieces, an untouched blob none (it is left out).
	bits := func(id string) map[string][]byte {
		reply, err := nc.Request(protocol.SwarmBitfieldSubject(id), nil, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var bf protocol.Bitfields
		if err := protocol.DecodeAs(reply.Data, &bf); err != nil {
			t.Fatal(err)
		}
		return bf.Blobs
	}
	if got, want := bits(dist.ID)[layer.Digest], swarm.FullBitfield(len(layer.Pieces)).Bytes(); !bytes.Equal(got, want) {
		t.Errorf("whole blob's bits %08b, want %08b", got, want)
	}
	if got := bits(other.ID)[olayer.Digest]; !bytes.Equal(got, []byte{0x40}) {
		t.Errorf("partial blob's bits %08b, want 01000000", got)
	}
}

func pieceMsg(dist string, headers map[string]string) *nats.Msg {
	m := nats.NewMsg(protocol.SwarmPieceSubject(dist))
	for k, v := range headers {
		m.Header.Set(k, v)
	}
	return m
}

// sendDone says, as a fetching peer does, that the piece a request named
// is here, and waits until the endpoint has it.
func sendDone(t *testing.T, nc *nats.Conn, dist string, request map[string]string) {
	t.Helper()
	m := nats.NewMsg(protocol.SwarmDoneSubject(dist))
	m.Reply = nc.NewRespInbox()
	m.Header.Set(protocol.HeaderBlob, request[protocol.HeaderBlob])
	m.Header.Set(protocol.HeaderPiece, request[protocol.HeaderPiece])
	if err := nc.PublishMsg(m); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

func req(blob string, piece, off, length int) map[string]string {
	return protocol.PieceRequest{Blob: blob, Piece: piece, Offset: int64(off), Length: length}.Headers()
}

// removeBlob deletes a blob from the node's store (a test shortcut: the
// store has no call for one blob).
func removeBlob(n *swarmNode, digest string) error {
	h, err := v1.NewHash(digest)
	if err != nil {
		return err
	}
	return removeFile(n.st.BlobPath(h))
}

// A seed must hold every blob: else its step fails naming what is missing.
func TestSwarmSeedMissingBlob(t *testing.T) {
	n := newSwarmNode(t, "", "seed", nil)
	dist, _ := testImage(t, n.st, "dist-missing", protocol.DefaultPieceSize, 1<<20)
	dist.Seeds = []string{"seed"}
	layer := dist.Blobs[len(dist.Blobs)-1].Digest
	if err := removeBlob(n, layer); err != nil {
		t.Fatal(err)
	}
	_, err := n.sw.Seed(context.Background(), dist)
	if !errors.Is(err, ErrNotSeed) || !strings.Contains(err.Error(), layer) {
		t.Fatalf("Seed = %v, want ErrNotSeed naming %s", err, layer)
	}
	if n.sw.Serving(dist.ID) {
		t.Error("a failed seed serves the distribution")
	}
	act := DistributeAction{Swarm: func() *Swarm { return n.sw }}
	if code, _, err := act.Run(context.Background(), protocol.Action{Kind: protocol.ActionDistribute, Distribution: dist}, &bytes.Buffer{}); code == 0 || !errors.Is(err, ErrNotSeed) {
		t.Errorf("distribute step = %d, %v; want a failure", code, err)
	}
}

// Without a distribution, or before the agent's swarm is up, a distribute
// step fails clearly.
func TestDistributeActionErrors(t *testing.T) {
	act := DistributeAction{Swarm: func() *Swarm { return nil }}
	if code, _, err := act.Run(context.Background(), protocol.Action{Kind: protocol.ActionDistribute}, &bytes.Buffer{}); code == 0 || err == nil {
		t.Errorf("no distribution: %d, %v", code, err)
	}
	dist := &protocol.Distribution{ID: "d"}
	if _, _, err := act.Run(context.Background(), protocol.Action{Kind: protocol.ActionDistribute, Distribution: dist}, &bytes.Buffer{}); !errors.Is(err, ErrNoSwarm) {
		t.Errorf("no swarm: %v, want ErrNoSwarm", err)
	}
}

// A distribution the tracker never calls done is served for the linger
// time after its step ended, then dropped.
func TestSwarmLingerEnds(t *testing.T) {
	ctl := testnats.Start(t)
	startTracker(t, ctl)
	seed := newSwarmNode(t, ctl, "seed", func(c *SwarmConfig) { c.Linger = 300 * time.Millisecond })
	f := newSwarmNode(t, ctl, "fetcher", func(c *SwarmConfig) { c.Linger = 300 * time.Millisecond })
	dist, _ := testImage(t, seed.st, "dist-linger", protocol.DefaultPieceSize, 1<<20)
	dist.Seeds = []string{"seed"}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	seedDone := make(chan error, 1)
	go func() { _, err := seed.sw.Seed(ctx, dist); seedDone <- err }()
	if _, err := f.sw.Fetch(ctx, dist); err != nil {
		t.Fatal(err)
	}
	if err := <-seedDone; err != nil {
		t.Fatalf("seed: %v", err)
	}
	eventually(t, 10*time.Second, "both stop serving after the linger time", func() bool {
		return !seed.sw.Serving(dist.ID) && !f.sw.Serving(dist.ID)
	})
}

// Bad distributions are refused before anything touches the disk.
func TestCheckDistribution(t *testing.T) {
	good := protocol.BlobPieces{Digest: "sha256:" + strings.Repeat("a", 64), Size: 1, PieceSize: protocol.TransferUnit, Pieces: []string{strings.Repeat("b", 64)}}
	other := good
	other.Digest = "sha256:" + strings.Repeat("c", 64)
	bad := good
	bad.Pieces = nil
	for _, c := range []struct {
		name string
		d    *protocol.Distribution
		ok   bool
	}{
		{"good", &protocol.Distribution{ID: "d", ImageDigest: good.Digest, Blobs: []protocol.BlobPieces{good, other}}, true},
		{"nil", nil, false},
		{"bad ID", &protocol.Distribution{ID: "a.b", ImageDigest: good.Digest, Blobs: []protocol.BlobPieces{good}}, false},
		{"bad image digest", &protocol.Distribution{ID: "d", ImageDigest: "sha256:x", Blobs: []protocol.BlobPieces{good}}, false},
		{"no blobs", &protocol.Distribution{ID: "d", ImageDigest: good.Digest}, false},
		{"bad manifest", &protocol.Distribution{ID: "d", ImageDigest: good.Digest, Blobs: []protocol.BlobPieces{bad}}, false},
		{"blob twice", &protocol.Distribution{ID: "d", ImageDigest: good.Digest, Blobs: []protocol.BlobPieces{good, good}}, false},
		{"image manifest not a blob", &protocol.Distribution{ID: "d", ImageDigest: other.Digest, Blobs: []protocol.BlobPieces{good}}, false},
	} {
		if err := checkDistribution(c.d); (err == nil) != c.ok {
			t.Errorf("%s: err = %v, want ok %v", c.name, err, c.ok)
		}
	}
}

// DownloadConcurrency bounds the unit requests a node has out to all its
// peers together.
func TestSwarmDownloadConcurrency(t *testing.T) {
	ctl := testnats.Start(t)
	startTracker(t, ctl)
	seeds := []*swarmNode{newSwarmNode(t, ctl, "seed-a", nil), newSwarmNode(t, ctl, "seed-b", nil)}
	dist, _ := testImage(t, seeds[0].st, "dist-down", protocol.TransferUnit, 6<<20, 5<<20)
	copyImage(t, seeds[0].st, seeds[1].st, dist)
	dist.Seeds = []string{"seed-a", "seed-b"}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, s := range seeds {
		go s.sw.Seed(ctx, dist)
	}
	for _, c := range []struct {
		id    string
		limit int
	}{{"one-at-a-time", 1}, {"default", 0}} {
		f := newSwarmNode(t, ctl, c.id, func(cfg *SwarmConfig) { cfg.DownloadConcurrency = c.limit })
		if _, err := f.sw.Fetch(ctx, dist); err != nil {
			t.Fatal(err)
		}
		assertHasImage(t, f, dist, "")
		peak := f.sw.downPeak.Load()
		t.Logf("%s: at most %d unit requests out", c.id, peak)
		if c.limit > 0 && peak > int32(c.limit) {
			t.Errorf("%s: %d unit requests out at once; the limit is %d", c.id, peak, c.limit)
		}
		if c.limit == 0 && peak < 2 {
			t.Errorf("%s: never more than %d unit request out: the default limit is %d", c.id, peak, DefaultDownloadConcurrency)
		}
	}
}
