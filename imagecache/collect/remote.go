package collect

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"

	"github.com/drove-project/drove/layers/reference"
	"github.com/drove-project/drove/layers/registry"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// registries hands out one puller per registry host for a Collect, with
// the host's credentials and transport; pullers are shared by the images
// of that host so that tokens are negotiated once per repository.
type registries struct {
	opts registry.Options
	auth map[string]authn.Authenticator // by registry.AuthKey

	mu    sync.Mutex
	hosts map[string]*hostPuller
}

// hostPuller is a registry host's puller and where its credentials came
// from, for error messages.
type hostPuller struct {
	puller    *remote.Puller
	display   string // host as users spell it
	anonymous bool
	explicit  bool // credentials from Options.Auth
}

func newRegistries(opts registry.Options, auth map[string]authn.Authenticator) *registries {
	byKey := make(map[string]authn.Authenticator, len(auth))
	for host, a := range auth {
		if a != nil {
			byKey[registry.AuthKey(host)] = a
		}
	}
	return &registries{opts: opts, auth: byKey, hosts: make(map[string]*hostPuller)}
}

// parse parses an image reference for contacting its registry: loopback
// registries and Options.Insecure get plain HTTP.
func (r *registries) parse(s string) (name.Reference, error) {
	ref, err := reference.Parse(s)
	if err != nil {
		return nil, err
	}
	if r.insecure(ref.Context().RegistryStr()) {
		return reference.Parse(s, name.Insecure)
	}
	return ref, nil
}

// insecure reports whether host is reached without TLS guarantees.
func (r *registries) insecure(host string) bool {
	return r.opts.Insecure || isLoopbackHost(host)
}

// puller returns the puller for reg, creating it on first use.
func (r *registries) puller(reg name.Registry) (*hostPuller, error) {
	host := reg.RegistryStr()
	r.mu.Lock()
	defer r.mu.Unlock()
	if hp, ok := r.hosts[host]; ok {
		return hp, nil
	}
	hp := &hostPuller{display: reference.DisplayRegistry(host)}
	auth, ok := r.auth[registry.AuthKey(host)]
	if ok {
		hp.explicit = true
	} else {
		kc, err := registry.NewKeychain(r.opts.AuthFile)
		if err != nil {
			return nil, err
		}
		if auth, err = kc.Resolve(reg); err != nil {
			return nil, fmt.Errorf("credentials for %s: %w", hp.display, err)
		}
	}
	hp.anonymous = auth == authn.Anonymous
	opts := []remote.Option{remote.WithAuth(auth), remote.WithTransport(r.transport(host))}
	if r.opts.UserAgent != "" {
		opts = append(opts, remote.WithUserAgent(r.opts.UserAgent))
	}
	p, err := remote.NewPuller(opts...)
	if err != nil {
		return nil, fmt.Errorf("set up pulls from %s: %w", hp.display, err)
	}
	hp.puller = p
	r.hosts[host] = hp
	return hp, nil
}

// transport returns the base round tripper for host: Options.Transport
// (default remote.DefaultTransport), cloned to skip TLS verification for an
// insecure host when it is an *http.Transport.
func (r *registries) transport(host string) http.RoundTripper {
	base := r.opts.Transport
	if base == nil {
		base = remote.DefaultTransport
	}
	t, ok := base.(*http.Transport)
	if !r.insecure(host) || !ok {
		return base
	}
	t = t.Clone()
	if t.TLSClientConfig == nil {
		t.TLSClientConfig = &tls.Config{}
	}
	t.TLSClientConfig.InsecureSkipVerify = true //nolint:gosec // asked for with Insecure or a loopback registry
	return t
}

// isLoopbackHost reports whether a registry host ("host", "host:port",
// "[v6]:port") is on a loopback address: 127.0.0.0/8, ::1 or localhost.
// layers/registry has the same rule unexported.
func isLoopbackHost(host string) bool {
	h := host
	if hp, _, err := net.SplitHostPort(host); err == nil {
		h = hp
	}
	h = strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]"))
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// registryError is a registry failure sorted into one of layers/registry's
// sentinels, with the registry's own error kept for errors.As.
type registryError struct {
	kind  error
	msg   string
	cause error
}

func (e *registryError) Error() string   { return e.msg }
func (e *registryError) Unwrap() []error { return []error{e.kind, e.cause} }

// classify sorts err from fetching a manifest or blob from hp's registry
// into registry.ErrUnauthorized, ErrNotFound or ErrUnreachable, with a
// message saying what to fix; callers add what was fetched. Other errors
// are returned unchanged.
func (hp *hostPuller) classify(err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var terr *transport.Error
	if errors.As(err, &terr) {
		switch {
		case hasCode(terr, transport.UnauthorizedErrorCode) || terr.StatusCode == http.StatusUnauthorized:
			msg := fmt.Sprintf("%s: registry %s rejected the credentials given for it", registry.ErrUnauthorized, hp.display)
			if !hp.explicit {
				msg = fmt.Sprintf("%s: registry %s rejected the credentials from the auth file", registry.ErrUnauthorized, hp.display)
			}
			if hp.anonymous {
				msg = fmt.Sprintf("%s: registry %s requires authentication and no credentials were given for it (image list with auth, or log in)", registry.ErrUnauthorized, hp.display)
			}
			return &registryError{kind: registry.ErrUnauthorized, msg: msg, cause: err}
		case hasCode(terr, transport.DeniedErrorCode) || terr.StatusCode == http.StatusForbidden:
			msg := fmt.Sprintf("%s: registry %s denied access%s", registry.ErrUnauthorized, hp.display, diagnostics(terr))
			return &registryError{kind: registry.ErrUnauthorized, msg: msg, cause: err}
		case hasCode(terr, transport.ManifestUnknownErrorCode, transport.NameUnknownErrorCode, transport.BlobUnknownErrorCode) ||
			terr.StatusCode == http.StatusNotFound:
			msg := fmt.Sprintf("%s%s", registry.ErrNotFound, diagnostics(terr))
			return &registryError{kind: registry.ErrNotFound, msg: msg, cause: err}
		}
		return err
	}
	if isNetworkError(err) {
		reason := err.Error()
		if errors.Is(err, syscall.ECONNREFUSED) {
			reason = "connection refused"
		}
		msg := fmt.Sprintf("%s: cannot connect to %s: %s", registry.ErrUnreachable, hp.display, reason)
		return &registryError{kind: registry.ErrUnreachable, msg: msg, cause: err}
	}
	return err
}

// isNetworkError reports whether err is a failure to connect rather than
// an answer from the registry.
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

// hasCode reports whether terr carries any of the registry error codes.
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
