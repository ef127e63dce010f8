package media

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// tarEpoch is every entry's modification time, so equal trees give equal
// tars.
var tarEpoch = time.Unix(0, 0).UTC()

// writeTar writes the tree under dir to out as a tar: directories first
// in lexical order, modes kept, owners root.
func writeTar(ctx context.Context, dir, out string, progress func(done, total int64)) error {
	total, err := treeBytes(dir)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(out, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	var done int64
	buf := make([]byte, 1<<20)
	err = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		h := &tar.Header{Name: rel, Mode: int64(info.Mode().Perm()), ModTime: tarEpoch, Format: tar.FormatPAX}
		if d.IsDir() {
			h.Typeflag, h.Name = tar.TypeDir, rel+"/"
			return tw.WriteHeader(h)
		}
		h.Typeflag, h.Size = tar.TypeReg, info.Size()
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		src, err := os.Open(p)
		if err != nil {
			return err
		}
		defer src.Close()
		return copyIn(ctx, tw, io.LimitReader(src, info.Size()), buf, func(n int64) {
			done += n
			progress(done, total)
		})
	})
	if err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return f.Close()
}

// treeBytes is the size of all files under dir.
func treeBytes(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		n += info.Size()
		return nil
	})
	return n, err
}
