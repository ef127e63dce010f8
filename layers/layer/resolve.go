package layer

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// Entry is one host file, directory or link to put into a layer.
type Entry struct {
	// Src is the host path; it is read with Lstat, so a symbolic link is
	// stored as a link and a directory as a directory header only.
	Src string
	// Dest is the clean, slash-separated path inside the image, relative to
	// its root ("etc/kubernetes/admin.conf").
	Dest string
}

// ResolveCopy turns the sources and destination of a Kubefile COPY into
// layer entries, with Docker's COPY semantics:
//
//   - sources are relative to contextDir (a leading "/" is allowed) and may
//     be glob patterns (filepath.Match syntax);
//   - a directory source contributes its contents, recursively, to dest,
//     and dest itself takes the directory's mode and mtime;
//   - a file source goes to dest/<basename> when dest ends with "/" or the
//     sources (after glob expansion) are more than one, else to dest itself;
//   - symbolic links named as sources are followed; those inside a copied
//     directory are kept as links;
//   - dest is relative to the image root; a leading "/" is stripped.
//
// A source that does not exist, or a pattern that matches nothing, fails with
// ErrNotInContext; one that resolves outside contextDir, through ".." or a
// symbolic link, fails with ErrOutsideContext. Entries come in source order;
// WriteLayer sorts them.
func ResolveCopy(contextDir string, srcs []string, dest string) ([]Entry, error) {
	abs, err := filepath.Abs(contextDir)
	if err != nil {
		return nil, fmt.Errorf("resolve context %s: %w", contextDir, err)
	}
	root, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return nil, fmt.Errorf("resolve context %s: %w", contextDir, err)
	}
	if len(srcs) == 0 {
		return nil, fmt.Errorf("COPY to %q: no sources", dest)
	}

	type source struct{ name, real string }
	var sources []source
	for _, src := range srcs {
		matches, err := expandSource(root, contextDir, src)
		if err != nil {
			return nil, err
		}
		for _, m := range matches {
			real, err := filepath.EvalSymlinks(m)
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("COPY source %q %w %s", src, ErrNotInContext, contextDir)
			}
			if err != nil {
				return nil, fmt.Errorf("resolve COPY source %q: %w", src, err)
			}
			if !within(root, real) {
				return nil, fmt.Errorf("COPY source %q %w %s", src, ErrOutsideContext, contextDir)
			}
			sources = append(sources, source{name: m, real: real})
		}
	}

	destClean := CleanPath(dest)
	destIsDir := destClean == "" || strings.HasSuffix(filepath.ToSlash(dest), "/") || len(sources) > 1
	var entries []Entry
	for _, s := range sources {
		fi, err := os.Lstat(s.real)
		if err != nil {
			return nil, fmt.Errorf("COPY source %s: %w", s.name, err)
		}
		if !fi.IsDir() {
			d := destClean
			if destIsDir {
				d = path.Join(destClean, filepath.Base(s.name))
			}
			entries = append(entries, Entry{Src: s.real, Dest: strings.TrimPrefix(d, "/")})
			continue
		}
		err = filepath.WalkDir(s.real, func(p string, _ fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(s.real, p)
			if err != nil {
				return err
			}
			d := CleanPath(path.Join(destClean, filepath.ToSlash(rel)))
			if d != "" {
				entries = append(entries, Entry{Src: p, Dest: d})
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("walk COPY source %s: %w", s.name, err)
		}
	}
	return entries, nil
}

// expandSource returns the host paths a COPY source names: the glob matches
// (sorted) of a pattern, or the joined path of a plain name. Names that leave
// the context lexically are refused here; symbolic links are checked by the
// caller.
func expandSource(root, contextDir, src string) ([]string, error) {
	if c := filepath.Clean(filepath.FromSlash(src)); c == ".." || strings.HasPrefix(c, ".."+string(filepath.Separator)) {
		return nil, fmt.Errorf("COPY source %q %w %s", src, ErrOutsideContext, contextDir)
	}
	rel := filepath.FromSlash(CleanPath(src))
	if !strings.ContainsAny(src, `*?[\`) {
		return []string{filepath.Join(root, rel)}, nil
	}
	matches, err := filepath.Glob(filepath.Join(escapeGlob(root), rel))
	if err != nil {
		return nil, fmt.Errorf("COPY source %q: %w", src, err)
	}
	if len(matches) == 0 {
		return nil, fmt.Errorf("COPY source %q %w %s", src, ErrNotInContext, contextDir)
	}
	sort.Strings(matches)
	return matches, nil
}

// escapeGlob quotes the glob metacharacters in a literal path.
func escapeGlob(p string) string {
	var b strings.Builder
	for _, r := range p {
		if strings.ContainsRune(`*?[\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// within reports whether p is root or below it; both must be clean.
func within(root, p string) bool {
	rel, err := filepath.Rel(root, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// CleanPath turns a path inside an image into the form layers use: slash
// separated, clean, relative to the root, without a trailing slash. The root
// itself is "". Leading "/" and ".." that would climb above the root are
// dropped.
func CleanPath(p string) string {
	return strings.TrimPrefix(path.Clean("/"+filepath.ToSlash(p)), "/")
}
