package cli

import (
	"github.com/spf13/pflag"

	"github.com/drove-project/drove/layers/registry"
)

// registryFlags are the flags of every command that talks to a registry.
type registryFlags struct {
	AuthFile string
	Insecure bool
}

func (r *registryFlags) add(f *pflag.FlagSet) {
	f.StringVar(&r.AuthFile, "authfile", "", "credentials file (docker config.json format; default $DOCKER_CONFIG/config.json or ~/.docker/config.json)")
	f.BoolVar(&r.Insecure, "insecure", false, "allow plain HTTP and unverified TLS (registries on 127.0.0.0/8 need no flag)")
}

func (r *registryFlags) options() registry.Options {
	return registry.Options{AuthFile: r.AuthFile, Insecure: r.Insecure}
}
