package layer

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/types"
)

// sampleTree makes a directory with every kind of entry WriteLayer keeps.
func sampleTree(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "src")
	mt := time.Unix(1700000000, 123456789)
	writeFile(t, filepath.Join(dir, "bin/tool"), "#!/bin/sh\necho hi\n", 0o755, mt)
	writeFile(t, filepath.Join(dir, "bin/suid"), "s", 0o755|fs.ModeSetuid, mt)
	writeFile(t, filepath.Join(dir, "etc/conf.yaml"), "a: 1\n", 0o640, mt.Add(time.Hour))
	writeFile(t, filepath.Join(dir, "etc/empty"), "", 0o600, mt)
	big := make([]byte, 3*chunkSize+17)
	_, _ = rand.Read(big)
	writeFile(t, filepath.Join(dir, "data/big.bin"), string(big), 0o644, mt)
	must(t, os.Link(filepath.Join(dir, "data/big.bin"), filepath.Join(dir, "data/big.link")))
	must(t, os.Symlink("../etc/conf.yaml", filepath.Join(dir, "bin/conf")))
	must(t, os.Symlink("/nonexistent/abs", filepath.Join(dir, "dangling")))
	must(t, os.MkdirAll(filepath.Join(dir, "emptydir"), 0o700))
	must(t, os.Chmod(filepath.Join(dir, "etc"), 0o750))
	for _, d := range []string{"bin", "etc", "data", "emptydir"} {
		must(t, os.Chtimes(filepath.Join(dir, d), mt, mt))
	}
	return dir
}

func TestWriteLayerRoundTrip(t *testing.T) {
	src := sampleTree(t)
	entries, err := ResolveCopy(src, []string{"."}, "/opt/app/")
	must(t, err)
	for _, c := range []Compression{"", Zstd, Gzip, None} {
		t.Run(string(c), func(t *testing.T) {
			var buf bytes.Buffer
			res, err := WriteLayer(context.Background(), &buf, entries, Options{Compression: c})
			must(t, err)

			sum := sha256.Sum256(buf.Bytes())
			if res.Digest.Hex != hex.EncodeToString(sum[:]) || res.Size != int64(buf.Len()) {
				t.Errorf("digest/size %v %d do not match the bytes written", res.Digest, res.Size)
			}
			rc, err := Decompress(bytes.NewReader(buf.Bytes()))
			must(t, err)
			raw, err := io.ReadAll(rc)
			must(t, err)
			rsum := sha256.Sum256(raw)
			if res.DiffID.Hex != hex.EncodeToString(rsum[:]) {
				t.Errorf("diffID %v does not match the tar", res.DiffID)
			}
			wantMT := map[Compression]types.MediaType{"": types.OCILayerZStd, Zstd: types.OCILayerZStd,
				Gzip: types.OCILayer, None: types.OCIUncompressedLayer}[c]
			if res.MediaType != wantMT {
				t.Errorf("media type %s, want %s", res.MediaType, wantMT)
			}

			dst := t.TempDir()
			applyBytes(t, dst, buf.Bytes())
			want := readTree(t, src)
			got := readTree(t, filepath.Join(dst, "opt/app"))
			for p, n := range want { // COPY makes everything root's
				n.UID, n.GID = 0, 0
				want[p] = n
			}
			sameTree(t, want, got)

			var a, b syscall.Stat_t
			must(t, syscall.Stat(filepath.Join(dst, "opt/app/data/big.bin"), &a))
			must(t, syscall.Stat(filepath.Join(dst, "opt/app/data/big.link"), &b))
			if a.Ino != b.Ino {
				t.Error("hard link not kept")
			}
		})
	}
}

