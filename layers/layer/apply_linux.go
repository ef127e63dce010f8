package layer

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Apply unpacks the uncompressed layer tar r over the directory dir and
// returns the number of bytes of file content written.
//
// Entries replace what dir holds at their path (a directory entry over an
// existing directory merges into it; anything else first removes what is
// there, recursively). Whiteouts follow the OCI rules: ".wh.NAME" removes
// NAME, and ".wh..wh..opq" empties its directory of everything that this
// layer did not itself put there, in whichever order the tar lists them;
// whiteouts never remove entries of the same layer.
//
// Paths are resolved inside dir as if it were the root: an entry whose name
// climbs out with ".." fails with ErrUnsafePath (an absolute name is taken
// as relative to dir), as does a hard link whose target does; symbolic
// links already in dir are followed only as parent directories, and then
// inside dir (a link "a -> /etc" makes "a/passwd" land in dir/etc/passwd),
// and the final component of a path is never followed.
//
// Regular files, directories, symbolic links, hard links (to files in dir)
// and fifos are created with their modes and mtimes; directory modes and
// mtimes are set after all their contents. Ownership is set only when
// running as root. Character and block devices are created only as root and
// are skipped otherwise, or when the kernel refuses (a user namespace).
// Sparse files and extended attributes are not supported: a sparse entry
// fails, attributes are ignored.
func Apply(ctx context.Context, dir string, r io.Reader) (int64, error) {
	return apply(ctx, dir, r, nil)
}

// apply is Apply, or ApplyOverlayLower when ov is not nil.
func apply(ctx context.Context, dir string, r io.Reader, ov *overlayLower) (int64, error) {
	root, err := openRoot(dir)
	if err != nil {
		return 0, fmt.Errorf("apply layer: %w", err)
	}
	defer root.close()
	buf := bufPool.Get().(*[]byte)
	defer bufPool.Put(buf)
	a := &applier{
		ctx:        ctx,
		root:       root,
		privileged: geteuid() == 0,
		written:    make(map[string]bool),
		below:      make(map[string]bool),
		dirs:       make(map[string]*tar.Header),
		buf:        *buf,
		overlay:    ov,
	}
	if ov != nil {
		if err := a.checkEmpty(); err != nil {
			return 0, fmt.Errorf("apply layer to %s: %w", dir, err)
		}
	}
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return a.size, err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return a.size, fmt.Errorf("read layer tar: %w", err)
		}
		if err := a.entry(hdr, tr); err != nil {
			return a.size, fmt.Errorf("apply layer entry %q to %s: %w", hdr.Name, dir, err)
		}
	}
	if ov != nil {
		// Before finishDirs, which sets the mtimes the whiteouts would change.
		if err := a.finishOverlay(); err != nil {
			return a.size, fmt.Errorf("apply layer to %s: %w", dir, err)
		}
	}
	if err := a.finishDirs(); err != nil {
		return a.size, fmt.Errorf("apply layer to %s: %w", dir, err)
	}
	return a.size, nil
}

// geteuid decides whether Apply sets ownership and makes devices; tests
// replace it to cover the unprivileged path when run as root.
var geteuid = os.Geteuid

// applier holds the state of one Apply.
type applier struct {
	ctx        context.Context
	root       *fsRoot
	privileged bool
	written    map[string]bool        // paths this layer created
	below      map[string]bool        // directories holding paths this layer created
	dirs       map[string]*tar.Header // directories whose metadata is set at the end
	dirOrder   []string               // their paths, in the order first listed
	buf        []byte
	size       int64
	overlay    *overlayLower // nil for Apply
}

// entryPath cleans a tar name into a path relative to the root ("" for the
// root itself), refusing names that climb above it.
func entryPath(name string) (string, error) {
	p := path.Clean(name)
	if p == ".." || strings.HasPrefix(p, "../") {
		return "", fmt.Errorf("%q: %w", name, ErrUnsafePath)
	}
	return CleanPath(p), nil
}

// markWritten records that this layer put an entry at p, a directory when
// dir is set, and so below each of p's parents.
func (a *applier) markWritten(p string, dir bool) {
	a.written[p] = true
	if a.overlay != nil {
		a.overlay.written(p, dir)
	}
	for d := path.Dir(p); d != "." && !a.below[d]; d = path.Dir(d) {
		a.below[d] = true
		if a.overlay != nil {
			a.overlay.written(d, true)
		}
	}
}

