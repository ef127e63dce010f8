package agent

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// preallocate makes f n bytes long with its blocks allocated, so later
// writes below n change no file metadata. Filesystems without fallocate
// get a sparse file: still correct, only slower to sync.
func preallocate(f *os.File, n int64) error {
	err := unix.Fallocate(int(f.Fd()), 0, 0, n)
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) {
		return f.Truncate(n)
	}
	return err
}

// datasync flushes f's data and the metadata needed to read it back.
func datasync(f *os.File) error { return unix.Fdatasync(int(f.Fd())) }
