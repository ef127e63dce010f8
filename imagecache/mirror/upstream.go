package mirror

import (
	"context"
	"fmt"
	"net/http"
	"sync"

	"github.com/drove-project/drove/layers/registry"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// upstreams reaches upstream registries the way layers/registry does (see
// registry.Options.Endpoint), with Auth taking precedence over the auth
// file. It keeps one authenticated client per repository, since registry
// tokens are scoped to one.
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
	e, err := u.opts.Endpoint(repo.host, u.auth)
	if err != nil {
		return nil, fmt.Errorf("upstream repository %s: %w", repo, err)
	}
	r := e.Registry.Repo(repo.path)
	rt, err := transport.NewWithContext(ctx, e.Registry, e.Auth, e.Transport(), []string{r.Scope(transport.PullScope)})
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
