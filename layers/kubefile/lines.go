package kubefile

import (
	"bytes"
	"strings"
)

// logicalLine is one instruction's text with continuations joined.
type logicalLine struct {
	line int // 1-based line of the first physical line
	text string
}

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// logicalLines splits a Kubefile into instructions the way Docker does:
// whole-line comments and blank lines are dropped, a line ending in a
// backslash (optionally followed by blanks) continues on the next line, and
// comment or blank lines inside a continuation are skipped. It also returns
// the lines of blank lines found inside continuations, which Docker warns
// about.
func logicalLines(data []byte) (out []logicalLine, emptyContinuations []int) {
	data = bytes.TrimPrefix(data, utf8BOM)
	phys := strings.Split(string(data), "\n")
	for i := 0; i < len(phys); i++ {
		first := trimLeftBlank(strings.TrimSuffix(phys[i], "\r"))
		if first == "" || first[0] == '#' {
			continue
		}
		start := i + 1
		part, more := trimContinuation(first)
		var text strings.Builder
		text.WriteString(part)
		for more && i+1 < len(phys) {
			i++
			l := strings.TrimSuffix(phys[i], "\r")
			t := trimLeftBlank(l)
			if t == "" {
				emptyContinuations = append(emptyContinuations, i+1)
				continue
			}
			if t[0] == '#' {
				continue
			}
			part, more = trimContinuation(l)
			text.WriteString(part)
		}
		joined := trimBlank(text.String())
		if joined == "" {
			continue
		}
		out = append(out, logicalLine{line: start, text: joined})
	}
	return out, emptyContinuations
}

// trimContinuation removes a trailing backslash and the blanks after it,
// reporting whether there was one.
func trimContinuation(l string) (string, bool) {
	t := strings.TrimRight(l, blanks)
	if strings.HasSuffix(t, `\`) {
		return t[:len(t)-1], true
	}
	return l, false
}

// blanks are the whitespace bytes that separate words. Newlines never occur
// inside a logical line.
const blanks = " \t\v\f\r"

func isBlank(c byte) bool { return strings.IndexByte(blanks, c) >= 0 }

func trimLeftBlank(s string) string { return strings.TrimLeft(s, blanks) }

func trimBlank(s string) string { return strings.Trim(s, blanks) }
