package registry

import (
	"context"
	"errors"
	"fmt"
	"github.com/drove-project/drove/layers/reference"
	"net"
	"net/http"
	"strings"
	"syscall"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Sentinel errors, matched with errors.Is.
var (
	// ErrUnauthorized means the registry refused the request for lack of
	// valid credentials or permission.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrNotFound means the reference (repository, tag or digest) or the
	// requested platform does not exist in the registry.
	ErrNotFound = errors.New("not found")
	// ErrUnreachable means no connection could be made to the registry.
	ErrUnreachable = errors.New("registry unreachable")
	// ErrNotLoggedIn means the credentials file has no entry for the
	// registry.
	ErrNotLoggedIn = errors.New("not logged in")
)

// classifiedError is a registry failure sorted into one of the sentinels,
// with a short message and the underlying cause kept for errors.As.
type classifiedError struct {
	kind  error
	msg   string
	cause error
}

func (e *classifiedError) Error() string { return e.msg }

func (e *classifiedError) Unwrap() []error { return []error{e.kind, e.cause} }

// classifyError sorts err from a remote operation on ref (in registry
// host) into ErrUnauthorized, ErrNotFound or ErrUnreachable; src, where the
// credential sent came from, picks the unauthorized message, and an empty
// ref is left out of the not-found one. Errors that fit none of these are
// returned unchanged.
func classifyError(err error, host, ref string, src CredentialSource) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	host = reference.DisplayRegistry(host)
	var terr *transport.Error
	if errors.As(err, &terr) {
		switch {
		case hasCode(terr, transport.UnauthorizedErrorCode) || terr.StatusCode == http.StatusUnauthorized:
			return &classifiedError{kind: ErrUnauthorized, msg: unauthorizedMessage(host, src), cause: err}
		case hasCode(terr, transport.DeniedErrorCode) || terr.StatusCode == http.StatusForbidden:
			msg := fmt.Sprintf("%s: registry %s denied access%s", ErrUnauthorized, host, diagnostics(terr))
			return &classifiedError{kind: ErrUnauthorized, msg: msg, cause: err}
		case hasCode(terr, transport.ManifestUnknownErrorCode, transport.NameUnknownErrorCode, transport.BlobUnknownErrorCode) ||
			terr.StatusCode == http.StatusNotFound:
			msg := ErrNotFound.Error()
			if ref != "" {
				msg += ": " + ref
			}
			msg += diagnostics(terr)
			return &classifiedError{kind: ErrNotFound, msg: msg, cause: err}
		}
		return err
	}
	if isNetworkError(err) {
		reason := err.Error()
		if errors.Is(err, syscall.ECONNREFUSED) {
			reason = "connection refused"
		}
		msg := fmt.Sprintf("%s: cannot connect to %s: %s", ErrUnreachable, host, reason)
		return &classifiedError{kind: ErrUnreachable, msg: msg, cause: err}
	}
	return err
}

// unauthorizedMessage says that registry host refused the credential from
// src, and what to do about it.
func unauthorizedMessage(host string, src CredentialSource) string {
	switch src {
	case NoCredentials:
		return fmt.Sprintf("%s: registry %s requires authentication (log in first)", ErrUnauthorized, host)
	case FromCaller:
		return fmt.Sprintf("%s: registry %s rejected the credentials given for it", ErrUnauthorized, host)
	default:
		return fmt.Sprintf("%s: registry %s rejected the credentials", ErrUnauthorized, host)
	}
}

// isNetworkError reports whether err is a failure to connect (refused,
// unresolvable, unroutable) rather than a protocol-level answer.
func isNetworkError(err error) bool {
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) ||
		errors.Is(err, syscall.ENETUNREACH) {
		return true
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return true
	}
	var opErr *net.OpError
	return errors.As(err, &opErr) && opErr.Op == "dial"
}

// hasCode reports whether terr carries any of the given registry error codes.
func hasCode(terr *transport.Error, codes ...transport.ErrorCode) bool {
	for _, d := range terr.Errors {
		for _, c := range codes {
			if d.Code == c {
				return true
			}
		}
	}
	return false
}

// diagnostics renders the registry's error codes and messages as a
// ": CODE: message; ..." suffix, or "" when there are none.
func diagnostics(terr *transport.Error) string {
	if len(terr.Errors) == 0 {
		return ""
	}
	parts := make([]string, 0, len(terr.Errors))
	for _, d := range terr.Errors {
		parts = append(parts, fmt.Sprintf("%s: %s", d.Code, d.Message))
	}
	return ": " + strings.Join(parts, "; ")
}
