package media

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/diskfs/go-diskfs/backend"
	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/iso9660"
)

// isoBlock is the ISO 9660 logical block size.
const isoBlock = 2048

// writeISO writes the tree under dir to out as ISO 9660 with Rock Ridge
// (modes, long names) and Joliet, labelled label. go-diskfs builds the
// image from the tree in place (its "workspace").
func writeISO(ctx context.Context, dir, out, label string, progress func(done, total int64)) error {
	total, err := treeBytes(dir)
	if err != nil {
		return err
	}
	// The file grows as the image is written; the size only has to hold
	// the system area.
	b, err := file.CreateFromPath(out, 64<<10)
	if err != nil {
		return err
	}
	defer b.Close()
	cb := &countingBackend{Storage: b, ctx: ctx, total: total, progress: progress}
	fsys, err := iso9660.Create(cb, 0, 0, isoBlock, dir)
	if err != nil {
		return fmt.Errorf("create ISO 9660: %w", err)
	}
	if err := fsys.Finalize(iso9660.FinalizeOptions{
		RockRidge: true, Joliet: true, VolumeIdentifier: label, PublisherIdentifier: "drove",
	}); err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		return fmt.Errorf("write ISO 9660: %w", err)
	}
	// Not fsys.Close: it removes the workspace, which Build owns.
	return b.Close()
}

// countingBackend reports bytes written through it and fails writes once
// ctx ends.
type countingBackend struct {
	backend.Storage
	ctx      context.Context
	done     atomic.Int64
	total    int64
	progress func(done, total int64)
}

func (c *countingBackend) Writable() (backend.WritableFile, error) {
	w, err := c.Storage.Writable()
	if err != nil {
		return nil, err
	}
	return countingFile{WritableFile: w, c: c}, nil
}

type countingFile struct {
	backend.WritableFile
	c *countingBackend
}

func (f countingFile) WriteAt(p []byte, off int64) (int, error) {
	if err := f.c.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := f.WritableFile.WriteAt(p, off)
	done := f.c.done.Add(int64(n))
	total := f.c.total
	if done > total {
		total = done
	}
	f.c.progress(done, total)
	return n, err
}

// openISO opens an ISO 9660 image for reading, Rock Ridge names included.
func openISO(path string, size int64) (*iso9660.FileSystem, func() error, error) {
	b, err := file.OpenFromPath(path, true)
	if err != nil {
		return nil, nil, err
	}
	fsys, err := iso9660.Read(b, size, 0, isoBlock)
	if err != nil {
		b.Close()
		return nil, nil, fmt.Errorf("read ISO 9660: %w", err)
	}
	return fsys, b.Close, nil
}
