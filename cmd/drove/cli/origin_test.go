package cli

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/nats-io/nats.go"

	"github.com/drove-project/drove/agent"
	"github.com/drove-project/drove/internal/testnats"
	"github.com/drove-project/drove/layers/store"
	"github.com/drove-project/drove/protocol"
)

const originToken = "drove-origin-test-token-0001"

// originTracker answers announces on a plain control NATS server: every
// peer that did not leave is handed to the others, CopiesOut counts
// complete non-seeds (the coordinator's tracker is tested in its own
// package; here only its answers matter).
type originTracker struct {
	mu   sync.Mutex
	last map[string]protocol.SwarmAnnounce
}

func (tr *originTracker) answer(a protocol.SwarmAnnounce) *protocol.SwarmPeers {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.last[a.Peer.ID] = a
	out := &protocol.SwarmPeers{}
	for id, p := range tr.last {
		if p.Leaving {
			continue
		}
		if p.Complete && !p.Peer.Seed {
			out.CopiesOut++
		}
		if id != a.Peer.ID {
			out.Peers = append(out.Peers, p.Peer)
		}
	}
	return out
}

func (tr *originTracker) lastOf(id string) (protocol.SwarmAnnounce, bool) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	a, ok := tr.last[id]
	return a, ok
}

// originEnv is a control server with a tracker, a CLI data dir holding a
// random image, and its distribution.
type originEnv struct {
	tr   *originTracker
	ctl  string
	nc   *nats.Conn
	g    *Globals
	dist *protocol.Distribution
	size int64
}

func newOriginEnv(t *testing.T, size int64) *originEnv {
	t.Helper()
	e := &originEnv{tr: &originTracker{last: map[string]protocol.SwarmAnnounce{}}, ctl: testnats.Start(t), size: size}
	e.nc = connectPlain(t, e.ctl)
	_, err := e.nc.Subscribe(protocol.APISubject, func(m *nats.Msg) {
		var a protocol.SwarmAnnounce
		if err := protocol.DecodeAs(m.Data, &a); err != nil {
			b, _ := protocol.Encode(protocol.Errorf(protocol.CodeBadRequest, "%v", err))
			m.Respond(b)
			return
		}
		b, _ := protocol.Encode(e.tr.answer(a))
		m.Respond(b)
	})
	if err != nil {
		t.Fatal(err)
	}
	var errb bytes.Buffer
	e.g = &Globals{DataDir: t.TempDir(), Streams: Streams{Out: &bytes.Buffer{}, Err: &errb}}
	st, err := e.g.Store()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := WriteRandomImage(t.Context(), st, "origin/test:1", size, 2, 7); err != nil {
		t.Fatal(err)
	}
	if e.dist, err = distribution(t.Context(), e.g, "origin/test:1", "dist-origin", protocol.TransferUnit); err != nil {
		t.Fatal(err)
	}
	return e
}

func connectPlain(t *testing.T, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// fetcher is a node's swarm: its own store, data endpoint and control
// connection.
func (e *originEnv) fetcher(t *testing.T, id string) (*agent.Swarm, *store.Store) {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "store"))
	if err != nil {
		t.Fatal(err)
	}
	ds, err := agent.StartDataServer(t.Context(), agent.DataConfig{Name: id, Host: "127.0.0.1", Token: originToken}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ds.Shutdown)
	sw, err := agent.NewSwarm(agent.SwarmConfig{
		NodeID: id, DataAddr: strings.TrimPrefix(ds.ClientURL(), "nats://"), DataURL: ds.ClientURL(),
		DataDir: dir, Store: st, Control: connectPlain(t, e.ctl), Token: originToken, AnnounceInterval: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sw.Close() })
	return sw, st
}

// poll waits for cond with a deadline.
func poll(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
}

