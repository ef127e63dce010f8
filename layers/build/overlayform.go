package build

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/drove-project/drove/layers/layer"
)

// applyOverlayForm unpacks a (possibly compressed) OCI layer into an empty
// dir for use as an overlay lower: whiteout entries are not applied as
// deletions (there is nothing below to delete) but recorded the way
// overlayfs reads them: ".wh.NAME" becomes a 0/0 character device NAME and
// ".wh..wh..opq" sets trusted.overlay.opaque=y on its directory. Root only.
func applyOverlayForm(ctx context.Context, dir string, blob io.Reader) error {
	r, err := layer.Decompress(blob)
	if err != nil {
		return err
	}
	defer r.Close()
	pr, pw := io.Pipe()
	var whiteouts, opaques []string
	go func() {
		tr := tar.NewReader(r)
		tw := tar.NewWriter(pw)
		var err error
		for {
			var h *tar.Header
			h, err = tr.Next()
			if err != nil {
				break
			}
			name := layer.CleanPath(h.Name)
			base := path.Base(name)
			switch {
			case base == layer.WhiteoutOpaque:
				opaques = append(opaques, path.Dir(name))
				continue
			case strings.HasPrefix(base, layer.WhiteoutPrefix):
				whiteouts = append(whiteouts, path.Join(path.Dir(name), strings.TrimPrefix(base, layer.WhiteoutPrefix)))
				continue
			}
			if err = tw.WriteHeader(h); err != nil {
				break
			}
			if _, err = io.Copy(tw, tr); err != nil {
				break
			}
		}
		if errors.Is(err, io.EOF) {
			err = tw.Close()
		}
		pw.CloseWithError(err)
	}()
	if _, err := layer.Apply(ctx, dir, pr); err != nil {
		pr.CloseWithError(err)
		return err
	}
	for _, w := range whiteouts {
		p, err := inside(dir, w)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := unix.Mknod(p, unix.S_IFCHR, 0); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("whiteout %s: %w", w, err)
		}
	}
	for _, o := range opaques {
		p, err := inside(dir, o)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(p, 0o755); err != nil {
			return err
		}
		if err := unix.Lsetxattr(p, "trusted.overlay.opaque", []byte("y"), 0); err != nil {
			return fmt.Errorf("mark %s opaque: %w", o, err)
		}
	}
	return nil
}

// inside joins a layer path to dir, refusing paths that leave it or pass
// through a symbolic link.
func inside(dir, p string) (string, error) {
	clean := layer.CleanPath(p)
	if clean == "" || clean == "." {
		return dir, nil
	}
	cur := dir
	for _, part := range strings.Split(clean, "/") {
		cur = filepath.Join(cur, part)
		if fi, err := os.Lstat(cur); err == nil && fi.Mode()&os.ModeSymlink != 0 {
			return "", fmt.Errorf("%s: %w", p, layer.ErrUnsafePath)
		}
	}
	return cur, nil
}
