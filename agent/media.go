package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/drove-project/drove/imagecache/ocilayout"
	"github.com/drove-project/drove/layers/store"
	"github.com/drove-project/drove/protocol"
)

// Media seeding: a node installed from USB or ISO media finds the cluster
// image on them as an OCI image layout (`drove save`, untarred). The agent
// copies every blob the layout's index.json reaches into its store,
// verifying each against its digest while it is written; from then on the
// swarm serves those blobs like any others the store holds (a session
// serves every blob of a distribution that is whole in the store), and
// `drove distribute IMAGE --seed-node NODE` can name the node as a seed.
// A blob that does not hash to its name is refused and named; the rest are
// still imported, so the swarm has to deliver only what the media lacked.

// ErrMediaLayout: the media directory is not an OCI image layout drove can
// read (no oci-layout file, or a missing or invalid index.json).
var ErrMediaLayout = errors.New("media is not a readable OCI image layout")

// MediaOptions tune ImportMedia.
type MediaOptions struct {
	// Log receives progress and refusals (nil: discarded).
	Log *slog.Logger
	// ProgressEvery spaces the progress lines while blobs are copied
	// (0: DefaultMediaProgress).
	ProgressEvery time.Duration
}

// DefaultMediaProgress is how often a media import logs its progress.
const DefaultMediaProgress = 10 * time.Second

// MediaRefusal is one blob of the media that was not imported.
type MediaRefusal struct {
	Digest v1.Hash
	Path   string // the blob's file on the media
	Err    error  // what is wrong with it (wraps store.ErrDigestMismatch for tampered content)
}

// MediaReport is what ImportMedia did.
type MediaReport struct {
	Dir      string
	Blobs    int            // distinct blobs the layout's index reaches (as far as verified manifests tell)
	Present  int            // of them, already in the store
	Imported int            // of them, copied into the store now
	Bytes    int64          // copied now
	Refused  []MediaRefusal // not imported: missing, unreadable or not matching their digest
	Named    []string       // index entries tagged in the store (full names)
	Unnamed  []string       // index entries not tagged: incomplete, or without a usable name (reasons logged)
}

// ImportMedia copies the OCI image layout at dir into st: every blob that
// dir/index.json reaches (manifests, indexes, configs, layers) is written
// with store.WriteBlob against its digest, so content that does not match
// is never stored. Blobs already in st are skipped without reading them,
// which makes a second import of the same media cheap. Each index entry
// whose blobs are all present afterwards is tagged in st under its name
// (io.containerd.image.name, else org.opencontainers.image.ref.name when it
// is a full reference).
//
// A refused blob does not stop the import: it is logged at error level
// with its digest and path and listed in the report, and only the entries
// that need it stay unnamed. ImportMedia fails (with ErrMediaLayout) when
// dir is not a layout, and when the store cannot be written or ctx ends;
// blobs imported until then stay.
func ImportMedia(ctx context.Context, dir string, st *store.Store, opts MediaOptions) (MediaReport, error) {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.ProgressEvery <= 0 {
		opts.ProgressEvery = DefaultMediaProgress
	}
	m := &mediaImport{dir: dir, st: st, opts: opts, log: opts.Log.With("media", dir),
		rep: MediaReport{Dir: dir}, state: map[v1.Hash]blobFate{}}
	if _, err := os.Stat(filepath.Join(dir, "oci-layout")); err != nil {
		return m.rep, fmt.Errorf("import media %s: %w: %w", dir, ErrMediaLayout, err)
	}
	idx, err := ocilayout.ReadIndex(dir)
	if err != nil {
		return m.rep, fmt.Errorf("import media %s: %w: %w", dir, ErrMediaLayout, err)
	}
	// Manifests first: they are small, and only a verified manifest says
	// which configs and layers an entry needs.
	var leaves []v1.Descriptor
	for _, d := range idx.Manifests {
		if err := m.walk(ctx, d, &leaves); err != nil {
			return m.rep, err
		}
	}
	var total int64
	for _, d := range leaves {
		total += d.Size
	}
	m.log.Info("importing media", "blobs", m.rep.Blobs, "bytes", total)
	stop := m.reportProgress(total)
	for _, d := range leaves {
		if _, err := m.blob(ctx, d); err != nil {
			stop()
			return m.rep, err
		}
	}
	stop()
	for _, d := range idx.Manifests {
		m.name(d)
	}
	m.log.Info("media imported", "blobs", m.rep.Blobs, "present", m.rep.Present, "imported", m.rep.Imported,
		"bytes", m.rep.Bytes, "refused", len(m.rep.Refused), "named", m.rep.Named)
	return m.rep, nil
}