// The CLI serves an image from its own store to a node that has nothing:
// the node gets every blob; the origin announced itself as a seed at the
// address it serves on, uploaded the image once, and left by itself once
// the node held a full copy (its endpoint closed, its work directory
// gone); stop afterwards, twice, is harmless.
func TestOriginServesThenLeaves(t *testing.T) {
	e := newOriginEnv(t, 6<<20)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	id, stop, err := startOrigin(ctx, e.g, e.nc, e.dist, originOptions{Addr: "127.0.0.1", Token: originToken})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if !protocol.ValidID(id) || !strings.HasPrefix(id, "origin-") || len(e.dist.Seeds) != 1 || e.dist.Seeds[0] != id {
		t.Fatalf("origin ID %q, seeds %v: want a valid origin-… ID appended to the seeds", id, e.dist.Seeds)
	}
	var addr string
	poll(t, 10*time.Second, "the origin's first announce", func() bool {
		a, ok := e.tr.lastOf(id)
		addr = a.Peer.Addr
		return ok && a.Peer.Seed && a.Complete
	})
	if host, _, _ := net.SplitHostPort(addr); host != "127.0.0.1" {
		t.Fatalf("origin announced data address %q, want on 127.0.0.1", addr)
	}

	sw, st := e.fetcher(t, "n1")
	if _, err := sw.Fetch(ctx, e.dist); err != nil {
		t.Fatal(err)
	}
	for _, b := range e.dist.Blobs {
		h, _ := v1.NewHash(b.Digest)
		if err := st.VerifyBlob(h); err != nil {
			t.Fatalf("n1: blob %s: %v", b.Digest, err)
		}
	}
	var last protocol.SwarmAnnounce
	poll(t, 20*time.Second, "the origin to leave once a full copy is out", func() bool {
		last, _ = e.tr.lastOf(id)
		return last.Leaving
	})
	if last.Uploaded < e.size || last.Uploaded >= 2*e.size {
		t.Errorf("origin uploaded %d bytes to one node, want about the image (%d)", last.Uploaded, e.size)
	}
	poll(t, 10*time.Second, "the origin's endpoint to close", func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	poll(t, 10*time.Second, "the origin's work directory to go", func() bool {
		_, err := os.Stat(filepath.Join(e.g.DataDir, "origin", id))
		return errors.Is(err, os.ErrNotExist)
	})
	done := make(chan struct{})
	go func() { stop(); stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(originStopTimeout + 5*time.Second):
		t.Fatal("stop after the origin left did not return")
	}
	// The CLI's store still names the image as before (the origin does
	// not unpack or re-tag it).
	if _, err := os.Stat(filepath.Join(e.g.DataDir, "rootfs")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the origin unpacked the image on the CLI's machine: %v", err)
	}
}

// stop before any copy is out: the origin leaves at once (the tracker
// hears it leave) and stop returns after it has; a second stop is a no-op.
func TestOriginStop(t *testing.T) {
	e := newOriginEnv(t, 2<<20)
	id, stop, err := startOrigin(t.Context(), e.g, e.nc, e.dist, originOptions{Addr: "127.0.0.1:0", Token: originToken})
	if err != nil {
		t.Fatal(err)
	}
	poll(t, 10*time.Second, "the origin's first announce", func() bool { _, ok := e.tr.lastOf(id); return ok })
	stop()
	if a, _ := e.tr.lastOf(id); !a.Leaving {
		t.Fatalf("after stop the origin's last announce is %+v, want leaving", a)
	}
	stop()
	if _, err := os.Stat(filepath.Join(e.g.DataDir, "origin", id)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("work directory after stop: %v", err)
	}
}

// The origin refuses to start without the image or with no address.
func TestOriginStartErrors(t *testing.T) {
	e := newOriginEnv(t, 1<<20)
	missing := *e.dist
	missing.Blobs = append([]protocol.BlobPieces{{Digest: "sha256:" + strings.Repeat("e", 64), Size: 1, PieceSize: protocol.TransferUnit, Pieces: []string{strings.Repeat("f", 64)}}}, e.dist.Blobs...)
	if _, _, err := startOrigin(t.Context(), e.g, e.nc, &missing, originOptions{Token: originToken}); !errors.Is(err, agent.ErrNotSeed) {
		t.Fatalf("a blob missing from the store: %v, want ErrNotSeed", err)
	}
	if _, _, err := startOrigin(t.Context(), e.g, nil, e.dist, originOptions{Token: originToken}); err == nil || !strings.Contains(err.Error(), "--origin-addr") {
		t.Fatalf("no connection and no --origin-addr: %v", err)
	}
	if len(e.dist.Seeds) != 0 {
		t.Fatalf("failed starts changed the seeds: %v", e.dist.Seeds)
	}
}

func TestOriginAddr(t *testing.T) {
	for _, c := range []struct {
		in   string
		host string
		port int
		bad  bool
	}{
		{in: "10.0.0.5", host: "10.0.0.5"},
		{in: "10.0.0.5:7960", host: "10.0.0.5", port: 7960},
		{in: "build.example.com:0", host: "build.example.com"},
		{in: "[fd00::1]:80", host: "fd00::1", port: 80},
		{in: "[fd00::1]", host: "fd00::1"},
		{in: "fd00::1", host: "fd00::1"},
		{in: "10.0.0.5:http", bad: true},
		{in: "10.0.0.5:70000", bad: true},
		{in: ":7960", bad: true},
		{in: "a:b:c", bad: true},
		{in: "a b", bad: true},
	} {
		host, port, err := parseOriginAddr(c.in)
		if c.bad {
			if !errors.Is(err, ErrOriginAddr) {
				t.Errorf("%q: %v, want ErrOriginAddr", c.in, err)
			}
			continue
		}
		if err != nil || host != c.host || port != c.port {
			t.Errorf("%q: %q %d %v, want %q %d", c.in, host, port, err, c.host, c.port)
		}
	}
	// Default: the local address of the connection to the coordinators.
	e := newOriginEnv(t, 1<<20)
	if host, port, err := originAddr("", e.nc); err != nil || host != "127.0.0.1" || port != 0 {
		t.Fatalf("default origin address %q %d %v, want 127.0.0.1 and a free port", host, port, err)
	}
	if listenHost("127.0.0.1") != "127.0.0.1" || listenHost("203.0.113.9") != "0.0.0.0" || listenHost("build.example.com") != "0.0.0.0" {
		t.Fatal("listenHost: want the address when it is this machine's, every address otherwise")
	}
}

func TestClientToken(t *testing.T) {
	dir := t.TempDir()
	g := &Globals{DataDir: dir}
	file := filepath.Join(dir, "token")
	os.WriteFile(file, []byte(originToken+"\n"), 0o600)
	t.Setenv("DROVE_TOKEN", "drove-from-the-environment-01")
	if tok, err := (&clientFlags{TokenFile: file}).token(g); err != nil || tok != originToken {
		t.Fatalf("token file: %q %v", tok, err)
	}
	if tok, err := (&clientFlags{}).token(g); err != nil || tok != "drove-from-the-environment-01" {
		t.Fatalf("environment: %q %v", tok, err)
	}
	t.Setenv("DROVE_TOKEN", "")
	if err := writeContext(g, clientContext{Servers: []string{"nats://x:4222"}, Token: "drove-from-the-context-0001"}); err != nil {
		t.Fatal(err)
	}
	if tok, err := (&clientFlags{}).token(g); err != nil || tok != "drove-from-the-context-0001" {
		t.Fatalf("context: %q %v", tok, err)
	}
	if _, err := (&clientFlags{}).token(&Globals{DataDir: t.TempDir()}); err == nil {
		t.Fatal("no token anywhere: no error")
	}
}

// FuzzParseOriginAddr: any --origin-addr either fails with ErrOriginAddr
// or yields a host and port that make an address which reads back the same.
func FuzzParseOriginAddr(f *testing.F) {
	for _, s := range []string{"10.0.0.5", "10.0.0.5:7960", "[fd00::1]:80", "fd00::1", "host.example:0", ":1", "[]:1", "a:b:c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		host, port, err := parseOriginAddr(s)
		if err != nil {
			if !errors.Is(err, ErrOriginAddr) {
				t.Fatalf("%q: %v does not wrap ErrOriginAddr", s, err)
			}
			return
		}
		if host == "" || port < 0 || port > 65535 {
			t.Fatalf("%q: host %q port %d", s, host, port)
		}
		h2, p2, err := parseOriginAddr(net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil || h2 != host || p2 != port {
			t.Fatalf("%q: %q %d does not read back: %q %d %v", s, host, port, h2, p2, err)
		}
	})
}
