package registry

import (
	"context"
	"crypto/tls"
	"github.com/drove-project/drove/layers/reference"
	"net/http"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Options configure registry operations. The zero value uses the default
// credentials file and TLS for every non-loopback registry, and Pull returns
// an index as an index.
type Options struct {
	// AuthFile overrides the credentials file path (--authfile); see
	// AuthFilePath.
	AuthFile string
	// Insecure allows plain HTTP and skips TLS verification for every
	// registry. Loopback registries get this without the flag.
	Insecure bool
	// Platform, when set, makes Pull return the matching image of an index.
	Platform *v1.Platform
	// Progress, when set, is called as Push uploads layer bytes, with the
	// bytes done and the total so far. Calls come from one goroutine and all
	// happen before Push returns.
	Progress func(complete, total int64)
	// Transport replaces the base HTTP transport (default
	// remote.DefaultTransport). With Insecure, an *http.Transport is cloned
	// to skip TLS verification.
	Transport http.RoundTripper
	// UserAgent is added to the User-Agent header.
	UserAgent string
}

// insecureFor reports whether host is reached without TLS guarantees.
func (o Options) insecureFor(host string) bool {
	return o.Insecure || IsLoopback(host)
}

// nameOptions returns the ggcr name options for parsing a reference or
// registry that will be contacted.
func (o Options) nameOptions(host string) []name.Option {
	if o.insecureFor(host) {
		return []name.Option{name.Insecure}
	}
	return nil
}

// transport returns the base round tripper for host.
func (o Options) transport(host string) http.RoundTripper {
	base := o.Transport
	if base == nil {
		base = remote.DefaultTransport
	}
	if !o.insecureFor(host) {
		return base
	}
	t, ok := base.(*http.Transport)
	if !ok {
		return base
	}
	t = t.Clone()
	if t.TLSClientConfig == nil {
		t.TLSClientConfig = &tls.Config{}
	}
	t.TLSClientConfig.InsecureSkipVerify = true //nolint:gosec // asked for with Insecure or a loopback registry
	return t
}

// ParseReference parses an image reference s (see reference.Parse) for
// contacting its registry: a loopback registry, or any registry with
// Insecure, may then be reached over plain HTTP.
func (o Options) ParseReference(s string) (name.Reference, error) {
	ref, err := reference.Parse(s)
	if err != nil {
		return nil, err
	}
	if opts := o.nameOptions(ref.Context().RegistryStr()); len(opts) > 0 {
		return reference.Parse(s, opts...)
	}
	return ref, nil
}

// remote returns the endpoint of ref's registry, credentials from the
// credentials file, and the ggcr options for an operation on ref bounded by
// ctx (with Platform, when set).
func (o Options) remote(ctx context.Context, ref name.Reference) (Endpoint, []remote.Option, error) {
	e, err := o.endpoint(ref.Context().Registry, nil)
	if err != nil {
		return Endpoint{}, nil, err
	}
	opts := append(e.RemoteOptions(), remote.WithContext(ctx))
	if o.Platform != nil {
		opts = append(opts, remote.WithPlatform(*o.Platform))
	}
	return e, opts, nil
}
