package discover

import (
	"bytes"
	"strings"

	"github.com/drove-project/drove/layers/reference"
)

// ListEntry is one reference of an image list.
type ListEntry struct {
	Ref  string // normalized: docker.io/library/nginx:1.25
	Line int    // 1-based
}

// utf8BOM is skipped at the start of text files, as editors on Windows
// write it.
var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// ParseImageList reads an image list (sealer's imageList, --image-list,
// --ignored-image-list): one reference per line, surrounding whitespace
// trimmed, blank lines skipped, and '#' starting a comment that runs to the
// end of the line (a reference never holds '#'). The references come back
// normalized, in file order, duplicates kept. A line that is not a
// reference is an *Error wrapping ErrReference naming file and line; all
// such lines are reported (up to 20), and no entries are returned then.
func ParseImageList(data []byte, file string) ([]ListEntry, error) {
	data = bytes.TrimPrefix(data, utf8BOM)
	var out []ListEntry
	var errs errList
	for i, raw := range bytes.Split(data, []byte("\n")) {
		s := string(raw)
		if j := strings.IndexByte(s, '#'); j >= 0 {
			s = s[:j]
		}
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		ref, err := reference.Normalize(s)
		if err != nil {
			errs.add(&Error{File: file, Line: i + 1, Msg: err.Error(), Err: ErrReference})
			continue
		}
		out = append(out, ListEntry{Ref: ref, Line: i + 1})
	}
	if err := errs.err(); err != nil {
		return nil, err
	}
	return out, nil
}
