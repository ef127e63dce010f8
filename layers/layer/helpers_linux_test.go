package layer

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fsNode is what the tests compare of one path.
type fsNode struct {
	Type     string
	Mode     fs.FileMode // permission and special bits
	Mtime    int64       // whole seconds: layers keep no more
	Content  string      // sha256 of a regular file
	Link     string
	UID, GID uint32
	Rdev     uint64
}

func (n fsNode) String() string {
	return fmt.Sprintf("%s %v mtime=%d uid=%d gid=%d link=%q content=%.12s rdev=%d",
		n.Type, n.Mode, n.Mtime, n.UID, n.GID, n.Link, n.Content, n.Rdev)
}

// readTree walks dir (not following links) and records every path below it.
func readTree(t testing.TB, dir string) map[string]fsNode {
	t.Helper()
	out := make(map[string]fsNode)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		n := fsNode{
			Mode: fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky),
			UID:  st.Uid, GID: st.Gid, Mtime: fi.ModTime().Unix(),
		}
		switch m := fi.Mode(); {
		case m.IsDir():
			n.Type = "dir"
		case m.IsRegular():
			n.Type = "file"
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			n.Content = hex.EncodeToString(sum[:])
		case m&fs.ModeSymlink != 0:
			n.Type = "symlink"
			n.Mode = 0
			if n.Link, err = os.Readlink(p); err != nil {
				return err
			}
		case m&fs.ModeNamedPipe != 0:
			n.Type = "fifo"
		case m&fs.ModeCharDevice != 0:
			n.Type, n.Rdev = "char", uint64(st.Rdev)
		case m&fs.ModeDevice != 0:
			n.Type, n.Rdev = "block", uint64(st.Rdev)
		default:
			n.Type = "other"
		}
		if os.Geteuid() != 0 {
			n.UID, n.GID = 0, 0 // ownership is only applied as root
		}
		rel, _ := filepath.Rel(dir, p)
		out[filepath.ToSlash(rel)] = n
		return nil
	})
	if err != nil {
		t.Fatalf("read tree %s: %v", dir, err)
	}
	return out
}

// sameTree fails the test with every difference between two trees.
func sameTree(t testing.TB, want, got map[string]fsNode) {
	t.Helper()
	var diffs []string
	for p, w := range want {
		g, ok := got[p]
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("missing %s (%v)", p, w))
		case g != w:
			diffs = append(diffs, fmt.Sprintf("%s:\n  want %v\n  got  %v", p, w, g))
		}
	}
	for p, g := range got {
		if _, ok := want[p]; !ok {
			diffs = append(diffs, fmt.Sprintf("unexpected %s (%v)", p, g))
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		t.Fatalf("trees differ:\n%s", strings.Join(diffs, "\n"))
	}
}

// tEnt is one entry of a hand-made tar.
type tEnt struct {
	name, link, body string
	typ              byte
	mode             int64
	mtime            int64
}

func makeTar(t testing.TB, ents ...tEnt) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		mode := e.mode
		if mode == 0 {
			mode = 0o644
			if typ == tar.TypeDir {
				mode = 0o755
			}
		}
		hdr := &tar.Header{Name: e.name, Typeflag: typ, Mode: mode, Linkname: e.link, ModTime: time.Unix(e.mtime, 0)}
		if typ == tar.TypeReg {
			hdr.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatalf("tar header %s: %v", e.name, err)
		}
		if _, err := io.WriteString(tw, e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// applyBytes applies an uncompressed or compressed layer to dir.
func applyBytes(t testing.TB, dir string, layer []byte) {
	t.Helper()
	rc, err := Decompress(bytes.NewReader(layer))
	if err != nil {
		t.Fatalf("decompress: %v", err)
	}
	defer rc.Close()
	if _, err := Apply(context.Background(), dir, rc); err != nil {
		t.Fatalf("apply: %v", err)
	}
}

// writeFile creates a file with content, mode and mtime (and parents).
func writeFile(t testing.TB, p, content string, mode fs.FileMode, mtime time.Time) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

// tarHeaders lists the headers of a (possibly compressed) layer.
func tarHeaders(t testing.TB, layer []byte) []*tar.Header {
	t.Helper()
	rc, err := Decompress(bytes.NewReader(layer))
	must(t, err)
	defer rc.Close()
	tr := tar.NewReader(rc)
	var hs []*tar.Header
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return hs
		}
		must(t, err)
		hs = append(hs, h)
	}
}
