package layer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// CopyTree materialises a copy of the directory src at dst (created if
// missing, which it should be or be empty), so that a build step can change
// the copy in place: regular files are copied (the kernel may share their
// blocks, as copy_file_range allows), files hard-linked within src stay
// linked to each other, symbolic links are recreated, fifos are made, and
// device nodes are made when running as root. Modes and mtimes are kept;
// ownership is kept when running as root. Sockets and extended attributes
// are not copied.
func CopyTree(ctx context.Context, src, dst string) error {
	fi, err := os.Lstat(src)
	if err != nil {
		return fmt.Errorf("copy tree %s: %w", src, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("copy tree %s: %w", src, unix.ENOTDIR)
	}
	c := &treeCopier{ctx: ctx, src: src, dst: dst, privileged: os.Geteuid() == 0, links: make(map[fileID]string)}
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return fmt.Errorf("copy tree to %s: %w", dst, err)
	}
	if err := filepath.WalkDir(src, c.visit); err != nil {
		return fmt.Errorf("copy tree %s to %s: %w", src, dst, err)
	}
	for i := len(c.dirs) - 1; i >= 0; i-- {
		d := c.dirs[i]
		if err := c.setMeta(d.path, d.info); err != nil {
			return fmt.Errorf("copy tree %s to %s: %w", src, dst, err)
		}
	}
	return nil
}

type copiedDir struct {
	path string
	info fs.FileInfo
}

type treeCopier struct {
	ctx        context.Context
	src, dst   string
	privileged bool
	links      map[fileID]string // first copy of each multiply-linked file
	dirs       []copiedDir       // directories, finished after their contents
}

func (c *treeCopier) visit(p string, d fs.DirEntry, err error) error {
	if err != nil {
		return err
	}
	if err := c.ctx.Err(); err != nil {
		return err
	}
	rel, err := filepath.Rel(c.src, p)
	if err != nil {
		return err
	}
	target := filepath.Join(c.dst, rel)
	fi, err := d.Info()
	if err != nil {
		return err
	}
	st := statOf(fi)
	switch m := fi.Mode(); {
	case m.IsDir():
		if rel != "." {
			if err := os.Mkdir(target, 0o700); err != nil {
				return err
			}
		}
		c.dirs = append(c.dirs, copiedDir{target, fi})
		return nil
	case m.IsRegular():
		id := fileID{st.dev, st.ino}
		if first, ok := c.links[id]; ok && st.nlink > 1 {
			return os.Link(first, target)
		}
		if err := copyFile(p, target); err != nil {
			return err
		}
		if st.nlink > 1 {
			c.links[id] = target
		}
	case m&fs.ModeSymlink != 0:
		link, err := os.Readlink(p)
		if err != nil {
			return err
		}
		if err := os.Symlink(link, target); err != nil {
			return err
		}
	case m&fs.ModeNamedPipe != 0:
		if err := unix.Mknod(target, unix.S_IFIFO|0o600, 0); err != nil {
			return fmt.Errorf("make fifo %s: %w", target, err)
		}
	case m&fs.ModeDevice != 0:
		if !c.privileged {
			return nil
		}
		mode := uint32(unix.S_IFBLK)
		if m&fs.ModeCharDevice != 0 {
			mode = unix.S_IFCHR
		}
		if err := unix.Mknod(target, mode|0o600, int(st.rdev)); err != nil {
			if errors.Is(err, unix.EPERM) {
				return nil
			}
			return fmt.Errorf("make device %s: %w", target, err)
		}
	default:
		return nil // sockets
	}
	return c.setMeta(target, fi)
}

// setMeta gives target the ownership (as root), mode and mtime of fi,
// without following a symbolic link.
func (c *treeCopier) setMeta(target string, fi fs.FileInfo) error {
	st := statOf(fi)
	if c.privileged {
		if err := os.Lchown(target, int(st.uid), int(st.gid)); err != nil {
			return err
		}
	}
	if fi.Mode()&fs.ModeSymlink == 0 {
		if err := unix.Chmod(target, uint32(tarMode(fi.Mode()))); err != nil {
			return fmt.Errorf("chmod %s: %w", target, err)
		}
	}
	ts := unix.NsecToTimespec(st.mtimeNs)
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, target, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set mtime of %s: %w", target, err)
	}
	return nil
}

// copyFile copies the content of the regular file src to the new file dst.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return out.Close()
}
