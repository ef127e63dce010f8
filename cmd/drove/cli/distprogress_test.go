package cli

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/drove-project/drove/protocol"
)

func peerProgress(id string, have, total, rate int64, peers int) protocol.PeerProgress {
	return protocol.PeerProgress{SwarmAnnounce: protocol.SwarmAnnounce{
		Peer: protocol.SwarmPeer{ID: id}, Have: have, Total: total, RateBps: rate, Connected: peers,
	}}
}

// Without a terminal each node gets a line at most every interval with
// bytes, share, rate and connected peers, and a last line when it ends;
// nothing more after that.
func TestDistProgressLines(t *testing.T) {
	var out bytes.Buffer
	d := newDistProgress(&out, false)
	now := time.Unix(1000, 0)
	d.now = func() time.Time { return now }
	d.update(peerProgress("n2", 1<<20, 4<<20, 2<<20, 3))
	if out.Len() != 0 {
		t.Fatalf("a line before the first interval passed: %q", out.String())
	}
	now = now.Add(distLineEvery)
	d.update(peerProgress("n2", 2<<20, 4<<20, 2<<20, 5))
	d.update(peerProgress("n2", 3<<20, 4<<20, 2<<20, 6)) // same instant: no line
	now = now.Add(time.Second)
	d.finish("n2", nil)
	d.update(peerProgress("n2", 4<<20, 4<<20, 0, 0)) // a late announce after the end
	d.finish("n3", errors.New("failed"))             // never seen: nothing to say
	d.close()
	want := "n2: 2.0 MiB / 4.0 MiB (50%), 2.0 MiB/s, peers 5\nn2: done, 4.0 MiB in 6s\n"
	if out.String() != want {
		t.Fatalf("lines:\n%s\nwant:\n%s", out.String(), want)
	}

	out.Reset()
	d = newDistProgress(&out, false)
	d.every = 0
	d.update(peerProgress("n4", 1<<20, 4<<20, 0, 2))
	d.finish("n4", errors.New(protocol.StateFailed))
	if got := out.String(); !strings.Contains(got, "n4: 1.0 MiB / 4.0 MiB (25%), 0 B/s, peers 2\n") || !strings.Contains(got, "n4: failed (failed) after 1.0 MiB") {
		t.Fatalf("failed node: %q", got)
	}

	out.Reset()
	d = newDistProgress(&out, true)
	d.every = 0
	d.update(peerProgress("n5", 1, 2, 0, 1))
	d.finish("n5", nil)
	d.close()
	if out.Len() != 0 {
		t.Fatalf("--quiet printed %q", out.String())
	}
}

// The distribute command's flags: --origin-addr is checked before any
// cluster is asked, and makes no sense with --seed-node.
func TestDistributeFlags(t *testing.T) {
	d := t.TempDir()
	if r := runCLI(t, d, "", "distribute", "x:1", "--seed-node", "n1", "--origin-addr", "10.0.0.1"); r.code != exitUsage || !strings.Contains(r.err, "--seed-node") {
		t.Fatalf("--origin-addr with --seed-node: %+v", r)
	}
	if r := runCLI(t, d, "", "distribute", "x:1", "--origin-addr", "10.0.0.1:port"); r.code != exitUsage || !strings.Contains(r.err, "--origin-addr") {
		t.Fatalf("bad --origin-addr: %+v", r)
	}
	cmd := newDistributeCmd(&Globals{DataDir: d})
	if err := cmd.ParseFlags([]string{"--origin-addr", "10.0.0.1:7960", "--nodes", "n1,n2"}); err != nil {
		t.Fatal(err)
	}
	if v, _ := cmd.Flags().GetString("origin-addr"); v != "10.0.0.1:7960" {
		t.Fatalf("--origin-addr = %q", v)
	}
}
