package importer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// DefaultNamespace is the containerd namespace the kubelet's CRI uses.
const DefaultNamespace = "k8s.io"

// leaseExpiry bounds how long an import's lease outlives a crashed
// importer; a finished import deletes it at once.
const leaseExpiry = time.Hour

// connectTimeout bounds the first call that checks containerd answers.
const connectTimeout = 10 * time.Second

// Sentinel errors, matched with errors.Is.
var (
	// ErrConnect: containerd does not answer on the socket.
	ErrConnect = errors.New("cannot reach containerd")
	// ErrInvalidLayout: the OCI layout is malformed or lacks a blob.
	ErrInvalidLayout = errors.New("invalid OCI layout")
	// ErrDigestMismatch: a blob's bytes do not match its digest or size.
	ErrDigestMismatch = errors.New("blob does not match its digest")
	// ErrNoPlatform: an image has no manifest for the wanted platform.
	ErrNoPlatform = errors.New("no manifest for the platform")
)

// Options configure Import.
type Options struct {
	// Address is containerd's gRPC socket (e.g. /run/containerd/containerd.sock).
	Address string
	// Namespace is the containerd namespace; default DefaultNamespace.
	Namespace string
	// Platform picks an index's manifest; default the host's platform.
	Platform v1.Platform
	// Unpack unpacks each image into the snapshotter for Platform.
	Unpack bool
	// Snapshotter is the snapshotter to unpack into; default containerd's
	// (the namespace's default, else overlayfs).
	Snapshotter string
	// Log receives progress; default discards.
	Log *slog.Logger
}

// Imported is an image whose record now points at its layout digest.
type Imported struct {
	// Name is the image's full reference, e.g. docker.io/library/nginx:1.25.
	Name string
	// Digest is the manifest or index digest from the layout (the upstream
	// digest), the image record's target.
	Digest v1.Hash
}

// Import puts every named image of the OCI layout at layoutDir into
// containerd: the blobs Options.Platform needs go into the content store
// (verified by containerd against their digests, labelled so its garbage
// collector keeps them), then the image record name → digest is created
// or updated, then, with Unpack, the image is unpacked. Entries of
// index.json without the io.containerd.image.name annotation are skipped.
//
// One image failing does not stop the others: Import returns the images
// it imported together with an error joining each failure, each naming
// the image (and the blob, for a bad blob). Errors match ErrConnect,
// ErrInvalidLayout, ErrDigestMismatch and ErrNoPlatform with errors.Is.
func Import(ctx context.Context, layoutDir string, o Options) ([]Imported, error) {
	o = o.withDefaults()
	log := o.Log.With("layout", layoutDir)
	entries, unnamed, err := readIndex(layoutDir)
	if err != nil {
		return nil, err
	}
	if unnamed > 0 {
		log.Debug("skipping unnamed index entries", "count", unnamed)
	}
	want := platforms.Normalize(ocispec.Platform{
		OS: o.Platform.OS, Architecture: o.Platform.Architecture, Variant: o.Platform.Variant,
		OSVersion: o.Platform.OSVersion, OSFeatures: o.Platform.OSFeatures,
	})
	match := platforms.Only(want)

	c, err := connect(ctx, o.Address, o.Namespace)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	ctx = namespaces.WithNamespace(ctx, o.Namespace)

	lm := c.LeasesService()
	lease, err := lm.Create(ctx, leases.WithRandomID(), leases.WithExpiration(leaseExpiry),
		leases.WithLabel("drove.io/import", layoutDir))
	if err != nil {
		return nil, fmt.Errorf("create a containerd lease for the import: %w", err)
	}
	defer func() {
		if err := lm.Delete(context.WithoutCancel(ctx), lease); err != nil {
			log.Warn("delete import lease", "lease", lease.ID, "error", err)
		}
	}()
	ctx = leases.WithLease(ctx, lease.ID)

	im := &importer{
		c:     c,
		in:    &ingester{dir: layoutDir, cs: c.ContentStore(), leases: lm, lease: lease},
		match: match,
		want:  want,
		opts:  o,
		log:   log,
	}
	var (
		done []Imported
		errs []error
	)
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			errs = append(errs, fmt.Errorf("image %s: %w", e.Name, err))
			continue
		}
		if err := im.image(ctx, e); err != nil {
			log.Warn("image not imported", "image", e.Name, "error", err)
			errs = append(errs, fmt.Errorf("image %s: %w", e.Name, err))
			continue
		}
		h, err := v1.NewHash(e.Desc.Digest.String())
		if err != nil {
			return done, fmt.Errorf("image %s: digest %s: %w", e.Name, e.Desc.Digest, err)
		}
		done = append(done, Imported{Name: e.Name, Digest: h})
	}
	if len(errs) > 0 {
		return done, fmt.Errorf("import %d of %d images from %s into containerd at %s failed: %w",
			len(errs), len(entries), layoutDir, o.Address, errors.Join(errs...))
	}
	return done, nil
}

