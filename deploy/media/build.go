package media

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"

	"github.com/drove-project/drove/internal/atomicfile"
	"github.com/drove-project/drove/layers/store"
)

// installScript is install.sh, as shipped beside this file.
//
//go:embed install.sh
var installScript []byte

// InstallScript returns install.sh as Build writes it.
func InstallScript() []byte { return slices.Clone(installScript) }

// Spec says what goes on the media.
type Spec struct {
	// Store holds Image; the whole image (every platform) goes on the
	// media as an OCI image layout.
	Store *store.Store
	Image string
	// Binaries are the drove binaries to carry, by architecture (amd64,
	// arm64, ...): local paths of Linux executables.
	Binaries map[string]string
	// AgentConfig is drove/agent.yaml (drove agent --config's format) and
	// Token the cluster token for drove/token.
	AgentConfig []byte
	Token       []byte
	Format      Format
	// Label is the volume label (DefaultLabel when empty).
	Label string
	// TempDir is where the tree is staged; default the output's directory
	// (the output is renamed from there, so it must be on the same
	// filesystem).
	TempDir string
	// Progress, if set, is told how far each phase is: "image" while the
	// image is written out, then the format's name while the image file
	// is written. total < 0: not known.
	Progress func(phase string, done, total int64)
	Log      *slog.Logger
}

// Result describes built media.
type Result struct {
	Format Format
	Files  int   // in the tree, the manifest included
	Bytes  int64 // of those files
	Size   int64 // of the output file
}

func (s *Spec) check() error {
	if s.Store == nil || s.Image == "" {
		return errors.New("media: no image given")
	}
	if len(s.Binaries) == 0 {
		return errors.New("media: no drove binary given")
	}
	for arch := range s.Binaries {
		if err := CheckArch(arch); err != nil {
			return fmt.Errorf("media: %w", err)
		}
	}
	if len(s.Token) == 0 {
		return errors.New("media: no cluster token given")
	}
	if _, err := ParseFormat(string(s.Format)); err != nil {
		return fmt.Errorf("media: %w", err)
	}
	if s.Label == "" {
		s.Label = DefaultLabel
	}
	if err := CheckLabel(s.Label); err != nil {
		return fmt.Errorf("media: %w", err)
	}
	if s.Log == nil {
		s.Log = slog.New(slog.DiscardHandler)
	}
	if s.Progress == nil {
		s.Progress = func(string, int64, int64) {}
	}
	return nil
}

// Build writes media as spec says to out, atomically: the file appears
// whole or not at all.
func Build(ctx context.Context, spec Spec, out string) (*Result, error) {
	if err := spec.check(); err != nil {
		return nil, err
	}
	entry, err := spec.Store.Resolve(spec.Image)
	if err != nil {
		return nil, fmt.Errorf("media: image %s: %w", spec.Image, err)
	}
	out, err = filepath.Abs(out)
	if err != nil {
		return nil, fmt.Errorf("media: output %s: %w", out, err)
	}
	tmpParent := spec.TempDir
	if tmpParent == "" {
		tmpParent = filepath.Dir(out)
	}
	tmp, err := os.MkdirTemp(tmpParent, ".drove-media-")
	if err != nil {
		return nil, fmt.Errorf("media: staging directory: %w", err)
	}
	defer os.RemoveAll(tmp)
	tree := filepath.Join(tmp, "tree")

	st := newStager(tree)
	if err := spec.stage(ctx, st, entry.Descriptor.Digest.String()); err != nil {
		return nil, err
	}
	spec.Log.Debug("media tree staged", "files", st.files, "bytes", st.bytes)

	partial := filepath.Join(tmp, "media."+string(spec.Format))
	progress := func(done, total int64) { spec.Progress(string(spec.Format), done, total) }
	switch spec.Format {
	case Tar:
		err = writeTar(ctx, tree, partial, progress)
	case ISO:
		err = writeISO(ctx, tree, partial, spec.Label, progress)
	case Raw:
		err = writeRaw(ctx, tree, partial, spec.Label, progress)
	}
	if err != nil {
		return nil, fmt.Errorf("media: write %s: %w", out, err)
	}
	size, err := syncFile(partial)
	if err != nil {
		return nil, fmt.Errorf("media: write %s: %w", out, err)
	}
	if err := os.Rename(partial, out); err != nil {
		return nil, fmt.Errorf("media: %w", err)
	}
	if err := atomicfile.SyncDir(filepath.Dir(out)); err != nil {
		return nil, fmt.Errorf("media: %w", err)
	}
	return &Result{Format: spec.Format, Files: st.files, Bytes: st.bytes, Size: size}, nil
}

// stage writes the tree.
func (spec *Spec) stage(ctx context.Context, st *stager, imageDigest string) error {
	archs := make([]string, 0, len(spec.Binaries))
	for a := range spec.Binaries {
		archs = append(archs, a)
	}
	slices.Sort(archs)
	for _, a := range archs {
		if err := st.copyFile(ctx, path.Join(BinDir, BinaryName(a)), 0o755, spec.Binaries[a]); err != nil {
			return fmt.Errorf("media: binary for %s: %w", a, err)
		}
	}
	if err := st.image(ctx, spec.Store, spec.Image, func(done, total int64) { spec.Progress("image", done, total) }); err != nil {
		return fmt.Errorf("media: %w", err)
	}
	h := sha256.New()
	h.Write(spec.AgentConfig)
	h.Write([]byte(imageDigest))
	id := "drove-" + hex.EncodeToString(h.Sum(nil))[:16]
	for _, f := range []struct {
		rel     string
		mode    os.FileMode
		content []byte
	}{
		{AgentConfig, 0o644, spec.AgentConfig},
		{TokenFile, 0o600, spec.Token},
		{InstallSh, 0o755, installScript},
		{UserData, 0o644, userData(spec.Label)},
		{MetaData, 0o644, metaData(id)},
	} {
		if err := st.writeBytes(ctx, f.rel, f.mode, f.content); err != nil {
			return fmt.Errorf("media: %w", err)
		}
	}
	if err := st.manifest(ctx); err != nil {
		return fmt.Errorf("media: %w", err)
	}
	return nil
}

// syncFile flushes a written file and returns its size.
func syncFile(p string) (int64, error) {
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return 0, fmt.Errorf("sync: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

// copyChunk is how much is handed to a filesystem writer at once: go-diskfs
// walks the file's cluster chain and rewrites the FAT on every Write, so
// few large writes are much faster than many small ones.
const copyChunk = 8 << 20

// copyIn copies src into w in copyChunk pieces, reporting each.
func copyIn(ctx context.Context, w io.Writer, src io.Reader, buf []byte, step func(int64)) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := io.ReadFull(src, buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
			step(int64(n))
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
