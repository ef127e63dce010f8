package clusterfile

import (
	"errors"
	"fmt"
	"slices"
)

// Sentinel errors. Every error Parse, Load, FromFlags, Override and
// ParseHostList return for bad input wraps one of them; match with
// errors.Is.
var (
	// ErrSyntax: the text is not YAML.
	ErrSyntax = errors.New("yaml syntax error")
	// ErrUnknownKind: a document's apiVersion or kind is not one drove reads.
	ErrUnknownKind = errors.New("unknown apiVersion or kind")
	// ErrInvalid: a field has a wrong type or value, a required field is
	// missing, or documents contradict each other.
	ErrInvalid = errors.New("invalid value")
	// ErrUnsupported: the input is valid for sealer but asks for something
	// drove does not do: cloud machines (provider ALI_CLOUD or CONTAINER,
	// or hosts given as counts).
	ErrUnsupported = errors.New("not supported")
	// ErrTooLarge: the input is larger or more deeply aliased than drove
	// reads (MaxSize, MaxHosts, or the node budget).
	ErrTooLarge = errors.New("input too large")
)

// maxErrors bounds how many errors Parse reports at once.
const maxErrors = 20

// Error is a problem in a Clusterfile (or in a command-line value), located
// by file, line and field.
type Error struct {
	File  string // as given to Parse; empty for command-line values
	Line  int    // 1-based; 0 when unknown
	Field string // dotted path such as "spec.hosts[1].ips[0]", or a flag such as "--masters"
	Msg   string
	Err   error // one of the sentinel errors
}

// Error returns "FILE:LINE: field: message", leaving out the parts that are
// empty.
func (e *Error) Error() string {
	return formatDiag(e.File, e.Line, e.Field, e.Msg)
}

// Unwrap returns the sentinel error.
func (e *Error) Unwrap() error { return e.Err }

// Warning is a finding that does not stop Parse: an unknown field, a
// deprecated form, a value drove adjusted.
type Warning struct {
	File  string
	Line  int
	Field string
	Msg   string
}

// String returns "FILE:LINE: field: message".
func (w Warning) String() string {
	return formatDiag(w.File, w.Line, w.Field, w.Msg)
}

func formatDiag(file string, line int, field, msg string) string {
	s := ""
	if file != "" {
		s = file + ":"
		if line > 0 {
			s += fmt.Sprintf("%d:", line)
		}
		s += " "
	}
	if field != "" {
		s += field + ": "
	}
	return s + msg
}

// diags collects the errors and warnings of one Parse call.
type diags struct {
	file     string
	errs     []*Error
	warnings []Warning
}

func (d *diags) errorf(sentinel error, line int, field, format string, args ...any) {
	if len(d.errs) >= maxErrors {
		return
	}
	d.errs = append(d.errs, &Error{File: d.file, Line: line, Field: field, Msg: fmt.Sprintf(format, args...), Err: sentinel})
}

func (d *diags) warnf(line int, field, format string, args ...any) {
	d.warnings = append(d.warnings, Warning{File: d.file, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)})
}

func (d *diags) full() bool { return len(d.errs) >= maxErrors }

// err returns nil, the only error, or all errors joined in line order.
func (d *diags) err() error {
	switch len(d.errs) {
	case 0:
		return nil
	case 1:
		return d.errs[0]
	}
	sorted := slices.Clone(d.errs)
	slices.SortStableFunc(sorted, func(a, b *Error) int { return a.Line - b.Line })
	errs := make([]error, len(sorted))
	for i, e := range sorted {
		errs[i] = e
	}
	return errors.Join(errs...)
}
