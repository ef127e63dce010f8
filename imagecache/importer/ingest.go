package importer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/errdefs"
)

// ingestRefPrefix starts the containerd ingest reference of every blob
// this package writes ("drove-import-sha256:…"), so `ctr content active`
// shows whose writes are in progress.
const ingestRefPrefix = "drove-import-"

// ingester puts blobs from a layout into containerd's content store.
type ingester struct {
	dir    string
	cs     content.Store
	leases leases.Manager
	lease  leases.Lease
}

// ingest makes b present in the content store with its labels and
// reports whether its bytes had to be written. Content already present
// is not read from the layout again: containerd verified it when it was
// written. New content is verified by containerd against b's digest and
// size on commit; a mismatch is ErrDigestMismatch.
func (in *ingester) ingest(ctx context.Context, b blob) (bool, error) {
	info, err := in.cs.Info(ctx, b.Desc.Digest)
	if err == nil {
		// Present but perhaps unreferenced: hold it in the import's lease
		// so a collection before the image record exists keeps it.
		res := leases.Resource{ID: b.Desc.Digest.String(), Type: "content"}
		if err := in.leases.AddResource(ctx, in.lease, res); err != nil {
			return false, fmt.Errorf("add %s to lease %s: %w", b.Desc.Digest, in.lease.ID, err)
		}
		return false, in.ensureLabels(ctx, info, b.Labels)
	}
	if !errdefs.IsNotFound(err) {
		return false, fmt.Errorf("look up %s in the content store: %w", b.Desc.Digest, err)
	}
	r, closeFn, err := in.open(b)
	if err != nil {
		return false, err
	}
	defer closeFn()
	ref := ingestRefPrefix + b.Desc.Digest.String()
	if err := content.WriteBlob(ctx, in.cs, ref, r, b.Desc, content.WithLabels(b.Labels)); err != nil {
		// A failed ingest keeps its bytes under ref, and the next write
		// would resume from them: drop it so a fixed layout imports.
		if aerr := in.cs.Abort(context.WithoutCancel(ctx), ref); aerr != nil && !errdefs.IsNotFound(aerr) {
			err = errors.Join(err, fmt.Errorf("abort ingest %s: %w", ref, aerr))
		}
		if errdefs.IsFailedPrecondition(err) || errors.Is(err, io.ErrUnexpectedEOF) {
			return false, fmt.Errorf("%w: %s %s (%s): %w", ErrDigestMismatch, kind(b.Desc.MediaType), b.Desc.Digest, blobPath(in.dir, b.Desc.Digest), err)
		}
		return false, fmt.Errorf("write %s %s (%s) to containerd: %w", kind(b.Desc.MediaType), b.Desc.Digest, blobPath(in.dir, b.Desc.Digest), err)
	}
	if len(b.Labels) == 0 {
		return true, nil
	}
	// Another writer may have committed the same blob first, without
	// these labels; WriteBlob then reports success without applying them.
	info, err = in.cs.Info(ctx, b.Desc.Digest)
	if err != nil {
		return true, fmt.Errorf("look up %s after writing it: %w", b.Desc.Digest, err)
	}
	return true, in.ensureLabels(ctx, info, b.Labels)
}

// open returns a reader of b's bytes: its verified data, or the layout
// file for a layer.
func (in *ingester) open(b blob) (io.Reader, func(), error) {
	if b.Data != nil {
		return bytes.NewReader(b.Data), func() {}, nil
	}
	path := blobPath(in.dir, b.Desc.Digest)
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, fmt.Errorf("%s %s: %w: %s", kind(b.Desc.MediaType), b.Desc.Digest, errBlobMissing, path)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("open blob: %w", err)
	}
	return f, func() { f.Close() }, nil
}

// ensureLabels sets the labels of want that info lacks or has otherwise.
func (in *ingester) ensureLabels(ctx context.Context, info content.Info, want map[string]string) error {
	update := content.Info{Digest: info.Digest, Labels: map[string]string{}}
	var fields []string
	for k, v := range want {
		if info.Labels[k] != v {
			update.Labels[k] = v
			fields = append(fields, "labels."+k)
		}
	}
	if len(fields) == 0 {
		return nil
	}
	if _, err := in.cs.Update(ctx, update, fields...); err != nil {
		return fmt.Errorf("label %s with its children: %w", info.Digest, err)
	}
	return nil
}
