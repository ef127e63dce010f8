package layer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"

	"golang.org/x/sys/unix"
)

// overlayOpaqueXattr is the mark overlayfs reads on an opaque directory of
// a mount made by root.
const overlayOpaqueXattr = "trusted.overlay.opaque"

// ApplyOverlayLower unpacks the uncompressed layer tar r into the empty
// directory dir in the form overlayfs reads a lower layer in, so that dir,
// stacked over the lowers of the layers below it (MountOverlay), shows what
// Apply of this layer over those layers would, and returns the number of
// bytes of file content written. It needs root.
//
// Entries are unpacked and names resolved exactly as Apply does, and refused
// where Apply refuses them (ErrUnsafePath). Whiteouts are not deletions here
// but marks for the layers below: ".wh.NAME" becomes a character device 0/0
// at NAME, and ".wh..wh..opq" sets the xattr trusted.overlay.opaque=y on its
// directory. As in Apply, a whiteout never hides an entry of the same layer;
// a path the layer whites out and then puts a directory at or below, in that
// order, becomes an opaque directory, as that directory is new in Apply too.
//
// Some layers have no overlay form, and differ: overlayfs ignores an opaque
// mark on the root, so ".wh..wh..opq" at the root fails with
// ErrOpaqueRoot; a character device 0/0 in the layer reads as a whiteout;
// a directory the layer does not list but that must hold a whiteout or an
// opaque mark shows with mode 0755, owned by root, in place of any below
// (and even if there is none below); and names are resolved through this
// layer's symbolic links only, not those of the layers below.
func ApplyOverlayLower(ctx context.Context, dir string, r io.Reader) (int64, error) {
	return apply(ctx, dir, r, &overlayLower{hidden: make(map[string]bool), opaques: make(map[string]bool)})
}

// overlayLower is the whiteout state of one ApplyOverlayLower, kept until
// the whole layer is in place.
type overlayLower struct {
	hidden      map[string]bool // whited-out paths not since written by the layer
	hiddenOrder []string
	opaques     map[string]bool // directories to mark opaque
	opaqueOrder []string
}

// hide records a whiteout of p, which the layer has not written.
func (o *overlayLower) hide(p string) {
	if !o.hidden[p] {
		o.hidden[p] = true
		o.hiddenOrder = append(o.hiddenOrder, p)
	}
}

// opaque records an opaque whiteout of directory dir ("" for the root).
func (o *overlayLower) opaque(dir string) error {
	if dir == "" {
		return ErrOpaqueRoot
	}
	if !o.opaques[dir] {
		o.opaques[dir] = true
		o.opaqueOrder = append(o.opaqueOrder, dir)
	}
	return nil
}

// written notes that the layer put an entry at p, a directory if dir. If p
// was whited out before, its device is not needed (the entry hides the
// layers below), and a directory there must hide their contents as well.
func (o *overlayLower) written(p string, dir bool) {
	if !o.hidden[p] {
		return
	}
	delete(o.hidden, p)
	if dir {
		_ = o.opaque(p) // p is never the root
	}
}

// checkEmpty fails unless the root holds nothing.
func (a *applier) checkEmpty() error {
	names, f, err := readDirAt(a.root.fd, ".", false)
	if err != nil {
		return err
	}
	f.Close()
	if len(names) > 0 {
		return fmt.Errorf("overlay lower is not empty (%d entries)", len(names))
	}
	return nil
}

// finishOverlay makes the whiteout devices and opaque marks recorded.
func (a *applier) finishOverlay() error {
	for _, p := range a.overlay.hiddenOrder {
		if !a.overlay.hidden[p] {
			continue
		}
		if err := a.whiteoutDevice(p); err != nil {
			return fmt.Errorf("whiteout %s: %w", p, err)
		}
	}
	for _, d := range a.overlay.opaqueOrder {
		if err := a.markOpaque(d); err != nil {
			return fmt.Errorf("mark %s opaque: %w", d, err)
		}
	}
	return nil
}

// openOverlayParent opens the parent directory of p, making missing ones;
// ok is false when a non-directory of the layer is in the way, which hides
// everything below it already.
func (a *applier) openOverlayParent(p string) (fd int, ok bool, err error) {
	parent := path.Dir(p)
	if parent == "." {
		parent = ""
	}
	fd, err = a.root.openDir(parent, true)
	if errors.Is(err, unix.ENOTDIR) {
		return -1, false, nil
	}
	if err != nil {
		return -1, false, err
	}
	return fd, true, nil
}

// whiteoutDevice makes the character device 0/0 that hides p, unless the
// layer already has something there.
func (a *applier) whiteoutDevice(p string) error {
	pfd, ok, err := a.openOverlayParent(p)
	if !ok {
		return err
	}
	defer unix.Close(pfd)
	err = unix.Mknodat(pfd, path.Base(p), unix.S_IFCHR, 0)
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("create device: %w", err)
	}
	return nil
}

// markOpaque sets the opaque mark on directory d, making it if it is
// missing; a non-directory there is left alone (it hides what is below).
func (a *applier) markOpaque(d string) error {
	pfd, ok, err := a.openOverlayParent(d)
	if !ok {
		return err
	}
	defer unix.Close(pfd)
	base := path.Base(d)
	open := func() (int, error) {
		return unix.Openat(pfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	}
	fd, err := open()
	if errors.Is(err, unix.ENOENT) {
		if err := unix.Mkdirat(pfd, base, 0o755); err != nil {
			return fmt.Errorf("create directory: %w", err)
		}
		fd, err = open()
	}
	if errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Fsetxattr(fd, overlayOpaqueXattr, []byte("y"), 0); err != nil {
		return fmt.Errorf("set %s: %w", overlayOpaqueXattr, err)
	}
	return nil
}