// blobFate is what became of one blob in this import.
type blobFate int

const (
	fateQueued  blobFate = iota // a leaf waiting for the second pass
	fateStored                  // in the store (found there or imported)
	fateRefused                 // refused
)

// mediaImport is one ImportMedia.
type mediaImport struct {
	dir   string
	st    *store.Store
	opts  MediaOptions
	log   *slog.Logger
	rep   MediaReport
	state map[v1.Hash]blobFate
	done  atomic.Int64 // bytes copied, for progress
}

// walk imports manifest d (an index or image manifest) and what its
// verified content references: further manifests at once, configs and
// layers queued in leaves. Anything else is queued as a leaf.
func (m *mediaImport) walk(ctx context.Context, d v1.Descriptor, leaves *[]v1.Descriptor) error {
	if !d.MediaType.IsIndex() && !d.MediaType.IsImage() {
		m.queue(d, leaves)
		return nil
	}
	if _, seen := m.state[d.Digest]; seen {
		return nil
	}
	ok, err := m.blob(ctx, d)
	if err != nil || !ok {
		return err
	}
	b, err := m.st.ReadBlob(d.Digest)
	if err != nil {
		return fmt.Errorf("import media %s: read manifest %s back: %w", m.dir, d.Digest, err)
	}
	children, err := manifestChildren(d, b)
	if err != nil {
		// Verified, so this is what the image's author wrote: an entry
		// drove cannot use, not a damaged medium.
		m.log.Error("media manifest is not valid; its blobs are not imported", "digest", d.Digest,
			"path", m.path(d.Digest), "err", err)
		return nil
	}
	for _, c := range children {
		if err := m.walk(ctx, c, leaves); err != nil {
			return err
		}
	}
	return nil
}

// queue adds a config or layer to the second pass, once.
func (m *mediaImport) queue(d v1.Descriptor, leaves *[]v1.Descriptor) {
	if _, seen := m.state[d.Digest]; seen {
		return
	}
	m.state[d.Digest] = fateQueued
	m.rep.Blobs++
	*leaves = append(*leaves, d)
}

// manifestChildren returns the descriptors manifest d (content b) refers
// to: an index's manifests, or an image's config and layers. Every child
// has a sha256 digest and a size that is not negative.
func manifestChildren(d v1.Descriptor, b []byte) ([]v1.Descriptor, error) {
	var out []v1.Descriptor
	switch {
	case d.MediaType.IsIndex():
		im, err := v1.ParseIndexManifest(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("decode index %s: %w", d.Digest, err)
		}
		out = im.Manifests
	case d.MediaType.IsImage():
		man, err := v1.ParseManifest(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("decode manifest %s: %w", d.Digest, err)
		}
		out = append([]v1.Descriptor{man.Config}, man.Layers...)
	default:
		return nil, nil
	}
	for i, c := range out {
		if !protocol.ValidDigest(c.Digest.String()) {
			return nil, fmt.Errorf("manifest %s: descriptor %d: digest %q is not sha256:<64 hex>", d.Digest, i, c.Digest.String())
		}
		if c.Size < 0 {
			return nil, fmt.Errorf("manifest %s: descriptor %d (%s): negative size %d", d.Digest, i, c.Digest, c.Size)
		}
	}
	return out, nil
}

// path is where blob h lives on the media.
func (m *mediaImport) path(h v1.Hash) string {
	return filepath.Join(m.dir, "blobs", h.Algorithm, h.Hex)
}

