// Package progress shows progress of long work on stderr: bars when stderr is
// a terminal, a few plain lines otherwise (logs and CI output stay readable).
package progress

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"
)

// Reporter makes progress trackers for one command.
type Reporter struct {
	w     io.Writer
	tty   bool
	quiet bool

	mu sync.Mutex
	p  *mpb.Progress
}

// New returns a Reporter writing to w. Bars are drawn only if w is a
// terminal; quiet turns all progress off.
func New(w io.Writer, quiet bool) *Reporter {
	tty := false
	if f, ok := w.(*os.File); ok {
		tty = term.IsTerminal(int(f.Fd()))
	}
	return &Reporter{w: w, tty: tty, quiet: quiet}
}

// Tracker follows one piece of work measured in bytes.
type Tracker interface {
	// Set records that done of total bytes are finished; total < 0 means
	// not known yet. Safe for concurrent use.
	Set(done, total int64)
	// Done marks the work finished (or abandoned, if err is not nil).
	Done(err error)
}

// Track starts a tracker labelled name.
func (r *Reporter) Track(name string) Tracker {
	if r.quiet {
		return nop{}
	}
	if r.tty {
		r.mu.Lock()
		if r.p == nil {
			r.p = mpb.New(mpb.WithOutput(r.w), mpb.WithWidth(40), mpb.WithRefreshRate(150*time.Millisecond))
		}
		p := r.p
		r.mu.Unlock()
		bar := p.AddBar(0,
			mpb.PrependDecorators(decor.Name(name, decor.WCSyncSpaceR)),
			mpb.AppendDecorators(decor.Counters(decor.SizeB1024(0), "% .1f / % .1f"), decor.Name(" "),
				decor.AverageSpeed(decor.SizeB1024(0), "% .1f")),
		)
		return &barTracker{bar: bar}
	}
	return &lineTracker{w: r.w, name: name, start: time.Now()}
}

// Wait flushes bars; call it once all trackers are Done.
func (r *Reporter) Wait() {
	r.mu.Lock()
	p := r.p
	r.p = nil
	r.mu.Unlock()
	if p != nil {
		p.Wait()
	}
}

type nop struct{}

func (nop) Set(int64, int64) {}
func (nop) Done(error)       {}

type barTracker struct {
	mu  sync.Mutex
	bar *mpb.Bar
}

func (b *barTracker) Set(done, total int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if total >= 0 {
		b.bar.SetTotal(total, false)
	}
	b.bar.SetCurrent(done)
}

func (b *barTracker) Done(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err != nil {
		b.bar.Abort(false)
		return
	}
	b.bar.SetTotal(-1, true)
}

// lineTracker prints at most one line every few seconds, and a final one.
type lineTracker struct {
	mu    sync.Mutex
	w     io.Writer
	name  string
	start time.Time
	last  time.Time
	done  int64
	total int64
}

const lineEvery = 5 * time.Second

func (l *lineTracker) Set(done, total int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.done, l.total = done, total
	if time.Since(l.last) < lineEvery {
		return
	}
	if !l.last.IsZero() {
		fmt.Fprintf(l.w, "%s: %s\n", l.name, l.describe())
	}
	l.last = time.Now()
}

func (l *lineTracker) Done(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		fmt.Fprintf(l.w, "%s: failed after %s\n", l.name, HumanBytes(l.done))
		return
	}
	fmt.Fprintf(l.w, "%s: done, %s in %s\n", l.name, HumanBytes(l.done), time.Since(l.start).Round(time.Millisecond))
}

func (l *lineTracker) describe() string {
	if l.total > 0 {
		return fmt.Sprintf("%s / %s (%d%%)", HumanBytes(l.done), HumanBytes(l.total), l.done*100/l.total)
	}
	return HumanBytes(l.done)
}

// HumanBytes formats n like "12.3 MiB".
func HumanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