func TestWriteLayerHeaders(t *testing.T) {
	src := sampleTree(t)
	entries, err := ResolveCopy(src, []string{"."}, "/opt/app/")
	must(t, err)
	var buf bytes.Buffer
	_, err = WriteLayer(context.Background(), &buf, entries, Options{Compression: None})
	must(t, err)
	hs := tarHeaders(t, buf.Bytes())
	var names []string
	for _, h := range hs {
		names = append(names, h.Name)
		if h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" {
			t.Errorf("%s: owner %d/%d %q/%q, want 0/0 and no names", h.Name, h.Uid, h.Gid, h.Uname, h.Gname)
		}
		if h.ModTime.Nanosecond() != 0 || !h.AccessTime.IsZero() || !h.ChangeTime.IsZero() {
			t.Errorf("%s: times %v %v %v, want whole-second mtime only", h.Name, h.ModTime, h.AccessTime, h.ChangeTime)
		}
		if len(h.PAXRecords) != 0 {
			t.Errorf("%s: PAX records %v", h.Name, h.PAXRecords)
		}
	}
	want := []string{"opt/", "opt/app/", "opt/app/bin/", "opt/app/bin/conf", "opt/app/bin/suid", "opt/app/bin/tool",
		"opt/app/dangling", "opt/app/data/", "opt/app/data/big.bin", "opt/app/data/big.link", "opt/app/emptydir/",
		"opt/app/etc/", "opt/app/etc/conf.yaml", "opt/app/etc/empty"}
	if len(names) != len(want) {
		t.Fatalf("entries %q\nwant %q", names, want)
	}
	for i := range want {
		if names[i] != want[i] {
			t.Fatalf("entries %q\nwant %q", names, want)
		}
	}
	if h := hs[0]; h.Typeflag != tar.TypeDir || h.Mode != 0o755 || h.ModTime.Unix() != 0 {
		t.Errorf("synthesised parent %s: type %c mode %o mtime %v", h.Name, h.Typeflag, h.Mode, h.ModTime)
	}
	if h := hs[9]; h.Typeflag != tar.TypeLink || h.Linkname != "opt/app/data/big.bin" {
		t.Errorf("%s: type %c link %q, want hard link to big.bin", h.Name, h.Typeflag, h.Linkname)
	}
	if h := hs[4]; h.Mode != 0o4755 {
		t.Errorf("%s: mode %o, want 4755", h.Name, h.Mode)
	}
}

func TestWriteLayerLongNamesStayDeterministic(t *testing.T) {
	dir := t.TempDir()
	long := filepath.Join(dir, string(bytes.Repeat([]byte("n"), 200)))
	writeFile(t, long, "x", 0o644, time.Unix(5, 0))
	entries := []Entry{{Src: long, Dest: "d/" + filepath.Base(long)}}
	var a, b bytes.Buffer
	_, err := WriteLayer(context.Background(), &a, entries, Options{Compression: None})
	must(t, err)
	_, err = WriteLayer(context.Background(), &b, entries, Options{Compression: None})
	must(t, err)
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("two writes of a long name differ")
	}
	hs := tarHeaders(t, a.Bytes())
	if got := hs[len(hs)-1].Name; got != "d/"+filepath.Base(long) {
		t.Errorf("long name read back as %q", got)
	}
}

func TestWriteLayerDeterministic(t *testing.T) {
	src := sampleTree(t)
	copyDir := filepath.Join(t.TempDir(), "copy")
	must(t, CopyTree(context.Background(), src, copyDir))
	for _, c := range []Compression{Zstd, Gzip, None} {
		t.Run(string(c), func(t *testing.T) {
			digest := func(dir string) string {
				entries, err := ResolveCopy(dir, []string{"."}, "/x/")
				must(t, err)
				res, err := WriteLayer(context.Background(), io.Discard, entries, Options{Compression: c})
				must(t, err)
				return res.Digest.String()
			}
			first := digest(src)
			// Touch atime and ctime (chmod there and back): neither is stored.
			p := filepath.Join(src, "etc/conf.yaml")
			fi, err := os.Stat(p)
			must(t, err)
			must(t, os.Chtimes(p, time.Now(), fi.ModTime()))
			must(t, os.Chmod(p, 0o600))
			must(t, os.Chmod(p, fi.Mode()))
			if again := digest(src); again != first {
				t.Errorf("second write %s, first %s", again, first)
			}
			if other := digest(copyDir); other != first {
				t.Errorf("copy elsewhere gives %s, original %s", other, first)
			}
		})
	}
}

