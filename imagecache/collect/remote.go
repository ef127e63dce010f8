package collect

import (
	"fmt"
	"sync"

	"github.com/drove-project/drove/layers/reference"
	"github.com/drove-project/drove/layers/registry"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// registries hands out one puller per registry host for a Collect, with
// the host's credentials and transport as layers/registry's Endpoint
// decides them; pullers are shared by the images of that host so that
// tokens are negotiated once per repository.
type registries struct {
	opts registry.Options
	auth map[string]authn.Authenticator // Options.Auth

	mu    sync.Mutex
	hosts map[string]*hostPuller
}

// hostPuller is a registry host's puller and its endpoint, which also
// classifies the puller's errors.
type hostPuller struct {
	puller   *remote.Puller
	endpoint registry.Endpoint
}

func newRegistries(opts registry.Options, auth map[string]authn.Authenticator) *registries {
	return &registries{opts: opts, auth: auth, hosts: make(map[string]*hostPuller)}
}

// puller returns the puller for reg, creating it on first use.
func (r *registries) puller(reg name.Registry) (*hostPuller, error) {
	host := reg.RegistryStr()
	r.mu.Lock()
	defer r.mu.Unlock()
	if hp, ok := r.hosts[host]; ok {
		return hp, nil
	}
	e, err := r.opts.Endpoint(host, r.auth)
	if err != nil {
		return nil, err
	}
	p, err := remote.NewPuller(e.RemoteOptions()...)
	if err != nil {
		return nil, fmt.Errorf("set up pulls from %s: %w", reference.DisplayRegistry(host), err)
	}
	hp := &hostPuller{puller: p, endpoint: e}
	r.hosts[host] = hp
	return hp, nil
}

// classify sorts err from fetching a manifest or blob from hp's registry
// into registry.ErrUnauthorized, ErrNotFound or ErrUnreachable, with a
// message saying what to fix; callers add what was fetched.
func (hp *hostPuller) classify(err error) error {
	return hp.endpoint.Classify(err, "")
}
