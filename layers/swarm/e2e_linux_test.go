package swarm

import (
	"context"
	"io"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/drove-project/drove/layers/store"
)

// TestDeliverThroughPartialsThenUnpack moves an image from one store to
// another the way the agent will: manifests from ImageBlobs, pieces chosen
// by a Picker, read from the source, written into Partials (one corrupted
// on the way and refused), committed, then unpacked.
func TestDeliverThroughPartialsThenUnpack(t *testing.T) {
	ctx := context.Background()
	src, err := store.Open(t.TempDir())
	must(t, err)
	dst, err := store.Open(t.TempDir())
	must(t, err)
	img, _ := twoLayerImage(t, src)
	blobs, err := ImageBlobs(ctx, src, img, mib)
	must(t, err)

	partDir := t.TempDir()
	partials := map[string]*Partial{}
	seedBits := map[string]Bitfield{}
	for _, bp := range blobs {
		p, err := OpenPartial(partDir, bp)
		must(t, err)
		partials[bp.Digest] = p
		seedBits[bp.Digest] = FullBitfield(len(bp.Pieces))
	}
	pk := NewPicker(blobs, nil, seeded(9))
	pk.SetPeer("seed", seedBits)
	corrupted := false
	for {
		blob, i, ok := pk.Next("seed")
		if !ok {
			break
		}
		p := partials[blob]
		h, _ := v1.NewHash(blob)
		f, err := src.OpenBlob(h)
		must(t, err)
		buf := make([]byte, PieceLen(p.Pieces(), i))
		_, err = f.ReadAt(buf, PieceOffset(p.Pieces(), i))
		f.Close()
		if err != nil && err != io.EOF {
			t.Fatal(err)
		}
		if !corrupted {
			corrupted = true
			buf[0] ^= 0xff
			if err := p.WritePiece(i, buf); err == nil {
				t.Fatal("a corrupted piece was accepted")
			}
			pk.Release("seed", blob, i)
			continue
		}
		must(t, p.WritePiece(i, buf))
		pk.Done(blob, i)
	}
	if !pk.Complete() {
		t.Fatalf("%d pieces missing", pk.Missing())
	}
	for _, bp := range blobs {
		must(t, partials[bp.Digest].Adopt(ctx, dst))
		must(t, partials[bp.Digest].Remove())
	}
	dest := filepath.Join(t.TempDir(), "rootfs")
	must(t, Unpack(ctx, dst, img, dest))
	checkTree(t, dest)
}
