package collect

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors, matched with errors.Is on a Failure's Err (or on the
// *MissingError, which wraps them all). Registry failures are also sorted
// into layers/registry's ErrUnauthorized, ErrNotFound and ErrUnreachable.
var (
	// ErrPlatformNotFound means an image offers none of, or not all of, the
	// target platforms: an index lacks a requested platform, or a
	// single-platform image was built for another one.
	ErrPlatformNotFound = errors.New("platform not available")
	// ErrDigestMismatch means bytes received from a registry do not match
	// the digest or size that names them.
	ErrDigestMismatch = errors.New("digest mismatch")
	// ErrUnsupported means a registry served a manifest drove cannot carry
	// (docker schema1, or an unknown media type).
	ErrUnsupported = errors.New("unsupported manifest")
)

// Failure is one image that could not be collected.
type Failure struct {
	// Ref is the image reference, normalised when it parses.
	Ref string
	// Err says why, naming the registry, platform or blob involved.
	Err error
}

// MissingError lists every image Collect could not collect. Images that
// did not fail were collected all the same.
type MissingError struct {
	Failures []Failure
}

// Error lists every failed image and why, one per line.
func (e *MissingError) Error() string {
	var b strings.Builder
	n := len(e.Failures)
	if n == 1 {
		b.WriteString("1 container image could not be collected:")
	} else {
		fmt.Fprintf(&b, "%d container images could not be collected:", n)
	}
	for _, f := range e.Failures {
		fmt.Fprintf(&b, "\n  %s: %v", f.Ref, f.Err)
	}
	return b.String()
}

// Unwrap returns the failures' errors, so errors.Is and errors.As see each
// of them (registry.ErrUnauthorized, ErrPlatformNotFound, ...).
func (e *MissingError) Unwrap() []error {
	errs := make([]error, 0, len(e.Failures))
	for _, f := range e.Failures {
		errs = append(errs, f.Err)
	}
	return errs
}
