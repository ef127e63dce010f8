package layer

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// itemKind says where a tar entry's content comes from.
type itemKind uint8

const (
	kindHost     itemKind = iota // a host path, read with Lstat
	kindDir                      // a parent directory no entry named
	kindWhiteout                 // an empty ".wh." marker file
)

// item is one tar entry to write: dest is a CleanPath, never "".
type item struct {
	dest string
	src  string
	kind itemKind
}

// epoch is the mtime of entries that have no host file: synthesised parent
// directories and whiteouts. A constant keeps layers reproducible.
var epoch = time.Unix(0, 0)

// pathLess orders paths component by component ("a", "a/b", "a-b"), so a
// directory is followed directly by its contents.
func pathLess(a, b string) bool {
	for i := 0; i < len(a) && i < len(b); i++ {
		ca, cb := a[i], b[i]
		if ca == cb {
			continue
		}
		if ca == '/' {
			return true
		}
		if cb == '/' {
			return false
		}
		return ca < cb
	}
	return len(a) < len(b)
}

// prepareItems sorts items, keeps the last of several with the same dest,
// and adds a directory item for every missing parent.
func prepareItems(items []item) []item {
	sorted := make([]item, len(items))
	copy(sorted, items)
	sort.SliceStable(sorted, func(i, j int) bool { return pathLess(sorted[i].dest, sorted[j].dest) })
	out := sorted[:0]
	for i, it := range sorted {
		if i+1 < len(sorted) && sorted[i+1].dest == it.dest {
			continue
		}
		out = append(out, it)
	}
	have := make(map[string]bool, len(out))
	for _, it := range out {
		have[it.dest] = true
	}
	n := len(out)
	for _, it := range out[:n] {
		for p := path.Dir(it.dest); p != "." && !have[p]; p = path.Dir(p) {
			have[p] = true
			out = append(out, item{dest: p, kind: kindDir})
		}
	}
	if len(out) > n {
		sort.SliceStable(out, func(i, j int) bool { return pathLess(out[i].dest, out[j].dest) })
	}
	return out
}

// fileID identifies a file for hard-link detection.
type fileID struct{ dev, ino uint64 }

// linked is the first entry written for a file with several links.
type linked struct {
	dest string
	sum  v1.Hash
}

// tarWriter writes items as one deterministic tar stream.
type tarWriter struct {
	ctx       context.Context
	tw        *tar.Writer
	keepOwner bool
	buf       []byte
	files     map[string]v1.Hash
	links     map[fileID]linked
	isDir     map[string]bool
}

// writeItems writes items as a layer to w. keepOwner stores the files' uid
// and gid (for build-step diffs); otherwise everything belongs to root.
func writeItems(ctx context.Context, w io.Writer, items []item, opts Options, keepOwner bool) (Result, error) {
	if _, err := opts.Compression.MediaType(); err != nil {
		return Result{}, err
	}
	out, err := newOutput(w, opts.Compression)
	if err != nil {
		return Result{}, err
	}
	buf := bufPool.Get().(*[]byte)
	defer bufPool.Put(buf)
	t := &tarWriter{
		ctx:       ctx,
		tw:        tar.NewWriter(out),
		keepOwner: keepOwner,
		buf:       *buf,
		files:     make(map[string]v1.Hash),
		links:     make(map[fileID]linked),
		isDir:     make(map[string]bool),
	}
	for _, it := range prepareItems(items) {
		if err := t.write(it); err != nil {
			out.abort(err)
			return Result{}, err
		}
	}
	if err := t.tw.Close(); err != nil {
		out.abort(err)
		return Result{}, fmt.Errorf("finish layer tar: %w", err)
	}
	res := Result{Files: t.files}
	if err := out.finish(&res); err != nil {
		return Result{}, err
	}
	return res, nil
}

