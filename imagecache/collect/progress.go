package collect

import (
	"sync"
)

// Phase is the stage of one image's collection an Event reports.
type Phase int

// Phases of an image, in the order they happen; every image ends with
// Done or Failed.
const (
	// Started: the image is being resolved; Total is not known yet.
	Started Phase = iota + 1
	// Bytes: Done of Total bytes of the image's blobs are in place.
	Bytes
	// Done: the image is collected; Done equals Total.
	Done
	// Failed: the image could not be collected; Err says why.
	Failed
)

// String names the phase.
func (p Phase) String() string {
	switch p {
	case Started:
		return "started"
	case Bytes:
		return "bytes"
	case Done:
		return "done"
	case Failed:
		return "failed"
	}
	return "unknown"
}

// Event reports progress of one image to Options.Progress.
type Event struct {
	// Ref is the normalised image reference.
	Ref   string
	Phase Phase
	// Done and Total count the bytes of the blobs the image needs for the
	// target platforms (index, manifests, configs, layers). Blobs already
	// in the layout, reported by Have, or written for another image count
	// as done when found so.
	Done, Total int64
	// Err is set with Failed.
	Err error
}

// bytesStep is how many written bytes make a Bytes event; blob
// completions always do.
const bytesStep = 1 << 20

// reporter serialises calls to Options.Progress.
type reporter struct {
	mu sync.Mutex
	fn func(Event)
}

func (r *reporter) emit(e Event) {
	if r == nil || r.fn == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fn(e)
}

// imageProgress tracks one image's bytes; it is used by the one goroutine
// pulling that image.
type imageProgress struct {
	r           *reporter
	ref         string
	done, total int64
	lastSent    int64
}

// add counts n more bytes in place and reports them when enough have
// accumulated, or always when force is set.
func (p *imageProgress) add(n int64, force bool) {
	p.done += n
	if force || p.done-p.lastSent >= bytesStep {
		p.lastSent = p.done
		p.r.emit(Event{Ref: p.ref, Phase: Bytes, Done: p.done, Total: p.total})
	}
}
