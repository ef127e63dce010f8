package layer

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// maxSymlinks bounds the symbolic links followed while resolving one path,
// as the kernel's own limit does.
const maxSymlinks = 40

// fsRoot is a directory that paths are resolved in as if it were "/": every
// lookup goes through file descriptors, symbolic links met on the way are
// followed inside the root (an absolute target starts again at the root, ".."
// stops at it), and nothing outside can be reached. Final path components are
// never followed: callers act on them with the *at calls and
// AT_SYMLINK_NOFOLLOW or O_NOFOLLOW.
type fsRoot struct {
	fd   int
	path string
}

func openRoot(dir string) (*fsRoot, error) {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", dir, err)
	}
	return &fsRoot{fd: fd, path: dir}, nil
}

func (r *fsRoot) close() { unix.Close(r.fd) }

// openDir returns a new O_PATH descriptor for the directory rel (a CleanPath;
// "" is the root). With create, missing directories are made, mode 0755.
func (r *fsRoot) openDir(rel string, create bool) (int, error) {
	var stack []int // descriptors of the directories walked below the root
	defer func() {
		for _, fd := range stack {
			unix.Close(fd)
		}
	}()
	cur := func() int {
		if len(stack) == 0 {
			return r.fd
		}
		return stack[len(stack)-1]
	}
	todo := strings.Split(rel, "/")
	links := 0
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(stack) > 0 {
				unix.Close(stack[len(stack)-1])
				stack = stack[:len(stack)-1]
			}
			continue
		}
		fd, err := openDirAt(cur(), c)
		if errors.Is(err, unix.ENOENT) && create {
			if err := unix.Mkdirat(cur(), c, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
				return -1, fmt.Errorf("create directory %s in %s: %w", c, r.path, err)
			}
			fd, err = openDirAt(cur(), c)
		}
		if err == nil {
			stack = append(stack, fd)
			continue
		}
		if !errors.Is(err, unix.ENOTDIR) && !errors.Is(err, unix.ELOOP) {
			return -1, fmt.Errorf("open %s in %s: %w", rel, r.path, err)
		}
		target, err := readlinkAt(cur(), c)
		if err != nil {
			return -1, fmt.Errorf("open %s in %s: %w", rel, r.path, unix.ENOTDIR)
		}
		if links++; links > maxSymlinks {
			return -1, fmt.Errorf("open %s in %s: %w", rel, r.path, unix.ELOOP)
		}
		if strings.HasPrefix(target, "/") {
			for _, fd := range stack {
				unix.Close(fd)
			}
			stack = stack[:0]
		}
		todo = append(strings.Split(target, "/"), todo...)
	}
	if len(stack) == 0 {
		return openDirAt(r.fd, ".")
	}
	fd := stack[len(stack)-1]
	stack = stack[:len(stack)-1]
	return fd, nil
}

// openDirAt opens the directory name in dirfd without following a final
// symbolic link.
func openDirAt(dirfd int, name string) (int, error) {
	return unix.Openat(dirfd, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
}

// readlinkAt reads the symbolic link name in dirfd; it fails with EINVAL
// when name is not a link.
func readlinkAt(dirfd int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

// lstatAt stats name in dirfd without following a symbolic link.
func lstatAt(dirfd int, name string) (unix.Stat_t, error) {
	var st unix.Stat_t
	err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	return st, err
}

// removeAllAt removes name from dirfd and, if it is a directory, everything
// below it, never following symbolic links. A missing name is not an error.
func removeAllAt(dirfd int, name string) error {
	if name == "" || name == "." || name == ".." || strings.Contains(name, "/") {
		return fmt.Errorf("remove %q: %w", name, ErrUnsafePath)
	}
	err := unix.Unlinkat(dirfd, name, 0)
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if !errors.Is(err, unix.EISDIR) && !errors.Is(err, unix.EPERM) {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	names, dfd, err := readDirAt(dirfd, name, true)
	if err != nil {
		return err
	}
	defer dfd.Close()
	for _, n := range names {
		if err := removeAllAt(int(dfd.Fd()), n); err != nil {
			return err
		}
	}
	if err := unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("remove directory %s: %w", name, err)
	}
	return nil
}

// readDirAt opens the directory name in dirfd (not following a symbolic
// link) and returns the names in it with the open directory. With
// forRemoval it first makes the directory accessible to its owner, so that
// its entries can be removed.
func readDirAt(dirfd int, name string, forRemoval bool) ([]string, *os.File, error) {
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.EACCES) && forRemoval {
		if err := unix.Fchmodat(dirfd, name, 0o700, 0); err == nil {
			fd, err = unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("open directory %s: %w", name, err)
	}
	f := os.NewFile(uintptr(fd), name)
	var st unix.Stat_t
	if forRemoval && unix.Fstat(fd, &st) == nil && st.Mode&0o700 != 0o700 {
		_ = unix.Fchmod(fd, st.Mode&0o7777|0o700)
	}
	names, err := f.Readdirnames(-1)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("read directory %s: %w", name, err)
	}
	return names, f, nil
}
