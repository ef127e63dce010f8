package layer

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
)

// Node is what a Tree records of one path.
type Node struct {
	Mode     fs.FileMode // type and permission bits
	Size     int64
	MtimeNs  int64
	CtimeNs  int64 // status change time: catches edits that restore mtime
	UID, GID uint32
	Link     string // target of a symbolic link
	Dev, Ino uint64
	Rdev     uint64 // device number of a device node
}

// Tree is the metadata of every path below a directory at one moment, for
// DiffTrees to compare against later.
type Tree struct {
	root  string
	nodes map[string]Node // by CleanPath; the root itself is not recorded
}

// Root is the directory the tree was taken of.
func (t *Tree) Root() string { return t.root }

// Len is the number of paths recorded.
func (t *Tree) Len() int { return len(t.nodes) }

// Lookup returns what the tree recorded at p (a path relative to the root).
func (t *Tree) Lookup(p string) (Node, bool) {
	n, ok := t.nodes[CleanPath(p)]
	return n, ok
}

// Paths lists the recorded paths, sorted.
func (t *Tree) Paths() []string {
	ps := make([]string, 0, len(t.nodes))
	for p := range t.nodes {
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, j int) bool { return pathLess(ps[i], ps[j]) })
	return ps
}

// Snapshot records the type, mode, size, times, ownership, link target and
// inode of every path below dir, without following symbolic links.
func Snapshot(ctx context.Context, dir string) (*Tree, error) {
	t := &Tree{root: dir, nodes: make(map[string]Node)}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		st := statOf(fi)
		n := Node{
			Mode: fi.Mode(), Size: fi.Size(), MtimeNs: st.mtimeNs, CtimeNs: st.ctimeNs,
			UID: st.uid, GID: st.gid, Dev: st.dev, Ino: st.ino, Rdev: st.rdev,
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			if n.Link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		t.nodes[filepath.ToSlash(rel)] = n
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", dir, err)
	}
	return t, nil
}

// changed reports whether a path differs between two snapshots of it.
// Directory sizes are ignored: they only follow the number of entries.
func changed(a, b Node) bool {
	if a.Mode != b.Mode || a.UID != b.UID || a.GID != b.GID || a.Link != b.Link || a.Rdev != b.Rdev ||
		a.MtimeNs != b.MtimeNs || a.CtimeNs != b.CtimeNs || a.Dev != b.Dev || a.Ino != b.Ino {
		return true
	}
	return !a.Mode.IsDir() && a.Size != b.Size
}

// whiteoutPath is the whiteout entry that deletes p.
func whiteoutPath(p string) string {
	return CleanPath(path.Join(path.Dir(p), WhiteoutPrefix+path.Base(p)))
}
