package media

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/drove-project/drove/internal/ctxio"
	"github.com/drove-project/drove/layers/archive"
	"github.com/drove-project/drove/layers/store"
)

// stager writes the media tree into dir, hashing every file on the way.
type stager struct {
	dir   string
	sums  Manifest
	bytes int64 // of all files
	files int
	dirs  map[string]bool
}

func newStager(dir string) *stager { return &stager{dir: dir, dirs: map[string]bool{".": true}} }

// mkdir creates rel (io/fs form) and its parents.
func (s *stager) mkdir(rel string) error {
	for p := rel; !s.dirs[p]; p = path.Dir(p) {
		s.dirs[p] = true
	}
	if err := os.MkdirAll(filepath.Join(s.dir, filepath.FromSlash(rel)), 0o755); err != nil {
		return fmt.Errorf("stage %s: %w", rel, err)
	}
	return nil
}

// write creates the file rel with mode from r and lists it with its
// sha256.
func (s *stager) write(ctx context.Context, rel string, mode os.FileMode, r io.Reader) error {
	e, n, err := s.put(ctx, rel, mode, r)
	if err != nil {
		return err
	}
	s.sums = append(s.sums, e)
	s.bytes += n
	s.files++
	return nil
}

// put creates the file rel with mode from r, hashing it.
func (s *stager) put(ctx context.Context, rel string, mode os.FileMode, r io.Reader) (Entry, int64, error) {
	var e Entry
	if err := s.mkdir(path.Dir(rel)); err != nil {
		return e, 0, err
	}
	dst := filepath.Join(s.dir, filepath.FromSlash(rel))
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
	if err != nil {
		return e, 0, fmt.Errorf("stage %s: %w", rel, err)
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), ctxio.Reader(ctx, r))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return e, 0, fmt.Errorf("stage %s: %w", rel, err)
	}
	// The umask must not take the execute bit off install.sh.
	if err := os.Chmod(dst, mode); err != nil {
		return e, 0, fmt.Errorf("stage %s: %w", rel, err)
	}
	if n > maxFileSize {
		return e, 0, fmt.Errorf("stage %s: %d bytes, but ISO 9660 and FAT32 hold files up to 4 GiB: %w", rel, n, ErrTooLarge)
	}
	e.Path = rel
	copy(e.Sum[:], h.Sum(nil))
	return e, n, nil
}

// ErrTooLarge: a file is too large for ISO 9660 or FAT32.
var ErrTooLarge = errors.New("file too large for the media's filesystem")

func (s *stager) writeBytes(ctx context.Context, rel string, mode os.FileMode, b []byte) error {
	return s.write(ctx, rel, mode, bytes.NewReader(b))
}

// copyFile stages the local file src as rel.
func (s *stager) copyFile(ctx context.Context, rel string, mode os.FileMode, src string) error {
	f, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("stage %s: %w", rel, err)
	}
	defer f.Close()
	return s.write(ctx, rel, mode, f)
}

// image stages the image ref from st as an OCI image layout under
// ImageDir: archive.Save's oci-archive, unpacked as it streams.
func (s *stager) image(ctx context.Context, st *store.Store, ref string, progress func(done, total int64)) error {
	pr, pw := io.Pipe()
	saved := make(chan error, 1)
	go func() {
		err := archive.Save(ctx, pw, st, []string{ref}, archive.SaveOptions{Format: archive.OCIArchive, Progress: progress})
		pw.CloseWithError(err)
		saved <- err
	}()
	err := s.untar(ctx, pr, ImageDir)
	pr.CloseWithError(errors.New("media: stopped reading the image"))
	if serr := <-saved; serr != nil {
		return fmt.Errorf("write image %s as an OCI layout: %w", ref, serr)
	}
	if err != nil {
		return fmt.Errorf("write image %s as an OCI layout: %w", ref, err)
	}
	return nil
}

// untar unpacks the regular files and directories of a tar under prefix.
func (s *stager) untar(ctx context.Context, r io.Reader, prefix string) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		name := strings.TrimSuffix(path.Clean(h.Name), "/")
		if !fs.ValidPath(name) || name == "." {
			return fmt.Errorf("layout entry %q: not a relative path", h.Name)
		}
		rel := path.Join(prefix, name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := s.mkdir(rel); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := s.write(ctx, rel, 0o644, tr); err != nil {
				return err
			}
		default:
			return fmt.Errorf("layout entry %q: type %q is neither a file nor a directory", h.Name, h.Typeflag)
		}
	}
}

// manifest writes MANIFEST.sha256 over every file staged so far.
func (s *stager) manifest(ctx context.Context) error {
	s.sums = s.sums.sorted()
	var b bytes.Buffer
	if _, err := s.sums.WriteTo(&b); err != nil {
		return err
	}
	_, n, err := s.put(ctx, ManifestPath, 0o644, &b)
	s.bytes += n
	s.files++
	return err
}

// walkTree lists the files and directories under dir in lexical order, as
// io/fs paths, directories before their contents.
func walkTree(dir string) (dirs, files []string, err error) {
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			dirs = append(dirs, rel)
		} else {
			files = append(files, rel)
		}
		return nil
	})
	sort.Strings(dirs)
	return dirs, files, err
}
