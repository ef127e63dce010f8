package archive

import (
	"fmt"
	"path"
	"strings"
)

// entryName checks a tar entry's name and returns it cleaned ("./a//b/"
// becomes "a/b"). Names that are absolute, climb out with "..", or hold NUL
// or backslashes are refused with ErrUnsafePath.
func entryName(name string) (string, error) {
	if name == "" {
		return "", fmt.Errorf("%w: entry with an empty name", ErrUnsafePath)
	}
	if strings.HasPrefix(name, "/") || strings.ContainsAny(name, "\x00\\") {
		return "", fmt.Errorf("%w: entry %q", ErrUnsafePath, name)
	}
	for _, part := range strings.Split(name, "/") {
		if part == ".." {
			return "", fmt.Errorf("%w: entry %q", ErrUnsafePath, name)
		}
	}
	clean := path.Clean(name)
	if clean == "." {
		return "", nil // the archive's root directory
	}
	return clean, nil
}

// linkTarget resolves the target of a link entry named name the way tar
// tools do: symbolic links relative to the link's directory, hard links
// relative to the archive root. Targets outside the archive are refused.
func linkTarget(name, target string, symlink bool) (string, error) {
	if target == "" || strings.HasPrefix(target, "/") || strings.ContainsAny(target, "\x00\\") {
		return "", fmt.Errorf("%w: link %s points at %q", ErrUnsafePath, name, target)
	}
	joined := target
	if symlink {
		joined = path.Join(path.Dir(name), target)
	}
	joined = path.Clean(joined)
	if joined == ".." || strings.HasPrefix(joined, "../") || joined == "." {
		return "", fmt.Errorf("%w: link %s points at %q, outside the archive", ErrUnsafePath, name, target)
	}
	return joined, nil
}
