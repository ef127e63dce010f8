package media

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"
)

// ErrManifest: MANIFEST.sha256 is not in the form Build writes.
var ErrManifest = errors.New("malformed manifest")

// maxManifestSize bounds the manifest read into memory (a line is under
// 200 bytes; this holds about 100,000 files).
const maxManifestSize = 16 << 20

// Entry is one line of the manifest: a file's path from the media root and
// its sha256.
type Entry struct {
	Path string
	Sum  [32]byte
}

// Manifest lists the media's files, sorted by path.
type Manifest []Entry

// WriteTo writes m in sha256sum's text form: "<hex>  <path>" per line.
// Run `sha256sum -c drove/MANIFEST.sha256` from the media root to check.
func (m Manifest) WriteTo(w io.Writer) (int64, error) {
	var b bytes.Buffer
	for _, e := range m {
		b.WriteString(hex.EncodeToString(e.Sum[:]))
		b.WriteString("  ")
		b.WriteString(e.Path)
		b.WriteByte('\n')
	}
	return b.WriteTo(w)
}

// sorted returns m sorted by path.
func (m Manifest) sorted() Manifest {
	out := slices.Clone(m)
	slices.SortFunc(out, func(a, b Entry) int { return strings.Compare(a.Path, b.Path) })
	return out
}

// ParseManifest reads a manifest: lines of 64 lower-case hex digits, two
// spaces (or a space and '*', sha256sum's binary mark) and a path relative
// to the media root in io/fs form (no leading slash, no . or ..), each
// ending in a newline. It refuses anything else, repeated paths and paths
// sha256sum would escape, naming the line.
func ParseManifest(r io.Reader) (Manifest, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxManifestSize+1))
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	if len(b) > maxManifestSize {
		return nil, fmt.Errorf("%w: over %d bytes", ErrManifest, maxManifestSize)
	}
	if len(b) > 0 && b[len(b)-1] != '\n' {
		return nil, fmt.Errorf("%w: the last line has no newline (truncated?)", ErrManifest)
	}
	var m Manifest
	seen := map[string]bool{}
	if len(b) == 0 {
		return m, nil
	}
	// Split on \n only: a \r stays in the line and is refused.
	for i, line := range strings.Split(string(b[:len(b)-1]), "\n") {
		e, err := parseLine(line)
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: %v", ErrManifest, i+1, err)
		}
		if seen[e.Path] {
			return nil, fmt.Errorf("%w: line %d: %s is listed twice", ErrManifest, i+1, e.Path)
		}
		seen[e.Path] = true
		m = append(m, e)
	}
	return m, nil
}

func parseLine(line string) (Entry, error) {
	var e Entry
	if len(line) < 64+2+1 {
		return e, fmt.Errorf("%q: want <sha256 hex>  <path>", line)
	}
	h, sep, p := line[:64], line[64:66], line[66:]
	if strings.ToLower(h) != h {
		return e, fmt.Errorf("checksum %q: want lower-case hex", h)
	}
	if _, err := hex.Decode(e.Sum[:], []byte(h)); err != nil {
		return e, fmt.Errorf("checksum %q: %v", h, err)
	}
	if sep != "  " && sep != " *" {
		return e, fmt.Errorf("%q: want two spaces after the checksum", line)
	}
	if !fs.ValidPath(p) || p == "." {
		return e, fmt.Errorf("path %q: want a relative path without . or .. elements", p)
	}
	if strings.ContainsAny(p, "\\\r") {
		return e, fmt.Errorf("path %q: backslashes and carriage returns are not allowed", p)
	}
	if p == ManifestPath {
		return e, fmt.Errorf("the manifest lists itself")
	}
	e.Path = p
	return e, nil
}
