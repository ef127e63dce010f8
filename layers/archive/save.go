package archive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/drove-project/drove/layers/store"
)

// Format is an archive format.
type Format string

// The formats Save writes.
const (
	// OCIArchive is a tar of an OCI image layout, skopeo's oci-archive.
	OCIArchive Format = "oci-archive"
	// DockerArchive is the format of `docker save` and skopeo's
	// docker-archive.
	DockerArchive Format = "docker-archive"
)

// ParseFormat checks a format given by a user; "" means OCIArchive.
func ParseFormat(s string) (Format, error) {
	switch Format(s) {
	case "", OCIArchive:
		return OCIArchive, nil
	case DockerArchive:
		return DockerArchive, nil
	}
	return "", fmt.Errorf("%w: archive format %q (want %s or %s)", ErrUnsupported, s, OCIArchive, DockerArchive)
}

// SaveOptions tune Save.
type SaveOptions struct {
	// Format of the archive; OCIArchive when empty.
	Format Format
	// Platform picks the image of a multi-platform index for DockerArchive,
	// which holds one platform per image. Nil means the host's OS and
	// architecture. OCIArchive ignores it and saves indexes whole.
	Platform *v1.Platform
	// Progress, if set, is called as bytes are written. For OCIArchive done
	// and total count blob bytes; for DockerArchive, bytes of the tar.
	Progress func(done, total int64)
}

// Save writes the images refs name (anything store.Resolve accepts) from s to
// w as one archive. Blobs shared by several images are written once. On error
// w holds a partial archive, which the caller should discard.
//
// OCIArchive output is deterministic: the same images and names give the same
// bytes. DockerArchive output is written by go-containerregistry, whose entry
// order is not fixed, and refuses zstd-compressed layers (docker load before
// Docker 23 cannot read them, and go-containerregistry reads them back as
// gzip): save such images as OCIArchive.
func Save(ctx context.Context, w io.Writer, s *store.Store, refs []string, opts SaveOptions) error {
	if len(refs) == 0 {
		return errors.New("save: no images given")
	}
	format, err := ParseFormat(string(opts.Format))
	if err != nil {
		return fmt.Errorf("save: %w", err)
	}
	entries, err := resolveAll(s, refs)
	if err != nil {
		return err
	}
	if format == DockerArchive {
		return saveDocker(ctx, w, s, entries, opts)
	}
	return saveOCI(ctx, w, s, entries, opts)
}

// saveEntry is one image to save: its name in the store (empty for a
// name@digest reference, which names no tag) and its descriptor.
type saveEntry struct {
	ref      string // as the user gave it, for messages
	name     string // tag name to record, "" for none
	resolved string // the normalised reference, name@digest included
	desc     v1.Descriptor
}

// resolveAll resolves refs in order, dropping repeats.
func resolveAll(s *store.Store, refs []string) ([]saveEntry, error) {
	var out []saveEntry
	seen := map[string]bool{}
	for _, ref := range refs {
		e, err := s.Resolve(ref)
		if err != nil {
			return nil, fmt.Errorf("save %s: %w", ref, err)
		}
		se := saveEntry{ref: ref, name: e.Name, resolved: e.Name, desc: e.Descriptor}
		if strings.Contains(e.Name, "@") {
			se.name = ""
		}
		key := se.name + "@" + se.desc.Digest.String()
		if seen[key] {
			continue
		}
		seen[key] = true
		out = append(out, se)
	}
	return out, nil
}