func (a *applier) entry(hdr *tar.Header, tr io.Reader) error {
	p, err := entryPath(hdr.Name)
	if err != nil {
		return err
	}
	if p == "" {
		return nil // the root's own metadata is left alone
	}
	parent, base := path.Dir(p), path.Base(p)
	if parent == "." {
		parent = ""
	}
	switch {
	case base == WhiteoutOpaque:
		return a.opaque(parent)
	case strings.HasPrefix(base, WhiteoutPrefix+WhiteoutPrefix):
		return nil // other AUFS metadata: not content
	case strings.HasPrefix(base, WhiteoutPrefix):
		name := strings.TrimPrefix(base, WhiteoutPrefix)
		if name == "" || name == "." || name == ".." {
			return fmt.Errorf("whiteout of %q: %w", name, ErrUnsafePath)
		}
		return a.whiteout(path.Join(parent, name))
	}
	if isSparse(hdr) {
		return errors.New("sparse files are not supported")
	}
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeDir, tar.TypeSymlink, tar.TypeLink, tar.TypeFifo:
	case tar.TypeChar, tar.TypeBlock:
		if !a.privileged {
			return nil
		}
	case tar.TypeXGlobalHeader:
		return nil
	default:
		return fmt.Errorf("unsupported tar entry type %q", hdr.Typeflag)
	}

	pfd, err := a.root.openDir(parent, true)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	st, err := lstatAt(pfd, base)
	exists := err == nil
	if exists && !(hdr.Typeflag == tar.TypeDir && st.Mode&unix.S_IFMT == unix.S_IFDIR) {
		if err := removeAllAt(pfd, base); err != nil {
			return err
		}
		exists = false
	}
	a.markWritten(p, hdr.Typeflag == tar.TypeDir)

	switch hdr.Typeflag {
	case tar.TypeDir:
		if !exists {
			if err := unix.Mkdirat(pfd, base, 0o700); err != nil {
				return fmt.Errorf("create directory: %w", err)
			}
		}
		if a.dirs[p] == nil {
			a.dirOrder = append(a.dirOrder, p)
		}
		a.dirs[p] = hdr
		return nil
	case tar.TypeReg:
		return a.regular(pfd, base, hdr, tr)
	case tar.TypeSymlink:
		if err := unix.Symlinkat(hdr.Linkname, pfd, base); err != nil {
			return fmt.Errorf("create symbolic link: %w", err)
		}
	case tar.TypeLink:
		return a.hardlink(pfd, base, hdr)
	case tar.TypeFifo, tar.TypeChar, tar.TypeBlock:
		mode := uint32(unix.S_IFIFO)
		if hdr.Typeflag == tar.TypeChar {
			mode = unix.S_IFCHR
		} else if hdr.Typeflag == tar.TypeBlock {
			mode = unix.S_IFBLK
		}
		dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
		if err := unix.Mknodat(pfd, base, mode|0o600, int(dev)); err != nil {
			if errors.Is(err, unix.EPERM) && mode != unix.S_IFIFO {
				return nil // devices cannot be made here (a user namespace)
			}
			return fmt.Errorf("create node: %w", err)
		}
		if err := a.chown(pfd, base, hdr); err != nil {
			return err
		}
		if err := unix.Fchmodat(pfd, base, uint32(hdr.Mode&0o7777), 0); err != nil {
			return fmt.Errorf("set mode: %w", err)
		}
	}
	if hdr.Typeflag == tar.TypeSymlink {
		if err := a.chown(pfd, base, hdr); err != nil {
			return err
		}
	}
	return setTimes(pfd, base, hdr.ModTime)
}

// regular writes a regular file's content, ownership, mode and mtime.
func (a *applier) regular(pfd int, base string, hdr *tar.Header, tr io.Reader) error {
	fd, err := unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("create file: %w", err)
	}
	f := os.NewFile(uintptr(fd), base)
	defer f.Close()
	for {
		if err := a.ctx.Err(); err != nil {
			return err
		}
		n, err := tr.Read(a.buf)
		if n > 0 {
			if _, werr := f.Write(a.buf[:n]); werr != nil {
				return fmt.Errorf("write file: %w", werr)
			}
			a.size += int64(n)
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read file content: %w", err)
		}
	}
	if a.privileged {
		if err := unix.Fchown(fd, hdr.Uid, hdr.Gid); err != nil {
			return fmt.Errorf("set owner: %w", err)
		}
	}
	if err := unix.Fchmod(fd, uint32(hdr.Mode&0o7777)); err != nil {
		return fmt.Errorf("set mode: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close file: %w", err)
	}
	return setTimes(pfd, base, hdr.ModTime)
}

