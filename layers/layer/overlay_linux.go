package layer

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// forceLegacyMount makes MountOverlay skip the new mount API, so tests can
// exercise the mount(2) path on kernels that have both.
var forceLegacyMount = false

// fsconfigMaxString is the longest string value fsconfig(2) accepts.
const fsconfigMaxString = 255

// MountOverlay mounts an overlay filesystem at target with lowers (top
// first) under upper, using work as overlayfs's work directory, and returns
// the function that unmounts it. It needs root (CAP_SYS_ADMIN).
//
// The copy-up features that would make the upper directory an incomplete
// change set (metacopy, redirect_dir) are turned off, so DiffOverlayUpper
// reads every change from upper alone.
//
// Many lowers: where the kernel has it (Linux 6.8+), each lower is passed
// on its own ("lowerdir+"), so their number is limited only by overlayfs's
// stack depth. On older kernels all options share one page (mount(2)); if
// the real paths do not fit, each directory is passed as the short path
// /proc/self/fd/N of a descriptor held open for the mount, without changing
// the working directory; if even those do not fit the mount fails with
// ErrMountOptions. Paths containing ',', ':' or '\' are passed the same way.
func MountOverlay(ctx context.Context, lowers []string, upper, work, target string) (unmount func() error, err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(lowers) == 0 {
		return nil, fmt.Errorf("mount overlay at %s: no lower directories", target)
	}
	dirs := append(append([]string(nil), lowers...), upper, work)
	fds := make([]int, len(dirs))
	for i := range fds {
		fds[i] = -1
	}
	defer func() {
		for _, fd := range fds {
			if fd >= 0 {
				unix.Close(fd)
			}
		}
	}()
	for i, d := range dirs {
		abs, err := filepath.Abs(d)
		if err != nil {
			return nil, fmt.Errorf("mount overlay at %s: %w", target, err)
		}
		dirs[i] = abs
		if fds[i], err = unix.Open(abs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
			return nil, fmt.Errorf("mount overlay at %s: open %s: %w", target, abs, err)
		}
	}
	o := overlayDirs{lowers: dirs[:len(lowers)], upper: dirs[len(lowers)], work: dirs[len(lowers)+1], fds: fds}

	err = errNoNewAPI
	if !forceLegacyMount {
		err = o.mountNew(target)
	}
	if errors.Is(err, errNoNewAPI) {
		err = o.mountLegacy(target)
	}
	if err != nil {
		return nil, fmt.Errorf("mount overlay at %s: %w", target, err)
	}
	return func() error {
		if err := unix.Unmount(target, 0); err != nil {
			return fmt.Errorf("unmount overlay %s: %w", target, err)
		}
		return nil
	}, nil
}

// errNoNewAPI says the kernel lacks fsopen(2) or overlayfs's "lowerdir+".
var errNoNewAPI = errors.New("no new mount API")

type overlayDirs struct {
	lowers      []string
	upper, work string
	fds         []int // lowers..., upper, work
}

// fdPath is the /proc path of the i-th directory's descriptor.
func (o overlayDirs) fdPath(i int) string { return "/proc/self/fd/" + strconv.Itoa(o.fds[i]) }

// arg is how the i-th directory is named in mount options: its path when
// that is safe and short enough, else its descriptor's path.
func (o overlayDirs) arg(i int, p string, useFD bool, limit int) string {
	if useFD || len(p) > limit || strings.ContainsAny(p, `,:\`) {
		return o.fdPath(i)
	}
	return p
}

// mountNew mounts with fsopen/fsconfig/fsmount/move_mount.
func (o overlayDirs) mountNew(target string) error {
	fsfd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if errors.Is(err, unix.ENOSYS) {
		return errNoNewAPI
	}
	if err != nil {
		return fmt.Errorf("fsopen overlay: %w", err)
	}
	defer unix.Close(fsfd)
	for i, l := range o.lowers {
		err := unix.FsconfigSetString(fsfd, "lowerdir+", o.arg(i, l, false, fsconfigMaxString))
		if i == 0 && errors.Is(err, unix.EINVAL) {
			return errNoNewAPI
		}
		if err != nil {
			return fmt.Errorf("lower %s: %w%s", l, err, fsLog(fsfd))
		}
	}
	n := len(o.lowers)
	set := []struct{ key, value string }{
		{"upperdir", o.arg(n, o.upper, false, fsconfigMaxString)},
		{"workdir", o.arg(n+1, o.work, false, fsconfigMaxString)},
	}
	for _, kv := range set {
		if err := unix.FsconfigSetString(fsfd, kv.key, kv.value); err != nil {
			return fmt.Errorf("%s %s: %w%s", kv.key, kv.value, err, fsLog(fsfd))
		}
	}
	for _, key := range []string{"metacopy", "redirect_dir"} {
		// Older kernels do not know these; then they are off anyway.
		_ = unix.FsconfigSetString(fsfd, key, "off")
		fsLog(fsfd)
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return fmt.Errorf("create overlay: %w%s", err, fsLog(fsfd))
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("fsmount: %w%s", err, fsLog(fsfd))
	}
	defer unix.Close(mfd)
	if err := unix.MoveMount(mfd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("attach to %s: %w", target, err)
	}
	return nil
}

// fsLog drains the messages the kernel left on an fsopen descriptor, for
// error text.
func fsLog(fsfd int) string {
	var msgs []string
	buf := make([]byte, 1024)
	for {
		n, err := unix.Read(fsfd, buf)
		if err != nil || n <= 0 {
			break
		}
		msgs = append(msgs, strings.TrimSpace(string(buf[:n])))
	}
	if len(msgs) == 0 {
		return ""
	}
	return " (" + strings.Join(msgs, "; ") + ")"
}

// mountLegacy mounts with mount(2), whose options must fit in one page.
func (o overlayDirs) mountLegacy(target string) error {
	limit := unix.Getpagesize() - 1
	var data string
	for _, useFD := range []bool{false, true} {
		n := len(o.lowers)
		ls := make([]string, n)
		for i, l := range o.lowers {
			ls[i] = o.arg(i, l, useFD, limit)
		}
		data = "lowerdir=" + strings.Join(ls, ":") +
			",upperdir=" + o.arg(n, o.upper, useFD, limit) +
			",workdir=" + o.arg(n+1, o.work, useFD, limit)
		if len(data) <= limit {
			break
		}
	}
	if len(data) > limit {
		return fmt.Errorf("%d lower directories need %d bytes of options, the limit is %d: %w",
			len(o.lowers), len(data), limit, ErrMountOptions)
	}
	if full := data + ",metacopy=off,redirect_dir=off"; len(full) <= limit {
		if err := unix.Mount("overlay", target, "overlay", 0, full); err == nil {
			return nil
		}
		// Kernels before 4.19 do not know metacopy; retry without it.
	}
	if err := unix.Mount("overlay", target, "overlay", 0, data); err != nil {
		return fmt.Errorf("mount: %w", err)
	}
	return nil
}
