package layer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// opaqueXattrs mark an opaque overlay directory: trusted.* for mounts made
// by root, user.* for unprivileged ("userxattr") mounts.
var opaqueXattrs = []string{overlayOpaqueXattr, "user.overlay.opaque"}

// DiffOverlayUpper writes the upper directory of an overlay mount as a
// layer: everything in it is a change. Overlay whiteouts (character devices
// 0/0) become ".wh.NAME" entries, and an opaque directory (xattr
// trusted.overlay.opaque or user.overlay.opaque = "y") is written with a
// ".wh..wh..opq" entry. Ownership is kept as it is on disk. The mount should
// have been made by MountOverlay (no metacopy or redirected directories);
// reading upper while it is mounted is allowed but races with writers.
func DiffOverlayUpper(ctx context.Context, w io.Writer, upperDir string, opts Options) (Result, error) {
	var items []item
	err := filepath.WalkDir(upperDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(upperDir, p)
		if err != nil {
			return err
		}
		dest := CleanPath(rel)
		if d.Type()&fs.ModeCharDevice != 0 {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			if statOf(fi).rdev == 0 {
				items = append(items, item{dest: whiteoutPath(dest), kind: kindWhiteout})
				return nil
			}
		}
		if d.IsDir() {
			opaque, err := isOpaque(p)
			if err != nil {
				return err
			}
			if opaque {
				items = append(items, item{dest: CleanPath(path.Join(dest, WhiteoutOpaque)), kind: kindWhiteout})
			}
		}
		if dest != "" {
			items = append(items, item{dest: dest, src: p, kind: kindHost})
		}
		return nil
	})
	if err != nil {
		return Result{}, fmt.Errorf("diff overlay upper %s: %w", upperDir, err)
	}
	res, err := writeItems(ctx, w, items, opts, true)
	if err != nil {
		return Result{}, fmt.Errorf("diff overlay upper %s: %w", upperDir, err)
	}
	return res, nil
}

// isOpaque reports whether the directory p carries overlayfs's opaque mark.
func isOpaque(p string) (bool, error) {
	buf := make([]byte, 8)
	for _, name := range opaqueXattrs {
		n, err := unix.Lgetxattr(p, name, buf)
		if errors.Is(err, unix.ENODATA) || errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.ERANGE) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("read %s of %s: %w", name, p, err)
		}
		if n == 1 && buf[0] == 'y' {
			return true, nil
		}
	}
	return false, nil
}
