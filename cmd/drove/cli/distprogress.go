package cli

import (
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"

	"github.com/drove-project/drove/internal/progress"
	"github.com/drove-project/drove/protocol"
)

// distProgress shows each receiving node's delivery while a distribution
// runs, from the tracker's view of it: on a terminal a bar per node with
// bytes, download rate and connected peers; otherwise a line per node at
// most every few seconds and a last one when it ends. Not safe for
// concurrent use (one goroutine follows the distribution).
type distProgress struct {
	w     io.Writer
	quiet bool
	tty   bool
	every time.Duration // between two lines of one node (not on a terminal)

	p     *mpb.Progress
	nodes map[string]*nodeProgress
	now   func() time.Time
}

// nodeProgress is one node's bar or lines. The counters are read by the
// bar's refresh goroutine.
type nodeProgress struct {
	name  string
	bar   *mpb.Bar
	rate  atomic.Int64
	peers atomic.Int64
	have  int64
	total int64
	start time.Time
	last  time.Time // of the last line
	ended bool
}

// distLineEvery spaces the lines of one node when stderr is no terminal.
const distLineEvery = 5 * time.Second

func newDistProgress(w io.Writer, quiet bool) *distProgress {
	tty := false
	if f, ok := w.(*os.File); ok {
		tty = term.IsTerminal(int(f.Fd()))
	}
	return &distProgress{w: w, quiet: quiet, tty: tty, every: distLineEvery, nodes: map[string]*nodeProgress{}, now: time.Now}
}

// update records a node's latest announce.
func (d *distProgress) update(p protocol.PeerProgress) {
	if d.quiet {
		return
	}
	n := d.nodes[p.Peer.ID]
	if n == nil {
		n = &nodeProgress{name: p.Peer.ID, start: d.now(), last: d.now()}
		d.nodes[p.Peer.ID] = n
		if d.tty {
			n.bar = d.bars().AddBar(0,
				mpb.PrependDecorators(decor.Name(n.name, decor.WCSyncSpaceR)),
				mpb.AppendDecorators(decor.Counters(decor.SizeB1024(0), "% .1f / % .1f"),
					decor.Any(func(decor.Statistics) string { return n.extra() })),
			)
		}
	}
	if n.ended {
		return
	}
	n.have, n.total = p.Have, p.Total
	n.rate.Store(p.RateBps)
	n.peers.Store(int64(p.Connected))
	if n.bar != nil {
		n.bar.SetTotal(p.Total, false)
		n.bar.SetCurrent(p.Have)
		return
	}
	if now := d.now(); now.Sub(n.last) >= d.every {
		n.last = now
		fmt.Fprintf(d.w, "%s: %s\n", n.name, n.describe())
	}
}

// finish ends a node's bar or lines: done, or failed with err. Nodes never
// seen are ignored.
func (d *distProgress) finish(node string, err error) {
	n := d.nodes[node]
	if n == nil || n.ended {
		return
	}
	n.ended = true
	if n.bar != nil {
		if err != nil {
			n.bar.Abort(false)
		} else {
			n.bar.SetTotal(-1, true)
		}
		return
	}
	if err != nil {
		fmt.Fprintf(d.w, "%s: failed (%v) after %s\n", n.name, err, progress.HumanBytes(n.have))
		return
	}
	fmt.Fprintf(d.w, "%s: done, %s in %s\n", n.name, progress.HumanBytes(n.total), d.now().Sub(n.start).Round(time.Millisecond))
}

// close ends every bar still running (as done) and flushes them.
func (d *distProgress) close() {
	for name := range d.nodes {
		d.finish(name, nil)
	}
	if d.p != nil {
		d.p.Wait()
		d.p = nil
	}
}

func (d *distProgress) bars() *mpb.Progress {
	if d.p == nil {
		d.p = mpb.New(mpb.WithOutput(d.w), mpb.WithWidth(40), mpb.WithRefreshRate(150*time.Millisecond))
	}
	return d.p
}

// extra is what follows a bar's counters: rate and peers.
func (n *nodeProgress) extra() string {
	return fmt.Sprintf("  %s/s  peers %d", progress.HumanBytes(n.rate.Load()), n.peers.Load())
}

// describe is a line's progress: bytes, share, rate and peers.
func (n *nodeProgress) describe() string {
	pct := ""
	if n.total > 0 {
		pct = fmt.Sprintf(" (%d%%)", n.have*100/n.total)
	}
	return fmt.Sprintf("%s / %s%s, %s/s, peers %d", progress.HumanBytes(n.have), progress.HumanBytes(n.total), pct,
		progress.HumanBytes(n.rate.Load()), n.peers.Load())
}
