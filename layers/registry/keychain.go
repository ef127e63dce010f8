package registry

import (
	"fmt"

	"github.com/google/go-containerregistry/pkg/authn"
)

// Keychain is an authn.Keychain backed by a docker-compatible credentials
// file. The file is read on every Resolve, so logins made meanwhile are seen.
// Credential helpers ("credsStore", "credHelpers") are not consulted.
type Keychain struct {
	// Path is the credentials file; see AuthFilePath.
	Path string
}

var _ authn.Keychain = Keychain{}

// NewKeychain returns a Keychain reading the credentials file chosen by
// AuthFilePath(authFile).
func NewKeychain(authFile string) (Keychain, error) {
	path, err := AuthFilePath(authFile)
	if err != nil {
		return Keychain{}, err
	}
	return Keychain{Path: path}, nil
}

// Resolve returns the credential stored for target's registry, or
// authn.Anonymous when there is none or the file does not exist.
func (k Keychain) Resolve(target authn.Resource) (authn.Authenticator, error) {
	f, err := ReadAuthFile(k.Path)
	if err != nil {
		return nil, err
	}
	c, ok, err := f.Get(target.RegistryStr())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", k.Path, err)
	}
	if !ok || c == (Credential{}) {
		return authn.Anonymous, nil
	}
	return authn.FromConfig(authn.AuthConfig{
		Username:      c.Username,
		Password:      c.Password,
		IdentityToken: c.IdentityToken,
		RegistryToken: c.RegistryToken,
	}), nil
}
