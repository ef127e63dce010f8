package registry

import (
	"fmt"
	"maps"
	"net/http"
	"slices"

	"github.com/drove-project/drove/layers/reference"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// CredentialSource says where the credential sent to a registry came from;
// Endpoint.Classify's messages depend on it.
type CredentialSource int

const (
	// NoCredentials: nothing was found for the registry; requests are
	// anonymous.
	NoCredentials CredentialSource = iota
	// FromAuthFile: the credentials file has an entry for the registry.
	FromAuthFile
	// FromCaller: the caller passed the credential for the registry (an
	// image list's credentials, say); it wins over the credentials file.
	FromCaller
)

// Endpoint is how drove reaches one registry, with the rules Pull and Push
// follow: plain HTTP and no TLS verification for a loopback registry or
// with Options.Insecure, credentials from the caller or else from the
// credentials file, and Options.Transport and Options.UserAgent. Get one
// from Options.Endpoint.
type Endpoint struct {
	// Registry is the registry, marked insecure (plain HTTP allowed) when
	// it is on loopback or Options.Insecure is set.
	Registry name.Registry
	// Auth is the credential requests carry; authn.Anonymous when Source
	// is NoCredentials.
	Auth authn.Authenticator
	// Source says where Auth came from.
	Source CredentialSource

	base      http.RoundTripper // Options.Transport, made insecure if need be
	userAgent string
}

// Endpoint returns how to reach the registry host ("quay.io", "docker.io",
// "127.0.0.1:5000"). The credential is given's entry for host, under any
// spelling of it (see AuthKey; nil entries are ignored), else the
// credentials file's, else anonymous.
func (o Options) Endpoint(host string, given map[string]authn.Authenticator) (Endpoint, error) {
	reg, err := name.NewRegistry(host, o.nameOptions(host)...)
	if err != nil {
		return Endpoint{}, fmt.Errorf("registry %q: %w", host, err)
	}
	return o.endpoint(reg, given)
}

// endpoint is Endpoint for a parsed registry, whose scheme rules the
// caller already applied.
func (o Options) endpoint(reg name.Registry, given map[string]authn.Authenticator) (Endpoint, error) {
	host := reg.RegistryStr()
	e := Endpoint{Registry: reg, base: o.transport(host), userAgent: o.UserAgent}
	if a, ok := givenFor(host, given); ok {
		e.Auth, e.Source = a, FromCaller
		return e, nil
	}
	kc, err := NewKeychain(o.AuthFile)
	if err != nil {
		return Endpoint{}, err
	}
	a, err := kc.Resolve(reg)
	if err != nil {
		return Endpoint{}, fmt.Errorf("credentials for %s: %w", reference.DisplayRegistry(host), err)
	}
	e.Auth, e.Source = a, FromAuthFile
	if a == authn.Anonymous {
		e.Source = NoCredentials
	}
	return e, nil
}

// givenFor returns the non-nil entry of given whose key names host; of
// several spellings of one registry the smallest key wins, so the choice
// does not depend on map order.
func givenFor(host string, given map[string]authn.Authenticator) (authn.Authenticator, bool) {
	if len(given) == 0 {
		return nil, false
	}
	want := AuthKey(host)
	for _, k := range slices.Sorted(maps.Keys(given)) {
		if a := given[k]; a != nil && AuthKey(k) == want {
			return a, true
		}
	}
	return nil, false
}

// RemoteOptions returns the go-containerregistry options for requests
// through e: its credential, transport and user agent. Add
// remote.WithContext for a one-shot call (a remote.Puller takes the context
// per call), and remote.WithPlatform as needed.
func (e Endpoint) RemoteOptions() []remote.Option {
	opts := []remote.Option{remote.WithAuth(e.auth()), remote.WithTransport(e.baseTransport())}
	if e.userAgent != "" {
		opts = append(opts, remote.WithUserAgent(e.userAgent))
	}
	return opts
}

// Transport returns the round tripper for requests to e's registry made
// without package remote, e.g. through transport.NewWithContext (which adds
// the credential): Options.Transport with e's TLS rule and user agent. Do
// not pass it to remote.WithTransport; RemoteOptions does that.
func (e Endpoint) Transport() http.RoundTripper {
	return withUserAgent(e.baseTransport(), e.userAgent)
}

// Classify sorts err, from a request through e for ref, into
// ErrUnauthorized, ErrNotFound or ErrUnreachable (matched with errors.Is;
// the registry's *transport.Error stays reachable with errors.As), with a
// message naming the registry and, for ErrUnauthorized, what to fix given
// e.Source. ref appears in the ErrNotFound message; "" leaves it to the
// caller. Other errors, cancellation included, are returned unchanged.
func (e Endpoint) Classify(err error, ref string) error {
	return classifyError(err, e.Registry.RegistryStr(), ref, e.Source)
}

// auth is e.Auth, anonymous when unset.
func (e Endpoint) auth() authn.Authenticator {
	if e.Auth == nil {
		return authn.Anonymous
	}
	return e.Auth
}

// baseTransport is e's round tripper without the user agent.
func (e Endpoint) baseTransport() http.RoundTripper {
	if e.base == nil {
		return remote.DefaultTransport
	}
	return e.base
}

// withUserAgent adds ua to the User-Agent of requests through rt; "" leaves
// rt as it is.
func withUserAgent(rt http.RoundTripper, ua string) http.RoundTripper {
	if ua == "" {
		return rt
	}
	return transport.NewUserAgent(rt, ua)
}
