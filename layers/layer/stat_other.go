//go:build !linux

package layer

import "io/fs"

// fileStat is the part of a stat result that os.FileInfo does not expose.
// Outside Linux only the mtime is known: no hard links are detected and
// ownership is written as root.
type fileStat struct {
	dev, ino, nlink, rdev uint64
	uid, gid              uint32
	ctimeNs, mtimeNs      int64
}

func statOf(fi fs.FileInfo) fileStat { return fileStat{mtimeNs: fi.ModTime().UnixNano()} }

func devNumbers(uint64) (major, minor int64) { return 0, 0 }
