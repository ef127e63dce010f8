package layer

import (
	"context"
	"fmt"
	"io"
	"path"
	"path/filepath"
)

// DiffTrees writes the layer that turns before (a Snapshot of dir) into
// dir as it is now: every path added or changed (in content, type, mode,
// ownership, times or identity), the directories above each with their
// current metadata, and a ".wh." whiteout for every path deleted — one for a
// deleted directory, not one per child. Ownership is kept as it is on disk.
// Result.Files is keyed by host path, as in WriteLayer. A nil before is an
// empty tree: everything in dir is added.
func DiffTrees(ctx context.Context, w io.Writer, before *Tree, dir string, opts Options) (Result, error) {
	if before == nil {
		before = &Tree{}
	}
	after, err := Snapshot(ctx, dir)
	if err != nil {
		return Result{}, fmt.Errorf("diff %s: %w", dir, err)
	}
	var items []item
	listed := make(map[string]bool)
	addHost := func(p string) {
		for q := p; q != "." && !listed[q]; q = path.Dir(q) {
			listed[q] = true
			items = append(items, item{dest: q, src: filepath.Join(dir, filepath.FromSlash(q)), kind: kindHost})
		}
	}
	for p, n := range after.nodes {
		if b, ok := before.nodes[p]; !ok || changed(b, n) {
			addHost(p)
		}
	}
	for p := range before.nodes {
		if _, ok := after.nodes[p]; ok {
			continue
		}
		parent := path.Dir(p)
		if parent != "." {
			if pn, ok := after.nodes[parent]; !ok || !pn.Mode.IsDir() {
				continue // the parent's own deletion or replacement covers p
			}
			addHost(parent)
		}
		items = append(items, item{dest: whiteoutPath(p), kind: kindWhiteout})
	}
	res, err := writeItems(ctx, w, items, opts, true)
	if err != nil {
		return Result{}, fmt.Errorf("diff %s: %w", dir, err)
	}
	return res, nil
}
