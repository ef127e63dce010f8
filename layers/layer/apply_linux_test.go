package layer

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// lowerLayer is the tree most apply tests start from.
func lowerLayer(t *testing.T) []byte {
	return makeTar(t,
		tEnt{name: "etc/", typ: tar.TypeDir},
		tEnt{name: "etc/keep", body: "keep"},
		tEnt{name: "etc/gone", body: "gone"},
		tEnt{name: "var/", typ: tar.TypeDir},
		tEnt{name: "var/lib/", typ: tar.TypeDir},
		tEnt{name: "var/lib/a", body: "a"},
		tEnt{name: "var/lib/sub/", typ: tar.TypeDir},
		tEnt{name: "var/lib/sub/b", body: "b"},
		tEnt{name: "opt/", typ: tar.TypeDir},
		tEnt{name: "opt/x/", typ: tar.TypeDir},
		tEnt{name: "opt/x/y", body: "y"},
		tEnt{name: "usr/", typ: tar.TypeDir},
		tEnt{name: "usr/lib/", typ: tar.TypeDir},
		tEnt{name: "lib", typ: tar.TypeSymlink, link: "usr/lib"},
	)
}

// treeFiles is the set of paths in dir, with "/" after directories and
// "=content" after files, sorted.
func treeFiles(t *testing.T, dir string) string {
	t.Helper()
	var out []string
	for p, n := range readTree(t, dir) {
		switch n.Type {
		case "dir":
			p += "/"
		case "file":
			b, err := os.ReadFile(filepath.Join(dir, p))
			must(t, err)
			p += "=" + string(b)
		case "symlink":
			p += "->" + n.Link
		}
		out = append(out, p)
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

func TestApplyWhiteouts(t *testing.T) {
	tests := []struct {
		name  string
		layer []tEnt
		want  string
	}{
		{"file whiteout", []tEnt{{name: "etc/.wh.gone"}},
			"etc/ etc/keep=keep lib->usr/lib opt/ opt/x/ opt/x/y=y usr/ usr/lib/ var/ var/lib/ var/lib/a=a var/lib/sub/ var/lib/sub/b=b"},
		{"directory whiteout", []tEnt{{name: "var/.wh.lib"}},
			"etc/ etc/gone=gone etc/keep=keep lib->usr/lib opt/ opt/x/ opt/x/y=y usr/ usr/lib/ var/"},
		{"opaque before new entries", []tEnt{
			{name: "var/lib/", typ: tar.TypeDir},
			{name: "var/lib/.wh..wh..opq"},
			{name: "var/lib/new", body: "n"}},
			"etc/ etc/gone=gone etc/keep=keep lib->usr/lib opt/ opt/x/ opt/x/y=y usr/ usr/lib/ var/ var/lib/ var/lib/new=n"},
		{"opaque after new entries keeps them", []tEnt{
			{name: "var/lib/", typ: tar.TypeDir},
			{name: "var/lib/new", body: "n"},
			{name: "var/lib/sub/", typ: tar.TypeDir},
			{name: "var/lib/sub/c", body: "c"},
			{name: "var/lib/.wh..wh..opq"}},
			"etc/ etc/gone=gone etc/keep=keep lib->usr/lib opt/ opt/x/ opt/x/y=y usr/ usr/lib/ var/ var/lib/ var/lib/new=n var/lib/sub/ var/lib/sub/c=c"},
		{"whiteout of this layer's own file is ignored", []tEnt{
			{name: "etc/new", body: "n"},
			{name: "etc/.wh.new"}},
			"etc/ etc/gone=gone etc/keep=keep etc/new=n lib->usr/lib opt/ opt/x/ opt/x/y=y usr/ usr/lib/ var/ var/lib/ var/lib/a=a var/lib/sub/ var/lib/sub/b=b"},
		{"whiteout then re-create", []tEnt{
			{name: ".wh.opt"},
			{name: "opt", body: "file now"}},
			"etc/ etc/gone=gone etc/keep=keep lib->usr/lib opt=file now usr/ usr/lib/ var/ var/lib/ var/lib/a=a var/lib/sub/ var/lib/sub/b=b"},
		{"whiteout of missing path", []tEnt{{name: "nothere/.wh.x"}, {name: ".wh.nope"}},
			"etc/ etc/gone=gone etc/keep=keep lib->usr/lib opt/ opt/x/ opt/x/y=y usr/ usr/lib/ var/ var/lib/ var/lib/a=a var/lib/sub/ var/lib/sub/b=b"},
		{"whiteout through a link removes the link only", []tEnt{{name: ".wh.lib"}},
			"etc/ etc/gone=gone etc/keep=keep opt/ opt/x/ opt/x/y=y usr/ usr/lib/ var/ var/lib/ var/lib/a=a var/lib/sub/ var/lib/sub/b=b"},
		{"root opaque", []tEnt{{name: ".wh..wh..opq"}, {name: "only", body: "o"}}, "only=o"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			applyBytes(t, dir, lowerLayer(t))
			applyBytes(t, dir, makeTar(t, tt.layer...))
			if got := treeFiles(t, dir); got != tt.want {
				t.Errorf("tree\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestApplyOverwrite(t *testing.T) {
	tests := []struct {
		name  string
		layer []tEnt
		want  string
	}{
		{"file replaces directory", []tEnt{{name: "var/lib", body: "f"}},
			"etc/ etc/gone=gone etc/keep=keep lib->usr/lib opt/ opt/x/ opt/x/y=y usr/ usr/lib/ var/ var/lib=f"},
		{"directory replaces file", []tEnt{{name: "etc/keep/", typ: tar.TypeDir}, {name: "etc/keep/in", body: "i"}},
			"etc/ etc/gone=gone etc/keep/ etc/keep/in=i lib->usr/lib opt/ opt/x/ opt/x/y=y usr/ usr/lib/ var/ var/lib/ var/lib/a=a var/lib/sub/ var/lib/sub/b=b"},
		{"link replaces directory", []tEnt{{name: "opt", typ: tar.TypeSymlink, link: "/etc"}},
			"etc/ etc/gone=gone etc/keep=keep lib->usr/lib opt->/etc usr/ usr/lib/ var/ var/lib/ var/lib/a=a var/lib/sub/ var/lib/sub/b=b"},
		{"directory merges into directory", []tEnt{{name: "opt/x/", typ: tar.TypeDir}, {name: "opt/x/z", body: "z"}},
			"etc/ etc/gone=gone etc/keep=keep lib->usr/lib opt/ opt/x/ opt/x/y=y opt/x/z=z usr/ usr/lib/ var/ var/lib/ var/lib/a=a var/lib/sub/ var/lib/sub/b=b"},
		{"file replaces file", []tEnt{{name: "etc/keep", body: "new"}},
			"etc/ etc/gone=gone etc/keep=new lib->usr/lib opt/ opt/x/ opt/x/y=y usr/ usr/lib/ var/ var/lib/ var/lib/a=a var/lib/sub/ var/lib/sub/b=b"},
		{"file under a link to a directory goes inside the root", []tEnt{{name: "lib/libc.so", body: "c"}},
			"etc/ etc/gone=gone etc/keep=keep lib->usr/lib opt/ opt/x/ opt/x/y=y usr/ usr/lib/ usr/lib/libc.so=c var/ var/lib/ var/lib/a=a var/lib/sub/ var/lib/sub/b=b"},
		{"directory replaces a link", []tEnt{{name: "lib/", typ: tar.TypeDir}, {name: "lib/x", body: "x"}},
			"etc/ etc/gone=gone etc/keep=keep lib/ lib/x=x opt/ opt/x/ opt/x/y=y usr/ usr/lib/ var/ var/lib/ var/lib/a=a var/lib/sub/ var/lib/sub/b=b"},
		{"hard link", []tEnt{{name: "etc/hl", typ: tar.TypeLink, link: "/etc/keep"}},
			"etc/ etc/gone=gone etc/hl=keep etc/keep=keep lib->usr/lib opt/ opt/x/ opt/x/y=y usr/ usr/lib/ var/ var/lib/ var/lib/a=a var/lib/sub/ var/lib/sub/b=b"},
		{"missing parents are made", []tEnt{{name: "new/deep/f", body: "f"}},
			"etc/ etc/gone=gone etc/keep=keep lib->usr/lib new/ new/deep/ new/deep/f=f opt/ opt/x/ opt/x/y=y usr/ usr/lib/ var/ var/lib/ var/lib/a=a var/lib/sub/ var/lib/sub/b=b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			applyBytes(t, dir, lowerLayer(t))
			applyBytes(t, dir, makeTar(t, tt.layer...))
			if got := treeFiles(t, dir); got != tt.want {
				t.Errorf("tree\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

// outsideSetup returns a root to apply into and a sibling directory that
// holds a file the layers try to reach.
func outsideSetup(t *testing.T) (root, outside string) {
	base := t.TempDir()
	root, outside = filepath.Join(base, "root"), filepath.Join(base, "outside")
	must(t, os.Mkdir(root, 0o755))
	must(t, os.Mkdir(outside, 0o755))
	must(t, os.WriteFile(filepath.Join(outside, "passwd"), []byte("original"), 0o644))
	return root, outside
}

func TestApplyStaysInside(t *testing.T) {
	tests := []struct {
		name   string
		layer  func(outside string) []tEnt
		unsafe bool   // the apply must fail with ErrUnsafePath
		inside string // file that must then hold "evil" inside the root
	}{
		{"dot-dot name", func(string) []tEnt { return []tEnt{{name: "../outside/passwd", body: "evil"}} }, true, ""},
		{"dot-dot in the middle", func(string) []tEnt { return []tEnt{{name: "a/../../outside/passwd", body: "evil"}} }, true, ""},
		{"absolute name", func(o string) []tEnt { return []tEnt{{name: o + "/passwd", body: "evil"}} }, false, "OUT/passwd"},
		{"link to absolute dir then write", func(o string) []tEnt {
			return []tEnt{{name: "a", typ: tar.TypeSymlink, link: o}, {name: "a/passwd", body: "evil"}}
		}, false, "OUT/passwd"},
		{"link with dot-dots then write", func(string) []tEnt {
			return []tEnt{{name: "a", typ: tar.TypeSymlink, link: "../../../outside"}, {name: "a/passwd", body: "evil"}}
		}, false, "outside/passwd"},
		{"write through final link replaces the link", func(o string) []tEnt {
			return []tEnt{{name: "p", typ: tar.TypeSymlink, link: o + "/passwd"}, {name: "p", body: "evil"}}
		}, false, "p"},
		{"whiteout of the root's parent", func(string) []tEnt { return []tEnt{{name: ".wh..."}} }, true, ""},
		{"whiteout of a directory's parent", func(string) []tEnt {
			return []tEnt{{name: "d/", typ: tar.TypeDir}, {name: "d/.wh..."}}
		}, true, ""},
		{"whiteout of a directory itself", func(string) []tEnt {
			return []tEnt{{name: "d/", typ: tar.TypeDir}, {name: "d/.wh.."}}
		}, true, ""},
		{"hard link out", func(string) []tEnt {
			return []tEnt{{name: "h", typ: tar.TypeLink, link: "../outside/passwd"}}
		}, true, ""},
		{"hard link through a link", func(o string) []tEnt {
			return []tEnt{{name: "a", typ: tar.TypeSymlink, link: o}, {name: "h", typ: tar.TypeLink, link: "a/passwd"}}
		}, false, ""},
		{"whiteout through a link", func(o string) []tEnt {
			return []tEnt{{name: "a", typ: tar.TypeSymlink, link: o}, {name: "a/.wh.passwd"}}
		}, false, ""},
		{"opaque through a link", func(o string) []tEnt {
			return []tEnt{{name: "a", typ: tar.TypeSymlink, link: o}, {name: "a/.wh..wh..opq"}}
		}, false, ""},
		{"whiteout with a dot-dot name", func(string) []tEnt { return []tEnt{{name: "../outside/.wh.passwd"}} }, true, ""},
		{"opaque with a dot-dot name", func(string) []tEnt { return []tEnt{{name: "d/../../outside/.wh..wh..opq"}} }, true, ""},
		{"whiteout through a link with dot-dots", func(string) []tEnt {
			return []tEnt{{name: "a", typ: tar.TypeSymlink, link: "../../../outside"}, {name: "a/.wh.passwd"}, {name: "a/.wh..wh..opq"}}
		}, false, ""},
		{"directory mode through a link", func(o string) []tEnt {
			return []tEnt{{name: "a", typ: tar.TypeSymlink, link: o}, {name: "a/", typ: tar.TypeDir, mode: 0o700}, {name: "a", typ: tar.TypeSymlink, link: o}}
		}, false, ""},
	}
	for _, tt := range tests {
		for _, fn := range applyFuncs {
			t.Run(fn.name+"/"+tt.name, func(t *testing.T) {
				root, outside := outsideSetup(t)
				_, err := fn.apply(context.Background(), root, bytes.NewReader(makeTar(t, tt.layer(outside)...)))
				if tt.unsafe != errors.Is(err, ErrUnsafePath) {
					t.Fatalf("err = %v, unsafe want %v", err, tt.unsafe)
				}
				if !tt.unsafe && tt.inside != "" && err != nil {
					t.Fatalf("apply: %v", err)
				}
				b, rerr := os.ReadFile(filepath.Join(outside, "passwd"))
				must(t, rerr)
				fi, serr := os.Stat(outside)
				must(t, serr)
				entries, derr := os.ReadDir(outside)
				must(t, derr)
				if string(b) != "original" || fi.Mode().Perm() != 0o755 || len(entries) != 1 {
					t.Fatalf("outside touched: passwd %q, mode %v, %d entries", b, fi.Mode().Perm(), len(entries))
				}
				if fi, err := os.Lstat(root); err != nil || !fi.IsDir() {
					t.Fatalf("root removed or replaced: %v", err)
				}
				if tt.inside != "" {
					p := strings.Replace(tt.inside, "OUT", strings.TrimPrefix(outside, "/"), 1)
					got, err := os.ReadFile(filepath.Join(root, p))
					if err != nil || string(got) != "evil" {
						t.Errorf("inside %s: %q, %v", p, got, err)
					}
				}
			})
		}
	}
}

// applyFuncs are the ways of unpacking a layer that must refuse the same
// names and stay inside their directory.
var applyFuncs = []struct {
	name  string
	apply func(context.Context, string, io.Reader) (int64, error)
}{{"Apply", Apply}, {"ApplyOverlayLower", ApplyOverlayLower}}

func TestApplyMetadata(t *testing.T) {
	dir := t.TempDir()
	t.Cleanup(func() { makeWritable(dir) }) // d is read-only
	layer := makeTar(t,
		tEnt{name: "d/", typ: tar.TypeDir, mode: 0o555, mtime: 1000},
		tEnt{name: "d/f", body: "x", mode: 0o4711, mtime: 2000},
		tEnt{name: "d/l", typ: tar.TypeSymlink, link: "f", mtime: 3000},
		tEnt{name: "d/p", typ: tar.TypeFifo, mode: 0o640, mtime: 4000},
	)
	n, err := Apply(context.Background(), dir, bytes.NewReader(layer))
	must(t, err)
	if n != 1 {
		t.Errorf("applied %d bytes, want 1", n)
	}
	tree := readTree(t, dir)
	want := map[string]fsNode{
		"d":   {Type: "dir", Mode: 0o555, Mtime: 1000},
		"d/f": {Type: "file", Mode: 0o711 | os.ModeSetuid, Mtime: 2000, Content: "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"},
		"d/l": {Type: "symlink", Link: "f", Mtime: 3000},
		"d/p": {Type: "fifo", Mode: 0o640, Mtime: 4000},
	}
	sameTree(t, want, tree)
}

func TestApplyDevicesAsRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("creating device nodes needs root")
	}
	dir := t.TempDir()
	layer := makeTar(t, tEnt{name: "null", typ: tar.TypeChar, mode: 0o666})
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	must(t, tw.WriteHeader(&tar.Header{Name: "null", Typeflag: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 3}))
	must(t, tw.Close())
	layer = buf.Bytes()
	_, err := Apply(context.Background(), dir, bytes.NewReader(layer))
	must(t, err)
	n := readTree(t, dir)["null"]
	if n.Type != "char" || n.Rdev != 1<<8|3 || n.Mode != 0o666 {
		t.Errorf("device node %v", n)
	}
}

func TestApplyUnprivileged(t *testing.T) {
	defer func(f func() int) { geteuid = f }(geteuid)
	geteuid = func() int { return 1000 }
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	must(t, tw.WriteHeader(&tar.Header{Name: "null", Typeflag: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 3}))
	must(t, tw.WriteHeader(&tar.Header{Name: "f", Typeflag: tar.TypeReg, Mode: 0o644, Uid: 4242, Gid: 4242}))
	must(t, tw.Close())
	dir := t.TempDir()
	_, err := Apply(context.Background(), dir, &buf)
	must(t, err)
	if _, err := os.Lstat(filepath.Join(dir, "null")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("device node made without privilege: %v", err)
	}
	fi, err := os.Stat(filepath.Join(dir, "f"))
	must(t, err)
	if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != os.Getuid() {
		t.Errorf("owner %d set without privilege", st.Uid)
	}
}

func TestApplyRejects(t *testing.T) {
	tests := []struct {
		name  string
		layer []byte
		text  string
	}{
		{"sparse", sparseTar(t), "sparse files are not supported"},
		{"garbage", []byte(strings.Repeat("not a tar ", 100)), "read layer tar"},
		{"truncated", makeTar(t, tEnt{name: "f", body: strings.Repeat("x", 2000)})[:1024], "unexpected EOF"},
		{"file below a file", makeTar(t, tEnt{name: "f", body: "x"}, tEnt{name: "f/g", body: "y"}), "not a directory"},
		{"hard link to a directory", makeTar(t, tEnt{name: "d/", typ: tar.TypeDir}, tEnt{name: "h", typ: tar.TypeLink, link: "d"}), "hard link"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Apply(context.Background(), t.TempDir(), bytes.NewReader(tt.layer))
			if err == nil || !strings.Contains(err.Error(), tt.text) {
				t.Errorf("err = %v, want one mentioning %q", err, tt.text)
			}
		})
	}
}

func TestDecompress(t *testing.T) {
	plain := makeTar(t, tEnt{name: "\x1f\x8bname", body: "b"}) // looks like gzip, is a tar
	var gz, zs bytes.Buffer
	g := gzip.NewWriter(&gz)
	_, _ = g.Write(plain)
	must(t, g.Close())
	z, err := zstd.NewWriter(&zs)
	must(t, err)
	_, _ = z.Write(plain)
	must(t, z.Close())
	for name, in := range map[string][]byte{"plain": plain, "gzip": gz.Bytes(), "zstd": zs.Bytes()} {
		t.Run(name, func(t *testing.T) {
			rc, err := Decompress(bytes.NewReader(in))
			must(t, err)
			var out bytes.Buffer
			_, err = out.ReadFrom(rc)
			must(t, err)
			must(t, rc.Close())
			if !bytes.Equal(out.Bytes(), plain) {
				t.Error("decompressed bytes differ from the tar")
			}
		})
	}
	_, err = Decompress(bytes.NewReader([]byte{0xfd, '7', 'z', 'X', 'Z', 0, 1, 2}))
	if !errors.Is(err, ErrUnsupportedCompression) {
		t.Errorf("xz: err = %v", err)
	}
	rc, err := Decompress(bytes.NewReader(nil))
	must(t, err)
	rc.Close()
}

// sparseTar is a GNU sparse file (PAX format 0.1) of 1 TiB with no data.
// Go's tar writer drops GNU.sparse records, so they are written under
// another prefix of the same length and renamed in the bytes.
func sparseTar(t testing.TB) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	must(t, tw.WriteHeader(&tar.Header{Name: "s", Typeflag: tar.TypeReg, Mode: 0o644, PAXRecords: map[string]string{
		"XYZ.sparse.major": "0", "XYZ.sparse.minor": "1", "XYZ.sparse.numblocks": "1",
		"XYZ.sparse.map": "0,0", "XYZ.sparse.size": "1099511627776"}}))
	must(t, tw.Close())
	b := bytes.ReplaceAll(buf.Bytes(), []byte("XYZ.sparse."), []byte("GNU.sparse."))
	hdr, err := tar.NewReader(bytes.NewReader(b)).Next()
	if err != nil || hdr.Size != 1<<40 {
		t.Fatalf("sparse tar reads as %+v, %v", hdr, err)
	}
	return b
}

func TestEntryPath(t *testing.T) {
	tests := []struct {
		name, want string
		unsafe     bool
	}{
		{"a/b", "a/b", false},
		{"./a/b/", "a/b", false},
		{"/etc/passwd", "etc/passwd", false},
		{"/../etc", "etc", false},
		{"a/../b", "b", false},
		{".", "", false},
		{"./", "", false},
		{"..", "", true},
		{"../a", "", true},
		{"a/../../b", "", true},
		{"..a", "..a", false},
	}
	for _, tt := range tests {
		got, err := entryPath(tt.name)
		if tt.unsafe != errors.Is(err, ErrUnsafePath) || (!tt.unsafe && got != tt.want) {
			t.Errorf("entryPath(%q) = %q, %v; want %q, unsafe %v", tt.name, got, err, tt.want, tt.unsafe)
		}
	}
}