func (t *tarWriter) write(it item) error {
	if err := t.ctx.Err(); err != nil {
		return err
	}
	if parent := path.Dir(it.dest); parent != "." && !t.isDir[parent] {
		return fmt.Errorf("layer entry %q: parent %q is not a directory", it.dest, parent)
	}
	switch it.kind {
	case kindDir:
		t.isDir[it.dest] = true
		return t.header(&tar.Header{Typeflag: tar.TypeDir, Name: it.dest + "/", Mode: 0o755, ModTime: epoch})
	case kindWhiteout:
		return t.header(&tar.Header{Typeflag: tar.TypeReg, Name: it.dest, ModTime: epoch})
	}
	fi, err := os.Lstat(it.src)
	if err != nil {
		return fmt.Errorf("stat %s: %w", it.src, err)
	}
	st := statOf(fi)
	hdr := &tar.Header{
		Name:    it.dest,
		Mode:    tarMode(fi.Mode()),
		ModTime: time.Unix(fi.ModTime().Unix(), 0),
	}
	if t.keepOwner {
		hdr.Uid, hdr.Gid = int(st.uid), int(st.gid)
	}
	switch m := fi.Mode(); {
	case m.IsRegular():
		return t.regular(it, hdr, st)
	case m.IsDir():
		t.isDir[it.dest] = true
		hdr.Typeflag, hdr.Name = tar.TypeDir, it.dest+"/"
	case m&fs.ModeSymlink != 0:
		target, err := os.Readlink(it.src)
		if err != nil {
			return fmt.Errorf("read link %s: %w", it.src, err)
		}
		hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, target
	case m&fs.ModeDevice != 0:
		hdr.Typeflag = tar.TypeBlock
		if m&fs.ModeCharDevice != 0 {
			hdr.Typeflag = tar.TypeChar
		}
		hdr.Devmajor, hdr.Devminor = devNumbers(st.rdev)
	case m&fs.ModeNamedPipe != 0:
		hdr.Typeflag = tar.TypeFifo
	default: // sockets and the like cannot be stored in a layer
		return nil
	}
	return t.header(hdr)
}

// regular writes a regular file, or a hard link to one already written.
// The content is streamed and hashed in the same pass.
func (t *tarWriter) regular(it item, hdr *tar.Header, st fileStat) error {
	id := fileID{st.dev, st.ino}
	if st.nlink > 1 {
		if l, ok := t.links[id]; ok {
			t.files[it.src] = l.sum
			hdr.Typeflag, hdr.Linkname = tar.TypeLink, l.dest
			return t.header(hdr)
		}
	}
	f, err := os.OpenFile(it.src, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", it.src, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat %s: %w", it.src, err)
	}
	if now := statOf(fi); !fi.Mode().IsRegular() || now.dev != st.dev || now.ino != st.ino {
		return fmt.Errorf("open %s: %w", it.src, ErrChangedWhileReading)
	}
	hdr.Typeflag, hdr.Size = tar.TypeReg, fi.Size()
	hdr.ModTime = time.Unix(fi.ModTime().Unix(), 0)
	hdr.Mode = tarMode(fi.Mode())
	if err := t.header(hdr); err != nil {
		return err
	}
	h := sha256.New()
	for left := hdr.Size; left > 0; {
		if err := t.ctx.Err(); err != nil {
			return err
		}
		n, err := f.Read(t.buf[:min(int64(len(t.buf)), left)])
		if n > 0 {
			h.Write(t.buf[:n])
			if _, werr := t.tw.Write(t.buf[:n]); werr != nil {
				return fmt.Errorf("write %s to layer: %w", it.src, werr)
			}
			left -= int64(n)
		}
		if errors.Is(err, io.EOF) && left > 0 {
			return fmt.Errorf("read %s: %w", it.src, ErrChangedWhileReading)
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read %s: %w", it.src, err)
		}
	}
	sum := sha256Hash(h)
	t.files[it.src] = sum
	if st.nlink > 1 {
		t.links[id] = linked{dest: it.dest, sum: sum}
	}
	return nil
}

func (t *tarWriter) header(hdr *tar.Header) error {
	if err := t.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("write layer header %s: %w", hdr.Name, err)
	}
	return nil
}

// tarMode is the tar header mode for a file mode: permissions plus the
// setuid, setgid and sticky bits.
func tarMode(m fs.FileMode) int64 {
	mode := int64(m.Perm())
	if m&fs.ModeSetuid != 0 {
		mode |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		mode |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		mode |= 0o1000
	}
	return mode
}
