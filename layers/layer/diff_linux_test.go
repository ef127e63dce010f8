package layer

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// baseTree is the state a build step starts from.
func baseTree(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "base")
	mt := time.Unix(1600000000, 0)
	writeFile(t, filepath.Join(dir, "etc/hosts"), "127.0.0.1 localhost\n", 0o644, mt)
	writeFile(t, filepath.Join(dir, "etc/same-size"), "aaaa", 0o644, mt)
	writeFile(t, filepath.Join(dir, "etc/mode"), "m", 0o644, mt)
	writeFile(t, filepath.Join(dir, "etc/rm-me"), "r", 0o644, mt)
	writeFile(t, filepath.Join(dir, "var/cache/a/1"), "1", 0o644, mt)
	writeFile(t, filepath.Join(dir, "var/cache/a/2"), "2", 0o644, mt)
	writeFile(t, filepath.Join(dir, "var/cache/b"), "b", 0o644, mt)
	writeFile(t, filepath.Join(dir, "opt/tool/bin"), "bin", 0o755, mt)
	writeFile(t, filepath.Join(dir, "hl/one"), "linked", 0o644, mt)
	must(t, os.Link(filepath.Join(dir, "hl/one"), filepath.Join(dir, "hl/two")))
	must(t, os.Symlink("hosts", filepath.Join(dir, "etc/link")))
	must(t, syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o600))
	for _, d := range []string{"etc", "var/cache/a", "var/cache", "var", "opt/tool", "opt", "hl"} {
		must(t, os.Chtimes(filepath.Join(dir, d), mt, mt))
	}
	return dir
}

// buildStep changes dir the way a RUN might.
func buildStep(t *testing.T, dir string) {
	t.Helper()
	mt := time.Unix(1700000000, 0)
	writeFile(t, filepath.Join(dir, "etc/new.conf"), "new", 0o600, mt)
	// Same size, mtime put back: only the ctime shows the edit.
	p := filepath.Join(dir, "etc/same-size")
	fi, err := os.Stat(p)
	must(t, err)
	must(t, os.WriteFile(p, []byte("bbbb"), 0o644))
	must(t, os.Chtimes(p, fi.ModTime(), fi.ModTime()))
	must(t, os.Chmod(filepath.Join(dir, "etc/mode"), 0o700))
	must(t, os.Remove(filepath.Join(dir, "etc/rm-me")))
	must(t, os.RemoveAll(filepath.Join(dir, "var/cache/a")))
	must(t, os.Remove(filepath.Join(dir, "etc/link")))
	must(t, os.Symlink("/etc/new.conf", filepath.Join(dir, "etc/link")))
	must(t, os.RemoveAll(filepath.Join(dir, "opt/tool")))
	writeFile(t, filepath.Join(dir, "opt/tool"), "now a file", 0o755, mt)
	writeFile(t, filepath.Join(dir, "new/deep/dir/f"), "deep", 0o644, mt)
	must(t, os.WriteFile(filepath.Join(dir, "hl/one"), []byte("LINKED"), 0o644))
	must(t, os.Link(filepath.Join(dir, "etc/new.conf"), filepath.Join(dir, "etc/new.hard")))
	if os.Geteuid() == 0 {
		must(t, os.Lchown(filepath.Join(dir, "etc/hosts"), 1000, 1000))
	}
}

