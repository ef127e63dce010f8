package swarm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/drove-project/drove/internal/atomicfile"
	"github.com/drove-project/drove/layers/store"
	"github.com/drove-project/drove/protocol"
)

// Partial is a blob being received piece by piece. It lives in two files
// under its directory: <hex>.part, the blob's bytes at their offsets
// (preallocated to the blob's size), and <hex>.have, the Bitfield of the
// pieces verified so far, replaced by rename after each piece. A Partial is
// safe for concurrent use; WritePiece may run for different pieces at once.
type Partial struct {
	bp       protocol.BlobPieces
	partPath string
	havePath string
	f        *os.File

	mu        sync.Mutex // guards the fields below
	have      Bitfield
	haveBytes int64
	gen       uint64 // bumped by every new piece
	dropped   []int
	committed bool

	persistMu sync.Mutex // serialises writes of the .have file
	persisted uint64     // gen of the last .have written
	removed   bool       // files deleted: write no more
}

// OpenPartial opens, or starts, the partial blob bp under dir. The pieces
// the .have file marks are re-hashed: any that no longer match are
// forgotten and listed by Dropped. A missing or unreadable .have file means
// no piece is held. bp must pass Validate.
func OpenPartial(dir string, bp protocol.BlobPieces) (*Partial, error) {
	if err := Validate(bp); err != nil {
		return nil, err
	}
	hexName := strings.TrimPrefix(bp.Digest, "sha256:")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("open partial blob %s: %w", bp.Digest, err)
	}
	p := &Partial{
		bp:       bp,
		partPath: filepath.Join(dir, hexName+".part"),
		havePath: filepath.Join(dir, hexName+".have"),
		have:     NewBitfield(len(bp.Pieces)),
	}
	removeHaveTemps(p.havePath)
	f, err := os.OpenFile(p.partPath, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open partial blob %s: %w", bp.Digest, err)
	}
	p.f = f
	if err := p.open(); err != nil {
		f.Close()
		return nil, fmt.Errorf("open partial blob %s: %w", bp.Digest, err)
	}
	return p, nil
}

// open sizes the .part file, loads the .have file and re-verifies it.
func (p *Partial) open() error {
	st, err := p.f.Stat()
	if err != nil {
		return err
	}
	if st.Size() > p.bp.Size {
		if err := p.f.Truncate(p.bp.Size); err != nil {
			return fmt.Errorf("truncate %s: %w", p.partPath, err)
		}
	}
	if st.Size() != p.bp.Size {
		if err := preallocate(p.f, p.bp.Size); err != nil {
			return fmt.Errorf("preallocate %s: %w", p.partPath, err)
		}
	}
	raw, err := os.ReadFile(p.havePath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", p.havePath, err)
	}
	marked, err := BitfieldFrom(raw, len(p.bp.Pieces))
	if err != nil {
		// Written by rename, so never torn by a crash: another blob's file
		// or disk damage. Start over rather than trust it.
		return p.persist()
	}
	buf := make([]byte, min(p.bp.PieceSize, p.bp.Size))
	for i := range p.bp.Pieces {
		if !marked.Has(i) {
			continue
		}
		b := buf[:PieceLen(p.bp, i)]
		if _, err := p.f.ReadAt(b, PieceOffset(p.bp, i)); err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("verify piece %d: %w", i, err)
		}
		if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != p.bp.Pieces[i] {
			p.dropped = append(p.dropped, i)
			continue
		}
		p.have.Set(i)
		p.haveBytes += int64(len(b))
	}
	if len(p.dropped) > 0 {
		return p.persist()
	}
	return nil
}

// removeHaveTemps removes temporary .have files a crash left behind.
func removeHaveTemps(havePath string) {
	old, _ := filepath.Glob(filepath.Join(filepath.Dir(havePath), "."+filepath.Base(havePath)+".tmp-*"))
	for _, o := range old {
		os.Remove(o)
	}
}

// Pieces is the blob's piece manifest.
func (p *Partial) Pieces() protocol.BlobPieces { return p.bp }

// Have returns a copy of the bitfield of verified pieces.
func (p *Partial) Have() Bitfield {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.have.Clone()
}

// Has reports whether piece i is verified (without copying the bitfield,
// as Have does: servers ask this for every unit they send).
func (p *Partial) Has(i int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.have.Has(i)
}

// HaveBytes is the number of bytes in verified pieces.
func (p *Partial) HaveBytes() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.haveBytes
}

// Dropped lists the pieces the .have file marked that failed verification
// when the Partial was opened (for the caller to log).
func (p *Partial) Dropped() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]int(nil), p.dropped...)
}

// Complete reports whether every piece is verified.
func (p *Partial) Complete() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.have.Full()
}

// WritePiece stores piece i after checking that data is as long as the
// piece and hashes to its manifest entry; otherwise it fails with
// ErrBadPiece and writes nothing. Writing a piece already held is a no-op.
// Once the bytes are written the piece is marked held and the .have file
// replaced; if that replacement fails the piece stays held in memory and
// the error says its progress may not survive a restart.
func (p *Partial) WritePiece(i int, data []byte) error {
	return p.WritePieceParts(i, [][]byte{data})
}