// hardlink links base in pfd to the entry the header names, which must be
// inside the root.
func (a *applier) hardlink(pfd int, base string, hdr *tar.Header) error {
	target, err := entryPath(hdr.Linkname)
	if err != nil {
		return fmt.Errorf("hard link target: %w", err)
	}
	if target == "" {
		return fmt.Errorf("hard link to the root: %w", unix.EPERM)
	}
	tdir := path.Dir(target)
	if tdir == "." {
		tdir = ""
	}
	tfd, err := a.root.openDir(tdir, false)
	if err != nil {
		return fmt.Errorf("hard link target %q: %w", hdr.Linkname, err)
	}
	defer unix.Close(tfd)
	if err := unix.Linkat(tfd, path.Base(target), pfd, base, 0); err != nil {
		return fmt.Errorf("hard link to %q: %w", hdr.Linkname, err)
	}
	return nil
}

func (a *applier) chown(pfd int, base string, hdr *tar.Header) error {
	if !a.privileged {
		return nil
	}
	if err := unix.Fchownat(pfd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set owner: %w", err)
	}
	return nil
}

// setTimes sets the access and modification times of base to mtime, never
// following a symbolic link.
func setTimes(pfd int, base string, mtime time.Time) error {
	ts := unix.NsecToTimespec(mtime.UnixNano())
	if err := unix.UtimesNanoAt(pfd, base, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set mtime: %w", err)
	}
	return nil
}

// whiteout removes p, unless this layer itself put something at or below p.
// For an overlay lower it records p to be hidden instead.
func (a *applier) whiteout(p string) error {
	if a.written[p] || a.below[p] {
		return nil
	}
	if a.overlay != nil {
		a.overlay.hide(p)
		return nil
	}
	parent := path.Dir(p)
	if parent == "." {
		parent = ""
	}
	pfd, err := a.root.openDir(parent, false)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		return nil // nothing there to hide
	}
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	return removeAllAt(pfd, path.Base(p))
}

// opaque empties directory dir of everything this layer did not put there.
// For an overlay lower it records dir to be marked opaque instead.
func (a *applier) opaque(dir string) error {
	if a.overlay != nil {
		return a.overlay.opaque(dir)
	}
	if dir == "" {
		return a.prune("", unix.AT_FDCWD, "")
	}
	parent := path.Dir(dir)
	if parent == "." {
		parent = ""
	}
	pfd, err := a.root.openDir(parent, false)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		return nil
	}
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	return a.prune(dir, pfd, path.Base(dir))
}

// prune removes from the directory name in pfd (the root when dir is "")
// every entry not written by this layer, and recurses into directories that
// were.
func (a *applier) prune(dir string, pfd int, name string) error {
	var names []string
	var f *os.File
	var err error
	if dir == "" {
		names, f, err = readDirAt(a.root.fd, ".", false)
	} else {
		if st, serr := lstatAt(pfd, name); serr != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return nil // not a directory: nothing below it to hide
		}
		names, f, err = readDirAt(pfd, name, false)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	dfd := int(f.Fd())
	for _, n := range names {
		child := path.Join(dir, n)
		if !a.written[child] && !a.below[child] {
			if err := removeAllAt(dfd, n); err != nil {
				return err
			}
			continue
		}
		if err := a.prune(child, dfd, n); err != nil {
			return err
		}
	}
	return nil
}

// finishDirs sets the ownership, mode and mtime of the directories the layer
// listed (from its last header for each), once their contents are in place.
// It goes in reverse order, so children come before their parents and a
// parent made read-only does not block them.
func (a *applier) finishDirs() error {
	for i := len(a.dirOrder) - 1; i >= 0; i-- {
		p := a.dirOrder[i]
		hdr := a.dirs[p]
		parent := path.Dir(p)
		if parent == "." {
			parent = ""
		}
		pfd, err := a.root.openDir(parent, false)
		if err != nil {
			continue // replaced or removed by a later entry
		}
		err = a.finishDir(pfd, path.Base(p), hdr)
		unix.Close(pfd)
		if err != nil {
			return fmt.Errorf("directory %s: %w", p, err)
		}
	}
	return nil
}

func (a *applier) finishDir(pfd int, base string, hdr *tar.Header) error {
	fd, err := unix.Openat(pfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
		return nil // replaced by a later entry
	}
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	defer unix.Close(fd)
	if a.privileged {
		if err := unix.Fchown(fd, hdr.Uid, hdr.Gid); err != nil {
			return fmt.Errorf("set owner: %w", err)
		}
	}
	if err := unix.Fchmod(fd, uint32(hdr.Mode&0o7777)); err != nil {
		return fmt.Errorf("set mode: %w", err)
	}
	return setTimes(pfd, base, hdr.ModTime)
}

// isSparse reports whether a header describes a GNU sparse file.
func isSparse(hdr *tar.Header) bool {
	if hdr.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}
