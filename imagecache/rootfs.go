package imagecache

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/drove-project/drove/layers/layer"
	"github.com/drove-project/drove/layers/store"
)

// LayoutDir is where a cluster image keeps its cached container images:
// an OCI image layout at this path of the rootfs.
const LayoutDir = "container-images"

// sparseRootfs is what discovery needs of an image's rootfs, unpacked into
// a directory, and the blobs its layers already carry under LayoutDir.
type sparseRootfs struct {
	dir   string
	blobs map[v1.Hash]bool
}

// unpackSparse applies the layers over dir keeping only what image
// discovery reads: directories, links, whiteouts, imageList files, the
// files under manifests/, charts/ and application/, and the cached images'
// index.json. Everything else — binaries, and above all the cached image
// blobs, which can be gigabytes — is skipped; the names of those blobs are
// collected so they are not pulled again.
func unpackSparse(ctx context.Context, s *store.Store, layers []v1.Descriptor, dir string) (*sparseRootfs, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	rf := &sparseRootfs{dir: dir, blobs: map[v1.Hash]bool{}}
	for _, l := range layers {
		if err := rf.apply(ctx, s, l); err != nil {
			return nil, fmt.Errorf("unpack layer %s: %w", l.Digest, err)
		}
	}
	return rf, nil
}

func (rf *sparseRootfs) apply(ctx context.Context, s *store.Store, l v1.Descriptor) error {
	f, err := s.OpenBlob(l.Digest)
	if err != nil {
		return err
	}
	defer f.Close()
	dr, err := layer.Decompress(f)
	if err != nil {
		return err
	}
	defer dr.Close()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := layer.Apply(ctx, rf.dir, pr)
		pr.CloseWithError(err)
		done <- err
	}()
	ferr := rf.filter(dr, pw)
	pw.CloseWithError(ferr)
	aerr := <-done
	if ferr != nil && !errors.Is(ferr, io.ErrClosedPipe) {
		return ferr
	}
	return aerr
}

// filter copies the entries of tar r that discovery needs to w.
func (rf *sparseRootfs) filter(r io.Reader, w io.Writer) error {
	tr := tar.NewReader(r)
	tw := tar.NewWriter(w)
	kept := map[string]bool{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return tw.Close()
		}
		if err != nil {
			return err
		}
		name := strings.TrimPrefix(path.Clean("/"+h.Name), "/")
		if h.Typeflag == tar.TypeReg {
			if hex, ok := strings.CutPrefix(name, LayoutDir+"/blobs/sha256/"); ok && !strings.Contains(hex, "/") {
				rf.blobs[v1.Hash{Algorithm: "sha256", Hex: hex}] = true
			}
		}
		if !wanted(name, h) {
			continue
		}
		if h.Typeflag == tar.TypeLink && !kept[strings.TrimPrefix(path.Clean("/"+h.Linkname), "/")] {
			continue
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := io.Copy(tw, tr); err != nil {
				return err
			}
		}
		kept[name] = true
	}
}

// wanted says whether discovery reads the entry at name.
func wanted(name string, h *tar.Header) bool {
	switch h.Typeflag {
	case tar.TypeDir, tar.TypeSymlink:
		return !strings.HasPrefix(name, LayoutDir+"/blobs/")
	case tar.TypeReg, tar.TypeLink:
	default:
		return false
	}
	base := path.Base(name)
	if strings.HasPrefix(base, ".wh.") || base == "imageList" || name == LayoutDir+"/index.json" {
		return true
	}
	for _, top := range []string{"manifests/", "charts/", "application/"} {
		if strings.HasPrefix(name, top) {
			return true
		}
	}
	return false
}
