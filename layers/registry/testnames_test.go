package registry

import "github.com/google/go-containerregistry/pkg/name"

// The package's older tests call these unexported names; they are kept
// here as aliases of what replaced them.

func isLoopbackHost(host string) bool { return IsLoopback(host) }

func (o Options) parseRemote(s string) (name.Reference, error) { return o.ParseReference(s) }

// classify is classifyError with the credential either absent (anonymous)
// or from the credentials file.
func classify(err error, host, ref string, anonymous bool) error {
	src := FromAuthFile
	if anonymous {
		src = NoCredentials
	}
	return classifyError(err, host, ref, src)
}
