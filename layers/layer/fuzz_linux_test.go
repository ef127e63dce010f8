package layer

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// applySeeds are hostile and ordinary layers; they are also committed as
// files under testdata/fuzz/FuzzApply (see TestFuzzCorpusCommitted).
func applySeeds(t testing.TB) map[string][]byte {
	return map[string][]byte{
		"plain": makeTar(t,
			tEnt{name: "d/", typ: tar.TypeDir},
			tEnt{name: "d/f", body: "content"},
			tEnt{name: "d/l", typ: tar.TypeSymlink, link: "f"},
			tEnt{name: "d/h", typ: tar.TypeLink, link: "d/f"},
			tEnt{name: "p", typ: tar.TypeFifo}),
		"dotdot":          makeTar(t, tEnt{name: "../sentinel/x", body: "evil"}),
		"dotdot-middle":   makeTar(t, tEnt{name: "a/b/../../../sentinel/x", body: "evil"}),
		"absolute":        makeTar(t, tEnt{name: "/etc/passwd", body: "evil"}),
		"link-dotdot":     makeTar(t, tEnt{name: "a", typ: tar.TypeSymlink, link: "../sentinel"}, tEnt{name: "a/x", body: "evil"}),
		"link-absolute":   makeTar(t, tEnt{name: "a", typ: tar.TypeSymlink, link: "/etc"}, tEnt{name: "a/passwd", body: "evil"}),
		"link-chain":      makeTar(t, tEnt{name: "a", typ: tar.TypeSymlink, link: "b/.."}, tEnt{name: "b", typ: tar.TypeSymlink, link: "../.."}, tEnt{name: "a/sentinel/x", body: "evil"}),
		"link-loop":       makeTar(t, tEnt{name: "a", typ: tar.TypeSymlink, link: "b"}, tEnt{name: "b", typ: tar.TypeSymlink, link: "a"}, tEnt{name: "a/x", body: "x"}),
		"hardlink-out":    makeTar(t, tEnt{name: "h", typ: tar.TypeLink, link: "../sentinel/x"}),
		"hardlink-via":    makeTar(t, tEnt{name: "a", typ: tar.TypeSymlink, link: "/"}, tEnt{name: "h", typ: tar.TypeLink, link: "a/../sentinel"}),
		"final-link":      makeTar(t, tEnt{name: "p", typ: tar.TypeSymlink, link: "../sentinel/x"}, tEnt{name: "p", body: "evil"}),
		"dir-over-link":   makeTar(t, tEnt{name: "p", typ: tar.TypeSymlink, link: "../sentinel"}, tEnt{name: "p/", typ: tar.TypeDir, mode: 0o700}, tEnt{name: "p/x", body: "x"}),
		"whiteouts":       makeTar(t, tEnt{name: "d/", typ: tar.TypeDir}, tEnt{name: "d/f", body: "f"}, tEnt{name: "d/.wh.f"}, tEnt{name: ".wh.d"}, tEnt{name: "e/.wh..wh..opq"}, tEnt{name: ".wh..wh..opq"}),
		"whiteout-link":   makeTar(t, tEnt{name: "a", typ: tar.TypeSymlink, link: "../sentinel"}, tEnt{name: "a/.wh..wh..opq"}, tEnt{name: ".wh.a/x"}),
		"whiteout-dotdot": makeTar(t, tEnt{name: "../.wh.sentinel"}),
		"whiteout-parent": makeTar(t, tEnt{name: ".wh..."}),
		"whiteout-self":   makeTar(t, tEnt{name: "d/", typ: tar.TypeDir}, tEnt{name: "d/.wh..."}, tEnt{name: "d/.wh."}, tEnt{name: "d/.wh.."}),
		"replace-types":   makeTar(t, tEnt{name: "x/", typ: tar.TypeDir}, tEnt{name: "x/y", body: "y"}, tEnt{name: "x", body: "file"}, tEnt{name: "x", typ: tar.TypeSymlink, link: "/"}, tEnt{name: "x/", typ: tar.TypeDir}),
		"sparse":          sparseTar(t),
		"overlay-whiteouts": makeTar(t, tEnt{name: "d/", typ: tar.TypeDir, mode: 0o555}, tEnt{name: "d/.wh.f"}, tEnt{name: ".wh.e"},
			tEnt{name: "e/", typ: tar.TypeDir}, tEnt{name: "e/g", body: "g"}, tEnt{name: "o/.wh..wh..opq"}, tEnt{name: "o/.wh.x/y", body: "y"}),
		"overlay-whiteout-links": makeTar(t, tEnt{name: "a", typ: tar.TypeSymlink, link: "../sentinel"}, tEnt{name: "b", typ: tar.TypeSymlink, link: "/../sentinel/x"},
			tEnt{name: "a/.wh.x"}, tEnt{name: "b/.wh..wh..opq"}, tEnt{name: "f", body: "f"}, tEnt{name: "f/.wh.x"}, tEnt{name: "a/b/.wh..wh..opq"}),
	}
}

