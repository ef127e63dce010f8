package layer

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Sizes of the buffers between the tar writer and its consumers: large
// enough to amortise channel hand-offs, few enough to bound memory.
const (
	chunkSize  = 1 << 20
	chunkCount = 8
)

// bufPool holds the chunkSize buffers that files are read into and written
// from.
var bufPool = sync.Pool{New: func() any { b := make([]byte, chunkSize); return &b }}

// chunk is one buffer of the tar stream on its way to every sink.
type chunk struct {
	buf  []byte
	refs atomic.Int32
}

// fanout is an io.Writer that hands the bytes written to it, in order and in
// chunks, to several writers, each running in its own goroutine, so that
// hashing the tar stream and compressing it use separate cores. Close must be
// called to flush the last chunk and stop the goroutines.
type fanout struct {
	free   chan *chunk
	sinks  []chan *chunk
	cur    *chunk
	wg     sync.WaitGroup
	failed atomic.Bool
	mu     sync.Mutex
	err    error
}

func newFanout(ws ...io.Writer) *fanout {
	f := &fanout{free: make(chan *chunk, chunkCount)}
	for range chunkCount {
		f.free <- &chunk{buf: make([]byte, 0, chunkSize)}
	}
	for _, w := range ws {
		ch := make(chan *chunk, chunkCount)
		f.sinks = append(f.sinks, ch)
		f.wg.Add(1)
		go f.drain(w, ch)
	}
	return f
}

// drain writes every chunk that arrives on ch to w until ch is closed. After
// the first error anywhere it only returns chunks to the free list.
func (f *fanout) drain(w io.Writer, ch chan *chunk) {
	defer f.wg.Done()
	for c := range ch {
		if !f.failed.Load() {
			if _, err := w.Write(c.buf); err != nil {
				f.fail(err)
			}
		}
		if c.refs.Add(-1) == 0 {
			c.buf = c.buf[:0]
			f.free <- c
		}
	}
}

// fail records the first error; later writes return it.
func (f *fanout) fail(err error) {
	f.mu.Lock()
	if f.err == nil {
		f.err = err
	}
	f.mu.Unlock()
	f.failed.Store(true)
}

func (f *fanout) firstErr() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

// Write copies p into chunks and passes each full chunk to the sinks.
func (f *fanout) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		if f.failed.Load() {
			return n, f.firstErr()
		}
		if f.cur == nil {
			f.cur = <-f.free
		}
		k := copy(f.cur.buf[len(f.cur.buf):cap(f.cur.buf)], p)
		f.cur.buf = f.cur.buf[:len(f.cur.buf)+k]
		n += k
		p = p[k:]
		if len(f.cur.buf) == cap(f.cur.buf) {
			f.dispatch()
		}
	}
	return n, nil
}

func (f *fanout) dispatch() {
	c := f.cur
	f.cur = nil
	c.refs.Store(int32(len(f.sinks)))
	for _, ch := range f.sinks {
		ch <- c
	}
}

// Close sends the last partial chunk, waits for every sink to finish and
// returns the first error any of them met.
func (f *fanout) Close() error {
	if f.cur != nil && len(f.cur.buf) > 0 && !f.failed.Load() {
		f.dispatch()
	}
	for _, ch := range f.sinks {
		close(ch)
	}
	f.wg.Wait()
	return f.firstErr()
}

// abort stops the pipeline after an error on the producing side.
func (f *fanout) abort(err error) {
	f.fail(err)
	_ = f.Close()
}

// countWriter counts the bytes that pass through it.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// zstdProcs is how many goroutines compress one zstd stream. The encoder's
// streaming output does not depend on it (TestZstdOutputIndependentOfConcurrency
// holds it to that), so layers written on a one-core builder get the same
// digest as on a large one. Its job-based mode (WithConcurrentBlocks) is not
// used: its output changes with the concurrency, and on incompressible data
// it is several times slower.
var zstdProcs = func() int { return runtime.GOMAXPROCS(0) }

// newCompressor wraps w in the compressor c names.
func newCompressor(c Compression, w io.Writer) (io.WriteCloser, error) {
	switch c {
	case Zstd, "":
		enc, err := zstd.NewWriter(w,
			zstd.WithEncoderLevel(zstd.SpeedFastest),
			zstd.WithEncoderConcurrency(zstdProcs()))
		if err != nil {
			return nil, fmt.Errorf("start zstd encoder: %w", err)
		}
		return enc, nil
	case Gzip:
		gz, err := gzip.NewWriterLevel(w, gzip.BestSpeed)
		if err != nil {
			return nil, fmt.Errorf("start gzip encoder: %w", err)
		}
		return gz, nil
	case None:
		return nopWriteCloser{w}, nil
	}
	return nil, fmt.Errorf("compression %q: %w", string(c), ErrUnknownCompression)
}

// output is the consuming half of a layer write: the tar stream goes in
// through Write, is hashed (DiffID) and, concurrently, compressed, hashed
// again (Digest), counted and written to the destination.
type output struct {
	fan         *fanout
	comp        io.WriteCloser
	diffID      hash.Hash
	digest      hash.Hash // nil when uncompressed: Digest is DiffID
	count       *countWriter
	compression Compression
}

func newOutput(w io.Writer, c Compression) (*output, error) {
	o := &output{diffID: sha256.New(), compression: c}
	if c == None {
		o.count = &countWriter{w: w}
		o.comp = nopWriteCloser{o.count}
	} else {
		o.digest = sha256.New()
		o.count = &countWriter{w: io.MultiWriter(o.digest, w)}
		comp, err := newCompressor(c, o.count)
		if err != nil {
			return nil, err
		}
		o.comp = comp
	}
	o.fan = newFanout(o.diffID, o.comp)
	return o, nil
}

func (o *output) Write(p []byte) (int, error) { return o.fan.Write(p) }

// abort stops the goroutines after a failure; the output is unusable.
func (o *output) abort(err error) {
	o.fan.abort(err)
	_ = o.comp.Close()
}

// finish flushes everything and fills in the digests, size and media type.
func (o *output) finish(r *Result) error {
	if err := o.fan.Close(); err != nil {
		_ = o.comp.Close()
		return fmt.Errorf("write layer: %w", err)
	}
	if err := o.comp.Close(); err != nil {
		return fmt.Errorf("finish layer compression: %w", err)
	}
	mt, err := o.compression.MediaType()
	if err != nil {
		return err
	}
	r.DiffID = sha256Hash(o.diffID)
	r.Digest = r.DiffID
	if o.digest != nil {
		r.Digest = sha256Hash(o.digest)
	}
	r.Size = o.count.n
	r.MediaType = mt
	return nil
}

func sha256Hash(h hash.Hash) v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}
}
