package discover

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Sentinel errors. Every error about the content of a file wraps one of
// them; match with errors.Is.
var (
	// ErrSyntax: a YAML file does not parse.
	ErrSyntax = errors.New("yaml syntax error")
	// ErrReference: an image list or auth list names something that is not
	// an image reference.
	ErrReference = errors.New("invalid image reference")
	// ErrInvalid: a field of an auth list has a wrong type or value, or is
	// missing.
	ErrInvalid = errors.New("invalid value")
	// ErrChart: a Helm chart does not load or render at its default values.
	ErrChart = errors.New("helm chart does not render")
)

// maxErrors bounds how many errors one call reports at once.
const maxErrors = 20

// Error is a problem in one file, located by line and, in auth lists, by
// field. YAML syntax errors carry the line yaml.v3 names, which for some
// errors ("did not find expected key") is where the enclosing block starts
// rather than the line at fault.
type Error struct {
	File  string // as given by the caller; relative to the rootfs in Discover
	Line  int    // 1-based; 0 when the problem has no line (a chart that fails to render)
	Field string // in auth lists: "[1].images[0]"
	Msg   string
	Err   error // one of the sentinel errors
}

// Error returns "FILE:LINE: field: message", leaving out the parts that are
// empty.
func (e *Error) Error() string {
	return location(e.File, e.Line, e.Field) + e.Msg
}

// Unwrap returns the sentinel error.
func (e *Error) Unwrap() error { return e.Err }

// location spells "FILE:LINE: field: ", leaving out what is empty.
func location(file string, line int, field string) string {
	s := ""
	if file != "" {
		s = file
		if line > 0 {
			s += ":" + strconv.Itoa(line)
		}
		s += ": "
	}
	if field != "" {
		s += field + ": "
	}
	return s
}

// errList collects the errors of one call, up to maxErrors.
type errList struct {
	errs    []error
	dropped int
}

// add records err; nil is ignored.
func (l *errList) add(err error) {
	switch {
	case err == nil:
	case len(l.errs) < maxErrors:
		l.errs = append(l.errs, err)
	default:
		l.dropped++
	}
}

// full reports whether further errors would be dropped.
func (l *errList) full() bool { return len(l.errs) >= maxErrors }

// err joins what was collected, or returns nil.
func (l *errList) err() error {
	if len(l.errs) == 0 {
		return nil
	}
	errs := l.errs
	if l.dropped > 0 {
		errs = append(errs[:len(errs):len(errs)], fmt.Errorf("%d more errors not shown", l.dropped))
	}
	if len(errs) == 1 {
		return errs[0]
	}
	return errors.Join(errs...)
}

// yamlLineRe matches yaml.v3's error text, which carries the line it found
// the problem on.
var yamlLineRe = regexp.MustCompile(`^yaml: line ([0-9]+): (.*)$`)

// syntaxError turns a yaml.v3 parse error of data into an *Error locating
// it. yaml.v3 gives no line for bad characters; then the first one is
// looked for.
func syntaxError(file string, data []byte, err error) *Error {
	msg := err.Error()
	line := 0
	if m := yamlLineRe.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
		if m := unknownAnchorRe.FindStringSubmatch(msg); m != nil {
			line = aliasLine(data, m[1])
		} else {
			line = badCharLine(data)
		}
	}
	return &Error{File: file, Line: line, Msg: "yaml syntax error: " + msg, Err: ErrSyntax}
}

// unknownAnchorRe matches yaml.v3's error for an alias without anchor,
// which carries no line.
var unknownAnchorRe = regexp.MustCompile(`^unknown anchor '(.*)' referenced$`)

// aliasLine returns the 1-based line of the first "*name" in data, or 0.
func aliasLine(data []byte, name string) int {
	i := bytes.Index(data, []byte("*"+name))
	if i < 0 {
		return 0
	}
	return bytes.Count(data[:i], []byte("\n")) + 1
}

// badCharLine returns the 1-based line of the first byte YAML refuses
// (invalid UTF-8 or a control character other than tab, LF and CR), or 0.
func badCharLine(data []byte) int {
	line := 1
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			return line
		case r == '\n':
			line++
		case r < 0x20 && r != '\t' && r != '\r', r == 0x7f:
			return line
		}
		i += size
	}
	return 0
}
