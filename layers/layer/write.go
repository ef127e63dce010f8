package layer

import (
	"context"
	"fmt"
	"io"
)

// WriteLayer writes entries as one layer to w and returns its digests.
//
// Entries are written sorted by Dest (component by component, so each
// directory is followed by its contents); of several with the same Dest the
// last wins. Missing parent directories are added with mode 0755 and mtime
// 0. Every entry belongs to uid/gid 0 with empty owner names; modes and
// mtimes (whole seconds) come from the host files; symbolic links stay
// links, and files hard-linked to each other within the set stay hard links.
// Directories contribute their own header only (ResolveCopy lists their
// contents). Sockets are skipped. File content is streamed and hashed in the
// same read (Result.Files); tar hashing and compression run concurrently.
// Two calls over unchanged files give identical bytes.
func WriteLayer(ctx context.Context, w io.Writer, entries []Entry, opts Options) (Result, error) {
	items := make([]item, 0, len(entries))
	for _, e := range entries {
		d := CleanPath(e.Dest)
		if d == "" {
			return Result{}, fmt.Errorf("layer entry for %s: destination is the image root", e.Src)
		}
		items = append(items, item{dest: d, src: e.Src, kind: kindHost})
	}
	return writeItems(ctx, w, items, opts, false)
}