// The zstd encoder's output must not depend on how many goroutines it uses
// (above one), or digests would depend on the builder's core count.
func TestZstdOutputIndependentOfConcurrency(t *testing.T) {
	data := make([]byte, 40<<20)
	for i := range data {
		data[i] = byte(i*7) ^ byte(i>>11)
	}
	_, _ = rand.Read(data[:8<<20])
	var outs [][]byte
	for _, procs := range []int{1, 2, 7} {
		var buf bytes.Buffer
		old := zstdProcs
		zstdProcs = func() int { return procs }
		w, err := newCompressor(Zstd, &buf)
		zstdProcs = old
		must(t, err)
		_, err = w.Write(data)
		must(t, err)
		must(t, w.Close())
		outs = append(outs, buf.Bytes())
	}
	for i := 1; i < len(outs); i++ {
		if !bytes.Equal(outs[0], outs[i]) {
			t.Errorf("zstd output differs between concurrency settings (case %d)", i)
		}
	}
}

func TestWriteLayerFileHashes(t *testing.T) {
	src := sampleTree(t)
	entries, err := ResolveCopy(src, []string{"."}, "/")
	must(t, err)
	res, err := WriteLayer(context.Background(), io.Discard, entries, Options{})
	must(t, err)
	n := 0
	for _, e := range entries {
		fi, err := os.Lstat(e.Src)
		must(t, err)
		if !fi.Mode().IsRegular() {
			if _, ok := res.Files[e.Src]; ok {
				t.Errorf("hash recorded for non-file %s", e.Src)
			}
			continue
		}
		n++
		b, err := os.ReadFile(e.Src)
		must(t, err)
		sum := sha256.Sum256(b)
		if got := res.Files[e.Src]; got.Hex != hex.EncodeToString(sum[:]) {
			t.Errorf("%s: hash %v, want sha256 %x", e.Src, got, sum)
		}
	}
	if n != 6 || len(res.Files) != n {
		t.Errorf("%d hashes for %d files", len(res.Files), n)
	}
}

func TestWriteLayerErrors(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "f"), "x", 0o644, time.Unix(1, 0))
	tests := []struct {
		name    string
		entries []Entry
		opts    Options
	}{
		{"missing source", []Entry{{Src: filepath.Join(dir, "nope"), Dest: "a"}}, Options{}},
		{"entry below a file", []Entry{{Src: filepath.Join(dir, "f"), Dest: "a"}, {Src: filepath.Join(dir, "f"), Dest: "a/b"}}, Options{}},
		{"root as destination", []Entry{{Src: dir, Dest: "/"}}, Options{}},
		{"unknown compression", []Entry{{Src: filepath.Join(dir, "f"), Dest: "a"}}, Options{Compression: "lz4"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := WriteLayer(context.Background(), io.Discard, tt.entries, tt.opts); err == nil {
				t.Error("no error")
			}
		})
	}
}

func TestWriteLayerCancelled(t *testing.T) {
	src := sampleTree(t)
	entries, err := ResolveCopy(src, []string{"."}, "/")
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := WriteLayer(ctx, io.Discard, entries, Options{}); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

type failWriter struct{ after int }

func (f *failWriter) Write(p []byte) (int, error) {
	if f.after -= len(p); f.after < 0 {
		return 0, os.ErrClosed
	}
	return len(p), nil
}

func TestWriteLayerDestinationError(t *testing.T) {
	src := sampleTree(t)
	entries, err := ResolveCopy(src, []string{"."}, "/")
	must(t, err)
	for _, c := range []Compression{Zstd, Gzip, None} {
		if _, err := WriteLayer(context.Background(), &failWriter{after: 1000}, entries, Options{Compression: c}); err == nil {
			t.Errorf("%s: no error from a failing writer", c)
		}
	}
}