// fuzzScratch is where FuzzApply makes its directories: a memory file
// system when there is one (each run creates and removes a tree, which is
// several times faster there), else the test's temporary directory.
func fuzzScratch(f *testing.F) string {
	if d, err := os.MkdirTemp("/dev/shm", "drove-fuzz-"); err == nil {
		f.Cleanup(func() { os.RemoveAll(d) })
		return d
	}
	return f.TempDir()
}

// makeWritable lets the test's cleanup remove what a layer made read-only.
func makeWritable(dir string) {
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o700)
		}
		return nil
	})
}

// FuzzApply unpacks each layer with Apply and with ApplyOverlayLower into
// empty directories beside a sentinel one that neither may touch. A layer
// without whiteouts must come out of both the same.
func FuzzApply(f *testing.F) {
	for _, seed := range applySeeds(f) {
		f.Add(seed)
	}
	scratch := fuzzScratch(f)
	f.Fuzz(func(t *testing.T, layer []byte) {
		base, err := os.MkdirTemp(scratch, "apply")
		must(t, err)
		defer os.RemoveAll(base)
		root, lower, sentinel := filepath.Join(base, "root"), filepath.Join(base, "lower"), filepath.Join(base, "sentinel")
		for _, d := range []string{root, lower, sentinel} {
			must(t, os.Mkdir(d, 0o755))
		}
		defer makeWritable(root) // runs before the RemoveAll
		defer makeWritable(lower)
		_, applyErr := Apply(context.Background(), root, bytes.NewReader(layer))
		_, lowerErr := ApplyOverlayLower(context.Background(), lower, bytes.NewReader(layer))

		if entries, err := os.ReadDir(sentinel); err != nil || len(entries) != 0 {
			t.Fatalf("sibling directory touched: %v entries, %v", len(entries), err)
		}
		if entries, err := os.ReadDir(base); err != nil || len(entries) != 3 {
			t.Fatalf("something made beside the roots: %d entries, %v", len(entries), err)
		}
		for _, d := range []string{root, lower} {
			if fi, err := os.Lstat(d); err != nil || !fi.IsDir() {
				t.Fatalf("root %s replaced: %v", d, err)
			}
		}
		if hasWhiteouts(layer) {
			return
		}
		if (applyErr == nil) != (lowerErr == nil) || errors.Is(applyErr, ErrUnsafePath) != errors.Is(lowerErr, ErrUnsafePath) {
			t.Fatalf("no whiteouts, yet Apply: %v, ApplyOverlayLower: %v", applyErr, lowerErr)
		}
		if applyErr == nil {
			sameTree(t, dirsUndated(readTree(t, root)), dirsUndated(readTree(t, lower)))
		}
	})
}

// hasWhiteouts reports whether a layer has a whiteout entry before the
// first that the tar reader or entryPath refuses (where applying stops).
func hasWhiteouts(layer []byte) bool {
	tr := tar.NewReader(bytes.NewReader(layer))
	for {
		h, err := tr.Next()
		if err != nil {
			return false
		}
		p, err := entryPath(h.Name)
		if err != nil {
			return false
		}
		if strings.HasPrefix(path.Base(p), WhiteoutPrefix) {
			return true
		}
	}
}

// dirsUndated clears the mtimes of directories, which for those a layer
// does not list depend on when it was applied.
func dirsUndated(tree map[string]fsNode) map[string]fsNode {
	for p, n := range tree {
		if n.Type == "dir" {
			n.Mtime = 0
			tree[p] = n
		}
	}
	return tree
}

