package agent

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/drove-project/drove/layers/swarm"
	"github.com/drove-project/drove/protocol"
)

// FuzzPeerBitfields feeds arbitrary frames to the decoding of a peer's
// bitfield reply: whatever arrives, the result holds only wanted blobs,
// each with exactly its piece count, equal to what was sent.
func FuzzPeerBitfields(f *testing.F) {
	d1 := "sha256:" + strings.Repeat("1", 64)
	d2 := "sha256:" + strings.Repeat("2", 64)
	for _, bf := range []*protocol.Bitfields{
		{Blobs: map[string][]byte{d1: {0xe0}, d2: {0xff, 0x80}}},
		{Blobs: map[string][]byte{d1: {0xf0}}}, // a bit past the end
		{Blobs: map[string][]byte{d2: {0xff}}}, // a byte short
		{Blobs: map[string][]byte{"sha256:other": {0x01}}},
	} {
		b, _ := protocol.Encode(bf)
		f.Add(b)
	}
	need := map[string]int{d1: 3, d2: 9}
	f.Fuzz(func(t *testing.T, frame []byte) {
		var bf protocol.Bitfields
		if protocol.DecodeAs(frame, &bf) != nil {
			return
		}
		got, err := peerBitfields(&bf, need)
		if err != nil {
			if !errors.Is(err, swarm.ErrBadBitfield) {
				t.Fatalf("error %v is not ErrBadBitfield", err)
			}
			return
		}
		for d, b := range got {
			n, ok := need[d]
			if !ok || b.Len() != n {
				t.Fatalf("blob %s: %d bits, need %v (%v)", d, b.Len(), n, ok)
			}
			if !bytes.Equal(b.Bytes(), bf.Blobs[d]) {
				t.Fatalf("blob %s: bits %x, sent %x", d, b.Bytes(), bf.Blobs[d])
			}
		}
	})
}

// FuzzUnitData feeds arbitrary replies to the reading of a piece reply:
// an error header always gives a *protocol.Error and no bytes; otherwise
// the bytes are exactly as long as asked, or the peer is convicted.
func FuzzUnitData(f *testing.F) {
	f.Add("", "", []byte("abc"), 3)
	f.Add("not_found", "no such piece", []byte{}, 10)
	f.Add("", "message only", []byte("x"), 1)
	f.Add("", "", []byte("short"), 6)
	f.Fuzz(func(t *testing.T, code, msg string, data []byte, want int) {
		hdr := map[string]string{protocol.HeaderCode: code, protocol.HeaderError: msg}
		got, err := unitData(func(k string) string { return hdr[k] }, data, want)
		var perr *protocol.Error
		switch {
		case code != "" || msg != "":
			if !errors.As(err, &perr) || got != nil || (code != "" && string(perr.Code) != code) {
				t.Fatalf("error reply gave %d bytes, %v", len(got), err)
			}
		case len(data) != want:
			if !errors.Is(err, errBadUnit) {
				t.Fatalf("%d bytes for %d: err %v, want errBadUnit", len(data), want, err)
			}
		default:
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("good reply: %v", err)
			}
		}
	})
}

// FuzzReadUnit feeds arbitrary request headers to the serving side: it
// answers either with an error code it may send, or with exactly the
// requested bytes of a verified piece.
func FuzzReadUnit(f *testing.F) {
	const pieceSize = protocol.TransferUnit
	rng := rand.New(rand.NewPCG(1, 2))
	whole := make([]byte, 2*pieceSize+77)
	for i := range whole {
		whole[i] = byte(rng.Uint32())
	}
	part := make([]byte, 2*pieceSize)
	for i := range part {
		part[i] = byte(rng.Uint32())
	}
	dir := f.TempDir()
	ss := &session{dist: protocol.Distribution{ID: "fuzz"}, blobs: map[string]*blobState{}, log: slog.New(slog.DiscardHandler)}
	wbp := manifestOf(f, whole, pieceSize)
	wf := filepath.Join(dir, "whole")
	if err := os.WriteFile(wf, whole, 0o644); err != nil {
		f.Fatal(err)
	}
	file, err := os.Open(wf)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { file.Close() })
	ss.blobs[wbp.Digest] = &blobState{bp: wbp, file: file}
	pbp := manifestOf(f, part, pieceSize)
	p, err := swarm.OpenPartial(filepath.Join(dir, "partial"), pbp)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { p.Close() })
	if err := p.WritePiece(1, part[pieceSize:]); err != nil {
		f.Fatal(err)
	}
	ss.blobs[pbp.Digest] = &blobState{bp: pbp, partial: p}
	content := map[string][]byte{wbp.Digest: whole, pbp.Digest: part}

	f.Add(wbp.Digest, "2", "0", "77")
	f.Add(wbp.Digest, "0", "0", "1048576")
	f.Add(pbp.Digest, "0", "0", "1")
	f.Add(pbp.Digest, "1", "0", "5")
	f.Add("sha256:"+strings.Repeat("0", 64), "0", "0", "1")
	f.Add(wbp.Digest, "-1", "1048576", "0")
	f.Add(wbp.Digest, "99999999999999999999", "", "x")
	buf := make([]byte, protocol.TransferUnit)
	f.Fuzz(func(t *testing.T, blob, piece, offset, length string) {
		hdr := map[string]string{protocol.HeaderBlob: blob, protocol.HeaderPiece: piece, protocol.HeaderOffset: offset, protocol.HeaderLength: length}
		req, perr := ss.parseRequest(func(k string) string { return hdr[k] })
		var got []byte
		if perr == nil {
			got, perr = ss.readUnit(req, buf)
		}
		if perr != nil {
			if perr.Code != protocol.CodeBadRequest && perr.Code != protocol.CodeNotFound {
				t.Fatalf("code %s: %v", perr.Code, perr)
			}
			return
		}
		if blob == pbp.Digest && req.Piece != 1 {
			t.Fatalf("served piece %d of the partial blob, which holds only piece 1", req.Piece)
		}
		start := int64(req.Piece)*pieceSize + req.Offset
		want := content[req.Blob][start : start+int64(req.Length)]
		if !bytes.Equal(got, want) {
			t.Fatalf("served %d bytes that are not the blob's at %d", len(got), start)
		}
	})
}

// manifestOf is the piece manifest of b.
func manifestOf(t testing.TB, b []byte, pieceSize int64) protocol.BlobPieces {
	t.Helper()
	sum := sha256.Sum256(b)
	d := "sha256:" + hex.EncodeToString(sum[:])
	bp, err := swarm.ComputePieces(t.Context(), bytes.NewReader(b), int64(len(b)), pieceSize, d, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v1.NewHash(d); err != nil {
		t.Fatal(err)
	}
	return bp
}
