package layer

import (
	"io/fs"
	"syscall"

	"golang.org/x/sys/unix"
)

// fileStat is the part of a stat result that os.FileInfo does not expose.
type fileStat struct {
	dev, ino, nlink, rdev uint64
	uid, gid              uint32
	ctimeNs, mtimeNs      int64
}

func statOf(fi fs.FileInfo) fileStat {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileStat{mtimeNs: fi.ModTime().UnixNano()}
	}
	return fileStat{
		dev: uint64(st.Dev), ino: uint64(st.Ino), nlink: uint64(st.Nlink), rdev: uint64(st.Rdev),
		uid: st.Uid, gid: st.Gid,
		ctimeNs: st.Ctim.Nano(), mtimeNs: st.Mtim.Nano(),
	}
}

// devNumbers splits a device number into its major and minor parts.
func devNumbers(rdev uint64) (major, minor int64) {
	return int64(unix.Major(rdev)), int64(unix.Minor(rdev))
}