// withDefaults fills the zero fields of o.
func (o Options) withDefaults() Options {
	if o.Namespace == "" {
		o.Namespace = DefaultNamespace
	}
	if o.Platform.OS == "" && o.Platform.Architecture == "" {
		host := platforms.DefaultSpec()
		o.Platform = v1.Platform{OS: host.OS, Architecture: host.Architecture, Variant: host.Variant, OSVersion: host.OSVersion}
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return o
}

// connect opens a client to containerd at address and checks it answers.
func connect(ctx context.Context, address, ns string) (*client.Client, error) {
	hint := "is containerd running? set its socket with --containerd-address"
	if address == "" {
		return nil, fmt.Errorf("%w: no containerd socket given (%s)", ErrConnect, hint)
	}
	// containerd's dialer waits for a missing socket until its timeout;
	// a missing socket is a clear error at once.
	if _, err := os.Stat(address); err != nil {
		return nil, fmt.Errorf("%w at %s: %w (%s)", ErrConnect, address, err, hint)
	}
	c, err := client.New(address, client.WithDefaultNamespace(ns), client.WithTimeout(connectTimeout))
	if err != nil {
		return nil, fmt.Errorf("%w at %s: %w (%s)", ErrConnect, address, err, hint)
	}
	vctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	if _, err := c.Version(vctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("%w at %s: %w (%s)", ErrConnect, address, err, hint)
	}
	return c, nil
}

// importer imports the images of one layout over one connection.
type importer struct {
	c     *client.Client
	in    *ingester
	match platforms.MatchComparer
	want  ocispec.Platform
	opts  Options
	log   *slog.Logger
}

// image imports one image: blobs, record, then unpack.
func (im *importer) image(ctx context.Context, e entry) error {
	start := time.Now()
	p, err := planImage(im.in.dir, e.Desc, im.match)
	if err != nil {
		return fmt.Errorf("for %s: %w", platforms.Format(im.want), err)
	}
	if !im.match.Match(p.Platform) {
		im.log.Warn("image is for another platform", "image", e.Name, "platform", platforms.Format(p.Platform), "want", platforms.Format(im.want))
	}
	var written, present int
	for _, b := range p.Blobs {
		wrote, err := im.in.ingest(ctx, b)
		if err != nil {
			return err
		}
		if wrote {
			written++
		} else {
			present++
		}
	}
	img := images.Image{Name: e.Name, Target: e.Desc}
	if err := im.record(ctx, img); err != nil {
		return err
	}
	unpacked := false
	if im.opts.Unpack {
		if unpacked, err = im.unpack(ctx, img); err != nil {
			return err
		}
	}
	im.log.Info("image imported", "image", e.Name, "digest", e.Desc.Digest.String(),
		"blobs_written", written, "blobs_present", present, "unpacked", unpacked, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// record creates the image record, or points an existing one at img's
// target; an unchanged record is left alone.
func (im *importer) record(ctx context.Context, img images.Image) error {
	is := im.c.ImageService()
	cur, err := is.Get(ctx, img.Name)
	switch {
	case errdefs.IsNotFound(err):
		_, err := is.Create(ctx, img)
		if err == nil {
			return nil
		}
		if !errdefs.IsAlreadyExists(err) {
			return fmt.Errorf("create image record: %w", err)
		}
		// Created meanwhile by someone else: update it below.
	case err != nil:
		return fmt.Errorf("look up image record: %w", err)
	case cur.Target.Digest == img.Target.Digest && cur.Target.MediaType == img.Target.MediaType && cur.Target.Size == img.Target.Size:
		return nil
	}
	if _, err := is.Update(ctx, img, "target"); err != nil {
		return fmt.Errorf("update image record to %s: %w", img.Target.Digest, err)
	}
	return nil
}

// unpack unpacks img for the wanted platform unless its snapshot chain
// already exists; it reports whether it had to unpack.
func (im *importer) unpack(ctx context.Context, img images.Image) (bool, error) {
	ci := client.NewImageWithPlatform(im.c, img, im.match)
	sn := im.opts.Snapshotter
	shown := sn
	if shown == "" {
		shown = "(containerd's default)"
	}
	ok, err := ci.IsUnpacked(ctx, sn)
	if err != nil {
		return false, fmt.Errorf("check whether it is unpacked in snapshotter %s: %w", shown, err)
	}
	if ok {
		return false, nil
	}
	if err := ci.Unpack(ctx, sn); err != nil {
		return false, fmt.Errorf("unpack into snapshotter %s for %s: %w", shown, platforms.Format(im.want), err)
	}
	return true, nil
}
