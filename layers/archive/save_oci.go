package archive

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/drove-project/drove/layers/store"
)

// ContainerdNameAnnotation is store.ImageNameAnnotation.
const ContainerdNameAnnotation = store.ImageNameAnnotation

const layoutJSON = `{"imageLayoutVersion":"1.0.0"}`

// epoch is the modification time of every entry Save writes, so that the
// same images give the same archive.
var epoch = time.Unix(0, 0).UTC()

func saveOCI(ctx context.Context, w io.Writer, s *store.Store, entries []saveEntry, opts SaveOptions) error {
	var blobs []v1.Descriptor
	seen := map[v1.Hash]bool{}
	var total int64
	for _, e := range entries {
		err := walk(s, e.desc, func(d v1.Descriptor) error {
			if !seen[d.Digest] {
				seen[d.Digest] = true
				blobs = append(blobs, d)
				total += d.Size
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("save %s: %w", e.ref, err)
		}
	}
	index, err := ociIndex(entries)
	if err != nil {
		return err
	}

	tw := tar.NewWriter(w)
	if err := writeFile(tw, "oci-layout", []byte(layoutJSON)); err != nil {
		return err
	}
	for _, dir := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(header(dir, tar.TypeDir, 0)); err != nil {
			return fmt.Errorf("write %s: %w", dir, err)
		}
	}
	var done int64
	buf := make([]byte, 1<<20)
	for _, d := range blobs {
		if err := copyBlob(ctx, tw, s, d, buf, func(n int64) {
			done += n
			if opts.Progress != nil {
				opts.Progress(done, total)
			}
		}); err != nil {
			return err
		}
	}
	if err := writeFile(tw, "index.json", index); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("finish archive: %w", err)
	}
	return nil
}

// ociIndex is the archive's index.json: one entry per saved name, carrying
// the full normalised name.
func ociIndex(entries []saveEntry) ([]byte, error) {
	im := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{}}
	for _, e := range entries {
		d := v1.Descriptor{MediaType: e.desc.MediaType, Size: e.desc.Size, Digest: e.desc.Digest, Platform: e.desc.Platform}
		if e.name != "" {
			d.Annotations = map[string]string{store.RefNameAnnotation: e.name, ContainerdNameAnnotation: e.name}
		}
		im.Manifests = append(im.Manifests, d)
	}
	b, err := json.Marshal(im)
	if err != nil {
		return nil, fmt.Errorf("encode index.json: %w", err)
	}
	return b, nil
}

// copyBlob streams one blob from the store into the archive, checking on the
// way that it still hashes to its name.
func copyBlob(ctx context.Context, tw *tar.Writer, s *store.Store, d v1.Descriptor, buf []byte, progress func(int64)) error {
	f, err := s.OpenBlob(d.Digest)
	if err != nil {
		return fmt.Errorf("save blob %s: %w", d.Digest, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("save blob %s: %w", d.Digest, err)
	}
	if st.Size() != d.Size {
		return fmt.Errorf("save blob %s: it is %d bytes in the store but %d in its descriptor: %w", d.Digest, st.Size(), d.Size, store.ErrDigestMismatch)
	}
	name := "blobs/sha256/" + d.Digest.Hex
	if err := tw.WriteHeader(header(name, tar.TypeReg, d.Size)); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	h := sha256.New()
	r := &progressReader{ctx: ctx, r: io.TeeReader(f, h), fn: progress}
	if _, err := io.CopyBuffer(tw, r, buf); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != d.Digest.Hex {
		return fmt.Errorf("save blob %s: content in the store hashes to sha256:%s: %w", d.Digest, got, store.ErrDigestMismatch)
	}
	return nil
}

func writeFile(tw *tar.Writer, name string, b []byte) error {
	if err := tw.WriteHeader(header(name, tar.TypeReg, int64(len(b)))); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if _, err := tw.Write(b); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// header is a tar header that depends only on name, type and size.
func header(name string, typ byte, size int64) *tar.Header {
	mode := int64(0o644)
	if typ == tar.TypeDir {
		mode = 0o755
	}
	return &tar.Header{Typeflag: typ, Name: name, Size: size, Mode: mode, ModTime: epoch}
}

// progressReader reports bytes read and stops when ctx ends.
type progressReader struct {
	ctx context.Context
	r   io.Reader
	fn  func(int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	if err := p.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := p.r.Read(b)
	if n > 0 && p.fn != nil {
		p.fn(int64(n))
	}
	return n, err
}