// WritePieceParts is WritePiece for a piece that arrived in parts (its
// transfer units, in order): they are hashed and written as they lie,
// never copied into one buffer.
func (p *Partial) WritePieceParts(i int, parts [][]byte) error {
	if i < 0 || i >= len(p.bp.Pieces) {
		return fmt.Errorf("blob %s: piece %d of %d: %w", p.bp.Digest, i, len(p.bp.Pieces), ErrBadPiece)
	}
	var size int64
	h := sha256.New()
	for _, part := range parts {
		size += int64(len(part))
		h.Write(part)
	}
	if n := PieceLen(p.bp, i); size != n {
		return fmt.Errorf("blob %s: piece %d has %d bytes, want %d: %w", p.bp.Digest, i, size, n, ErrBadPiece)
	}
	if sum := h.Sum(nil); hex.EncodeToString(sum) != p.bp.Pieces[i] {
		return fmt.Errorf("blob %s: piece %d hashes to %x, want %s: %w", p.bp.Digest, i, sum, p.bp.Pieces[i], ErrBadPiece)
	}
	p.mu.Lock()
	held, committed := p.have.Has(i), p.committed
	p.mu.Unlock()
	if held {
		return nil
	}
	if committed {
		return fmt.Errorf("blob %s: piece %d: partial blob already committed: %w", p.bp.Digest, i, os.ErrClosed)
	}
	off := PieceOffset(p.bp, i)
	for _, part := range parts {
		if _, err := p.f.WriteAt(part, off); err != nil {
			return fmt.Errorf("blob %s: write piece %d: %w", p.bp.Digest, i, err)
		}
		off += int64(len(part))
	}
	p.mu.Lock()
	if p.have.Has(i) { // written twice at once: the other call marks it
		p.mu.Unlock()
		return nil
	}
	p.have.Set(i)
	p.haveBytes += size
	p.gen++
	mine := p.gen
	p.mu.Unlock()
	if err := p.persistUpTo(mine); err != nil {
		return fmt.Errorf("blob %s: piece %d: %w", p.bp.Digest, i, err)
	}
	return nil
}

// persistUpTo makes sure the .have file includes every piece marked up to
// generation gen. Writers that wait while another writes find their piece
// already in that file and return at once, so a burst of pieces costs few
// file replacements.
func (p *Partial) persistUpTo(gen uint64) error {
	p.persistMu.Lock()
	defer p.persistMu.Unlock()
	if p.persisted >= gen {
		return nil
	}
	if p.removed {
		return fmt.Errorf("save piece bitfield: partial blob removed: %w", os.ErrClosed)
	}
	p.mu.Lock()
	b, now := p.have.Bytes(), p.gen
	p.mu.Unlock()
	if err := atomicfile.WriteFile(p.havePath, b, 0o644); err != nil {
		return fmt.Errorf("save piece bitfield: %w", err)
	}
	p.persisted = now
	return nil
}

// persist writes the current bitfield (at open, before other users).
func (p *Partial) persist() error {
	if err := atomicfile.WriteFile(p.havePath, p.have.Bytes(), 0o644); err != nil {
		return fmt.Errorf("save piece bitfield: %w", err)
	}
	return nil
}

// ReadAt reads the blob's bytes at off. Only bytes of pieces Have reports
// are meaningful: the caller checks before serving them.
func (p *Partial) ReadAt(b []byte, off int64) (int, error) {
	n, err := p.f.ReadAt(b, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return n, fmt.Errorf("blob %s: read at %d: %w", p.bp.Digest, off, err)
	}
	return n, err
}

// Adopt moves the complete blob into the content store: the store hashes
// the .part file whole and renames it into place (store.AdoptBlob; across
// filesystems it copies it through store.WriteBlob). The Partial stays
// open and ReadAt keeps answering from the same file until Remove, so a
// node can go on serving the blob while it is hashed; Remove deletes the
// Partial's files once nothing reads it. If the store already
// holds the blob, Adopt does nothing, complete or not; calling it again
// after success is a no-op. A blob still missing pieces fails with
// ErrIncomplete. If the verified pieces do not make up the blob's digest
// (the manifest lied), the error wraps ErrDigestMismatch and the files stay
// for the caller to Remove.
func (p *Partial) Adopt(ctx context.Context, s *store.Store) error {
	h, err := v1.NewHash(p.bp.Digest)
	if err != nil {
		return fmt.Errorf("commit blob %s: %w", p.bp.Digest, err)
	}
	p.mu.Lock()
	complete, committed := p.have.Full(), p.committed
	p.mu.Unlock()
	if committed {
		if s.HasBlob(h) {
			return nil
		}
		return fmt.Errorf("commit blob %s: committed before but gone from the store: %w", h, store.ErrNotFound)
	}
	if !s.HasBlob(h) {
		if !complete {
			return fmt.Errorf("commit blob %s: %d of %d pieces: %w", h, p.Have().Count(), len(p.bp.Pieces), ErrIncomplete)
		}
		// Move the .part file into the store (no second copy on disk);
		// across filesystems, copy it.
		if err := s.AdoptBlob(ctx, p.partPath, h); err != nil {
			if errors.Is(err, store.ErrDigestMismatch) {
				return fmt.Errorf("commit blob %s: %w", h, err)
			}
			if _, _, err := s.WriteBlob(ctx, io.NewSectionReader(p.f, 0, p.bp.Size), h); err != nil {
				return fmt.Errorf("commit blob %s: %w", h, err)
			}
		}
	}
	p.mu.Lock()
	p.committed = true
	p.mu.Unlock()
	return nil
}

// Close closes the .part file, keeping both files for a later OpenPartial.
func (p *Partial) Close() error {
	if err := p.f.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
		return fmt.Errorf("close partial blob %s: %w", p.bp.Digest, err)
	}
	return nil
}

// Remove closes the Partial and deletes its files.
func (p *Partial) Remove() error {
	if err := p.Close(); err != nil {
		return err
	}
	p.persistMu.Lock() // no .have replacement may land after the removal
	defer p.persistMu.Unlock()
	p.removed = true
	for _, name := range []string{p.partPath, p.havePath} {
		if err := os.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove partial blob %s: %w", p.bp.Digest, err)
		}
	}
	removeHaveTemps(p.havePath)
	return atomicfile.SyncDir(filepath.Dir(p.partPath))
}
