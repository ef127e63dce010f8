package mirror

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"sync"

	"github.com/drove-project/drove/layers/registry"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// upstreams reaches upstream registries the way layers/registry does
// (loopback and Options.Insecure: plain HTTP allowed and TLS unchecked;
// credentials from the auth file), with Auth taking precedence. It keeps
// one authenticated client per repository, since registry tokens are
// scoped to one. layers/registry keeps these rules unexported, so they are
// restated here.
type upstreams struct {
	opts registry.Options
	auth map[string]authn.Authenticator

	mu      sync.Mutex
	clients map[repoName]*upstreamRepo
}

// upstreamRepo is an authenticated way to one upstream repository.
type upstreamRepo struct {
	repo   name.Repository
	client *http.Client
}

// url returns the API URL of kind ("manifests", "blobs", "tags") and ref.
func (u *upstreamRepo) url(kind, ref string) string {
	reg := u.repo.Registry
	return fmt.Sprintf("%s://%s/v2/%s/%s/%s", reg.Scheme(), reg.RegistryStr(), u.repo.RepositoryStr(), kind, ref)
}

// get returns the client for repo, pinging its registry and obtaining a
// token the first time.
func (u *upstreams) get(ctx context.Context, repo repoName) (*upstreamRepo, error) {
	u.mu.Lock()
	c, ok := u.clients[repo]
	u.mu.Unlock()
	if ok {
		return c, nil
	}
	var nopts []name.Option
	insecure := u.opts.Insecure || isLoopbackHost(repo.host)
	if insecure {
		nopts = append(nopts, name.Insecure)
	}
	r, err := name.NewRepository(repo.String(), nopts...)
	if err != nil {
		return nil, fmt.Errorf("upstream repository %s: %w", repo, err)
	}
	auth, err := u.authFor(r.Registry)
	if err != nil {
		return nil, err
	}
	rt, err := transport.NewWithContext(ctx, r.Registry, auth, u.baseTransport(insecure), []string{r.Scope(transport.PullScope)})
	if err != nil {
		return nil, err
	}
	c = &upstreamRepo{repo: r, client: &http.Client{Transport: rt}}
	u.mu.Lock()
	if u.clients == nil {
		u.clients = map[repoName]*upstreamRepo{}
	}
	u.clients[repo] = c
	u.mu.Unlock()
	return c, nil
}

// authFor returns the credential for reg: an Auth entry for any spelling
// of it, else the auth file's, else anonymous.
func (u *upstreams) authFor(reg name.Registry) (authn.Authenticator, error) {
	want := registry.AuthKey(reg.RegistryStr())
	for k, a := range u.auth {
		if registry.AuthKey(k) == want && a != nil {
			return a, nil
		}
	}
	kc, err := registry.NewKeychain(u.opts.AuthFile)
	if err != nil {
		return nil, err
	}
	a, err := kc.Resolve(reg)
	if err != nil {
		return nil, fmt.Errorf("credentials for %s: %w", normalizeHost(reg.RegistryStr()), err)
	}
	return a, nil
}

// baseTransport is Options.Transport (default remote.DefaultTransport),
// with TLS verification off for an insecure registry and Options.UserAgent
// added.
func (u *upstreams) baseTransport(insecure bool) http.RoundTripper {
	base := u.opts.Transport
	if base == nil {
		base = remote.DefaultTransport
	}
	if t, ok := base.(*http.Transport); insecure && ok {
		t = t.Clone()
		if t.TLSClientConfig == nil {
			t.TLSClientConfig = &tls.Config{}
		}
		t.TLSClientConfig.InsecureSkipVerify = true //nolint:gosec // loopback registry, or asked for with Options.Insecure
		base = t
	}
	if u.opts.UserAgent != "" {
		base = transport.NewUserAgent(base, u.opts.UserAgent)
	}
	return base
}