// fuzzCorpus is every committed seed: target -> file name -> file content.
func fuzzCorpus(t testing.TB) map[string]map[string]string {
	encBytes := func(b []byte) string { return fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b) }
	corpus := map[string]map[string]string{"FuzzApply": {}, "FuzzDecompress": {}, "FuzzCleanPath": {}}
	for name, seed := range applySeeds(t) {
		corpus["FuzzApply"][name] = encBytes(seed)
	}
	for name, seed := range decompressSeeds(t) {
		corpus["FuzzDecompress"][name] = encBytes(seed)
	}
	for i, seed := range cleanPathSeeds {
		corpus["FuzzCleanPath"][fmt.Sprintf("seed-%d", i)] = fmt.Sprintf("go test fuzz v1\nstring(%q)\n", seed)
	}
	return corpus
}

// TestFuzzCorpusCommitted checks that the seeds built here are committed
// under testdata/fuzz, where `go test` runs them; DROVE_UPDATE_CORPUS=1
// writes them. Compressed seeds depend on the compressor's version, so only
// their presence is checked.
func TestFuzzCorpusCommitted(t *testing.T) {
	update := os.Getenv("DROVE_UPDATE_CORPUS") != ""
	for target, files := range fuzzCorpus(t) {
		dir := filepath.Join("testdata", "fuzz", target)
		for name, want := range files {
			p := filepath.Join(dir, name)
			if update {
				must(t, os.MkdirAll(dir, 0o755))
				must(t, os.WriteFile(p, []byte(want), 0o644))
				continue
			}
			got, err := os.ReadFile(p)
			exact := target != "FuzzDecompress" || name == "plain"
			if err != nil || !strings.HasPrefix(string(got), "go test fuzz v1\n") || exact && string(got) != want {
				t.Errorf("%s is missing or stale (%v); regenerate with DROVE_UPDATE_CORPUS=1", p, err)
			}
		}
	}
}

// decompressSeeds are layers in each compression and the edge cases.
func decompressSeeds(t testing.TB) map[string][]byte {
	plain := makeTar(t, tEnt{name: "f", body: "hello"})
	var gz, zs bytes.Buffer
	g := gzip.NewWriter(&gz)
	_, _ = g.Write(plain)
	must(t, g.Close())
	z, err := zstd.NewWriter(&zs)
	must(t, err)
	_, _ = z.Write(plain)
	must(t, z.Close())
	return map[string][]byte{
		"plain": plain, "gzip": gz.Bytes(), "zstd": zs.Bytes(),
		"xz": {0xfd, '7', 'z', 'X', 'Z', 0}, "empty": {},
		"gzip-truncated": gz.Bytes()[:20], "zstd-truncated": zs.Bytes()[:10],
	}
}

var cleanPathSeeds = []string{"", "/", "a/b", "../../x", "/a//b/./c/..", "a/../..", "...", "a/", `a\b`}

func FuzzDecompress(f *testing.F) {
	for _, seed := range decompressSeeds(f) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rc, err := Decompress(bytes.NewReader(data))
		if err != nil {
			return
		}
		out, _ := io.ReadAll(io.LimitReader(rc, 4<<20))
		_ = rc.Close()
		if len(data) >= 262 && string(data[257:262]) == "ustar" && !bytes.Equal(out, data) {
			t.Fatal("a plain tar did not pass through unchanged")
		}
	})
}

func FuzzCleanPath(f *testing.F) {
	for _, s := range cleanPathSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := CleanPath(s)
		if strings.HasPrefix(got, "/") || strings.HasSuffix(got, "/") || strings.Contains(got, "//") {
			t.Fatalf("CleanPath(%q) = %q is not clean and relative", s, got)
		}
		for _, c := range strings.Split(got, "/") {
			if c == ".." || c == "." {
				t.Fatalf("CleanPath(%q) = %q keeps %q", s, got, c)
			}
		}
		if again := CleanPath(got); again != got {
			t.Fatalf("CleanPath not idempotent: %q -> %q -> %q", s, got, again)
		}
	})
}