// blob brings d into the store unless it is there already. ok is false
// when the blob was refused (recorded in the report); err only for
// failures of the store or ctx.
func (m *mediaImport) blob(ctx context.Context, d v1.Descriptor) (ok bool, err error) {
	switch fate, seen := m.state[d.Digest]; {
	case seen && fate != fateQueued:
		return fate == fateStored, nil
	case !seen:
		m.rep.Blobs++
	}
	if !protocol.ValidDigest(d.Digest.String()) {
		return m.refuse(d, fmt.Errorf("digest %q is not sha256:<64 hex>", d.Digest.String())), nil
	}
	if m.st.HasBlob(d.Digest) {
		m.state[d.Digest] = fateStored
		m.rep.Present++
		return true, nil
	}
	path := m.path(d.Digest)
	f, err := os.Open(path)
	if err != nil {
		return m.refuse(d, fmt.Errorf("open: %w", err)), nil
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return m.refuse(d, fmt.Errorf("stat: %w", err)), nil
	}
	if fi.Size() != d.Size {
		return m.refuse(d, fmt.Errorf("%d bytes, but its manifest says %d: %w", fi.Size(), d.Size, store.ErrDigestMismatch)), nil
	}
	_, n, err := m.st.WriteBlob(ctx, &countReader{r: f, n: &m.done}, d.Digest)
	switch {
	case errors.Is(err, store.ErrDigestMismatch):
		return m.refuse(d, err), nil
	case err != nil && ctx.Err() != nil:
		return false, fmt.Errorf("import media %s: %w", m.dir, context.Cause(ctx))
	case err != nil && isReadError(err):
		return m.refuse(d, err), nil
	case err != nil:
		return false, fmt.Errorf("import media %s: blob %s: %w", m.dir, d.Digest, err)
	}
	m.state[d.Digest] = fateStored
	m.rep.Imported++
	m.rep.Bytes += n
	return true, nil
}

// refuse records a blob that is not imported and logs it.
func (m *mediaImport) refuse(d v1.Descriptor, why error) bool {
	m.state[d.Digest] = fateRefused
	path := m.path(d.Digest)
	m.rep.Refused = append(m.rep.Refused, MediaRefusal{Digest: d.Digest, Path: path, Err: why})
	m.log.Error("media blob refused: not imported, the swarm must deliver it", "digest", d.Digest.String(),
		"path", path, "mediaType", string(d.MediaType), "err", why)
	return false
}

// name tags index entry d in the store when every blob it reaches is
// there.
func (m *mediaImport) name(d v1.Descriptor) {
	n := entryName(d.Annotations)
	if n == "" {
		m.log.Warn("media image has no full name in index.json (io.containerd.image.name or org.opencontainers.image.ref.name); "+
			"its blobs are imported but it is not named", "digest", d.Digest.String())
		m.rep.Unnamed = append(m.rep.Unnamed, d.Digest.String())
		return
	}
	if err := m.st.Tag(n, v1.Descriptor{MediaType: d.MediaType, Size: d.Size, Digest: d.Digest, Platform: d.Platform}); err != nil {
		level := slog.LevelError
		if store.IsNotFound(err) {
			level = slog.LevelWarn // a refused blob, already reported
		}
		m.log.Log(context.Background(), level, "media image not named: not all of its blobs are in the store", "image", n,
			"digest", d.Digest.String(), "err", err)
		m.rep.Unnamed = append(m.rep.Unnamed, n)
		return
	}
	m.rep.Named = append(m.rep.Named, n)
}

// entryName is the store name of an index.json entry: its
// io.containerd.image.name, else its org.opencontainers.image.ref.name,
// when that is a full reference with a tag (`drove save` writes both).
// Bare tags and digest references give "".
func entryName(ann map[string]string) string {
	for _, k := range []string{store.ImageNameAnnotation, store.RefNameAnnotation} {
		v := ann[k]
		if v == "" || !strings.ContainsAny(v, "/:") || strings.Contains(v, "@") {
			continue
		}
		n, err := store.NormalizeName(v)
		if err == nil && !strings.Contains(n, "@") {
			return n
		}
	}
	return ""
}

// reportProgress logs the bytes copied every ProgressEvery until the
// returned stop is called.
func (m *mediaImport) reportProgress(total int64) (stop func()) {
	done := make(chan struct{})
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		tick := time.NewTicker(m.opts.ProgressEvery)
		defer tick.Stop()
		start := time.Now()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				n := m.done.Load()
				m.log.Info("importing media", "copied", n, "of", total,
					"percent", percent(n, total), "MiBps", float64(n)/(1<<20)/time.Since(start).Seconds())
			}
		}
	}()
	return func() { close(done); <-ended }
}

func percent(n, total int64) int64 {
	if total <= 0 {
		return 100
	}
	return n * 100 / total
}

// countReader counts what is read through it and marks read failures, so
// that a medium that cannot be read refuses the blob instead of failing
// the import.
type countReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	if err != nil && err != io.EOF {
		err = mediaReadError{err}
	}
	return n, err
}

// mediaReadError is a failed read of the media (a scratched disc, a USB
// stick pulled out).
type mediaReadError struct{ err error }

func (e mediaReadError) Error() string { return "read media: " + e.err.Error() }
func (e mediaReadError) Unwrap() error { return e.err }

func isReadError(err error) bool {
	var re mediaReadError
	return errors.As(err, &re)
}