func TestDiffTrees(t *testing.T) {
	base := baseTree(t)
	work := filepath.Join(t.TempDir(), "work")
	ctx := context.Background()
	must(t, CopyTree(ctx, base, work))
	before, err := Snapshot(ctx, work)
	must(t, err)
	buildStep(t, work)

	var layer bytes.Buffer
	res, err := DiffTrees(ctx, &layer, before, work, Options{})
	must(t, err)
	if res.Size != int64(layer.Len()) {
		t.Errorf("size %d, wrote %d", res.Size, layer.Len())
	}

	var names []string
	for _, h := range tarHeaders(t, layer.Bytes()) {
		names = append(names, h.Name)
	}
	got := strings.Join(names, " ")
	for _, want := range []string{"etc/.wh.rm-me", "var/cache/.wh.a", "etc/same-size", "etc/mode", "etc/link",
		"opt/tool", "new/deep/dir/f", "hl/one", "hl/two", "etc/new.hard"} {
		if !strings.Contains(" "+got+" ", " "+want+" ") {
			t.Errorf("layer lacks %s: %s", want, got)
		}
	}
	for _, unwanted := range []string{"var/cache/a/.wh.1", ".wh.2", "var/cache/b", "etc/hosts ", "fifo"} {
		if os.Geteuid() == 0 && unwanted == "etc/hosts " {
			continue // chowned as root
		}
		if strings.Contains(got+" ", unwanted) {
			t.Errorf("layer has unchanged or redundant %s: %s", unwanted, got)
		}
	}

	// The layer over a fresh copy of the base gives the changed tree.
	replay := filepath.Join(t.TempDir(), "replay")
	must(t, CopyTree(ctx, base, replay))
	applyBytes(t, replay, layer.Bytes())
	sameTree(t, readTree(t, work), readTree(t, replay))
	var a, b syscall.Stat_t
	must(t, syscall.Stat(filepath.Join(replay, "etc/new.conf"), &a))
	must(t, syscall.Stat(filepath.Join(replay, "etc/new.hard"), &b))
	if a.Ino != b.Ino {
		t.Error("hard link made by the step is not a hard link after apply")
	}
}

func TestDiffTreesNoChange(t *testing.T) {
	base := baseTree(t)
	before, err := Snapshot(context.Background(), base)
	must(t, err)
	var layer bytes.Buffer
	_, err = DiffTrees(context.Background(), &layer, before, base, Options{Compression: None})
	must(t, err)
	if hs := tarHeaders(t, layer.Bytes()); len(hs) != 0 {
		t.Errorf("unchanged tree gives %d entries", len(hs))
	}
}

func TestCopyTree(t *testing.T) {
	base := baseTree(t)
	dst := filepath.Join(t.TempDir(), "copy")
	must(t, CopyTree(context.Background(), base, dst))
	want := readTree(t, base)
	sameTree(t, want, readTree(t, dst))

	var a, b, orig syscall.Stat_t
	must(t, syscall.Stat(filepath.Join(dst, "hl/one"), &a))
	must(t, syscall.Stat(filepath.Join(dst, "hl/two"), &b))
	must(t, syscall.Stat(filepath.Join(base, "hl/one"), &orig))
	if a.Ino != b.Ino || a.Ino == orig.Ino {
		t.Error("hard links inside the tree should be kept, and the copy must not share the source's inode")
	}
	must(t, os.WriteFile(filepath.Join(dst, "etc/hosts"), []byte("changed"), 0o644))
	if got, _ := os.ReadFile(filepath.Join(base, "etc/hosts")); string(got) != "127.0.0.1 localhost\n" {
		t.Error("changing the copy changed the source")
	}
	if err := CopyTree(context.Background(), filepath.Join(base, "etc/hosts"), filepath.Join(t.TempDir(), "x")); err == nil {
		t.Error("copying a file as a tree should fail")
	}
}

func TestSnapshotRecords(t *testing.T) {
	base := baseTree(t)
	tree, err := Snapshot(context.Background(), base)
	must(t, err)
	if tree.Root() != base || tree.Len() != len(readTree(t, base)) {
		t.Errorf("root %s, %d paths", tree.Root(), tree.Len())
	}
	n, ok := tree.Lookup("/etc/link")
	if !ok || n.Link != "hosts" || n.Mode&os.ModeSymlink == 0 {
		t.Errorf("etc/link recorded as %+v", n)
	}
	one, _ := tree.Lookup("hl/one")
	two, _ := tree.Lookup("hl/two")
	if one.Ino == 0 || one.Ino != two.Ino || one.MtimeNs != 1600000000*1e9 {
		t.Errorf("hl/one %+v, hl/two %+v", one, two)
	}
	if ps := tree.Paths(); ps[0] != "etc" || ps[1] != "etc/hosts" {
		t.Errorf("paths start %v", ps[:2])
	}
}
