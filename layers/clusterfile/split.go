package clusterfile

import (
	"bytes"
)

// chunk is the text of one YAML document of a multi-document file.
type chunk struct {
	line int    // file line of text's first line
	text []byte // from the first content line to the end of the document
}

// splitDocuments cuts data at document markers ("---" and "..." at the start
// of a line, as YAML does) and drops documents that hold only comments.
//
// A document's leading comment lines may use "//": sealer's own test
// Clusterfiles carry such license headers, which are not YAML. They are
// read as comments, with a warning.
func splitDocuments(data []byte, d *diags) []chunk {
	data = bytes.TrimPrefix(data, []byte("\ufeff"))
	var (
		chunks []chunk
		cur    []byte // text of the current document; aliases data unless a marker line carried content
		curAt  = 1    // file line of cur's first line
		lineNo = 0
	)
	flush := func() {
		if c, ok := trimDocument(cur, curAt, d); ok {
			chunks = append(chunks, c)
		}
	}
	start := 0 // offset where cur began in data, when cur aliases data
	aliasing := true
	for off := 0; off < len(data); {
		lineNo++
		end := bytes.IndexByte(data[off:], '\n')
		next := len(data)
		if end >= 0 {
			next = off + end + 1
		}
		line := data[off:next]
		if marker, rest := docMarker(line); marker != "" {
			if aliasing {
				cur = data[start:off]
			}
			flush()
			cur, curAt, aliasing, start = nil, lineNo+1, true, next
			if marker == "---" && len(bytes.TrimSpace(rest)) > 0 && rest[0] != '#' {
				// "--- |" or "--- !tag": keep the content on its line.
				cur = append(bytes.Repeat([]byte(" "), len(line)-len(rest)), rest...)
				curAt, aliasing = lineNo, false
			}
		} else if !aliasing {
			cur = append(cur, line...)
		}
		off = next
	}
	if aliasing {
		cur = data[start:]
	}
	flush()
	return chunks
}

// docMarker reports whether line is a document marker, and what follows it.
func docMarker(line []byte) (string, []byte) {
	for _, m := range []string{"---", "..."} {
		if !bytes.HasPrefix(line, []byte(m)) {
			continue
		}
		rest := line[3:]
		if len(rest) == 0 || rest[0] == ' ' || rest[0] == '\t' || rest[0] == '\r' || rest[0] == '\n' {
			return m, rest
		}
	}
	return "", nil
}

// trimDocument drops the leading blank, comment and directive lines of a
// document. ok is false when nothing is left.
func trimDocument(text []byte, at int, d *diags) (chunk, bool) {
	warned := false
	for len(text) > 0 {
		end := bytes.IndexByte(text, '\n')
		next := len(text)
		if end >= 0 {
			next = end + 1
		}
		line := bytes.TrimSpace(text[:next])
		switch {
		case len(line) == 0, line[0] == '#':
		case text[0] == '%':
			// A directive; the marker that made it useful was cut away.
		case bytes.HasPrefix(text, []byte("//")):
			if !warned {
				d.warnf(at, "", `"//" comment lines are not YAML; read as comments`)
				warned = true
			}
		default:
			return chunk{line: at, text: text}, true
		}
		text = text[next:]
		at++
	}
	return chunk{}, false
}
