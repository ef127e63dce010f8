package layer

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
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
		"whiteout-dotdot": makeTar(t, tEnt{name: "../.wh.sentinel"}, tEnt{name: ".wh..."}),
		"replace-types":   makeTar(t, tEnt{name: "x/", typ: tar.TypeDir}, tEnt{name: "x/y", body: "y"}, tEnt{name: "x", body: "file"}, tEnt{name: "x", typ: tar.TypeSymlink, link: "/"}, tEnt{name: "x/", typ: tar.TypeDir}),
		"sparse":          sparseTar(t),
	}
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

func FuzzApply(f *testing.F) {
	for _, seed := range applySeeds(f) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, layer []byte) {
		base := t.TempDir()
		root, sentinel := filepath.Join(base, "root"), filepath.Join(base, "sentinel")
		must(t, os.Mkdir(root, 0o755))
		must(t, os.Mkdir(sentinel, 0o755))
		defer makeWritable(root)
		_, _ = Apply(context.Background(), root, bytes.NewReader(layer))

		if entries, err := os.ReadDir(sentinel); err != nil || len(entries) != 0 {
			t.Fatalf("sibling directory touched: %v entries, %v", len(entries), err)
		}
		if entries, err := os.ReadDir(base); err != nil || len(entries) != 2 {
			t.Fatalf("something made beside the root: %d entries, %v", len(entries), err)
		}
		if fi, err := os.Lstat(root); err != nil || !fi.IsDir() {
			t.Fatalf("root replaced: %v", err)
		}
	})
}

func TestFuzzCorpusCommitted(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzApply")
	update := os.Getenv("DROVE_UPDATE_CORPUS") != ""
	for name, seed := range applySeeds(t) {
		want := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", seed)
		p := filepath.Join(dir, name)
		if update {
			must(t, os.MkdirAll(dir, 0o755))
			must(t, os.WriteFile(p, []byte(want), 0o644))
			continue
		}
		got, err := os.ReadFile(p)
		if err != nil || string(got) != want {
			t.Errorf("%s is missing or stale (%v); regenerate with DROVE_UPDATE_CORPUS=1", p, err)
		}
	}
}

func FuzzDecompress(f *testing.F) {
	plain := makeTar(f, tEnt{name: "f", body: "hello"})
	var gz, zs bytes.Buffer
	g := gzip.NewWriter(&gz)
	_, _ = g.Write(plain)
	_ = g.Close()
	z, _ := zstd.NewWriter(&zs)
	_, _ = z.Write(plain)
	_ = z.Close()
	f.Add(plain)
	f.Add(gz.Bytes())
	f.Add(zs.Bytes())
	f.Add([]byte{0xfd, '7', 'z', 'X', 'Z', 0})
	f.Add([]byte{})
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
	for _, s := range []string{"", "/", "a/b", "../../x", "/a//b/./c/..", "a/../..", "...", "a/"} {
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
