package registry

import (
	"context"
	"errors"
	"fmt"
	"github.com/drove-project/drove/layers/reference"
	"io"
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// loginCheckRepo is the repository whose pull scope Login asks a token
// server for; it need not exist.
const loginCheckRepo = "drove/login-check"

// Login verifies username and password against registry (a host such as
// "127.0.0.1:5000" or "docker.io") and, if the registry accepts them, saves
// them in the credentials file. Wrong credentials give an error wrapping
// ErrUnauthorized, e.g. "login to 127.0.0.1:5000: unauthorized: wrong
// username or password", and leave the file unchanged.
func Login(ctx context.Context, registry, username, password string, opts Options) error {
	display := reference.DisplayRegistry(hostOf(registry))
	if username == "" || password == "" {
		return fmt.Errorf("login to %s: username and password must not be empty", display)
	}
	path, err := AuthFilePath(opts.AuthFile)
	if err != nil {
		return fmt.Errorf("login to %s: %w", display, err)
	}
	if err := verifyLogin(ctx, registry, username, password, opts); err != nil {
		return fmt.Errorf("login to %s: %w", display, err)
	}
	f, err := ReadAuthFile(path)
	if err != nil {
		return fmt.Errorf("login to %s: %w", display, err)
	}
	f.Set(registry, Credential{Username: username, Password: password})
	if err := WriteAuthFile(path, f); err != nil {
		return fmt.Errorf("login to %s: %w", display, err)
	}
	return nil
}

// Logout removes registry's entry from the credentials file. A registry
// with no entry gives an error wrapping ErrNotLoggedIn: "not logged in to X".
func Logout(registry string, opts Options) error {
	display := reference.DisplayRegistry(hostOf(registry))
	path, err := AuthFilePath(opts.AuthFile)
	if err != nil {
		return fmt.Errorf("logout from %s: %w", display, err)
	}
	f, err := ReadAuthFile(path)
	if err != nil {
		return fmt.Errorf("logout from %s: %w", display, err)
	}
	if !f.Remove(registry) {
		return fmt.Errorf("%w to %s", ErrNotLoggedIn, display)
	}
	if err := WriteAuthFile(path, f); err != nil {
		return fmt.Errorf("logout from %s: %w", display, err)
	}
	return nil
}

// hostOf returns the registry host a login argument names: the config key
// without scheme and path, with Docker Hub as index.docker.io.
func hostOf(registry string) string {
	key := AuthKey(registry)
	if key == HubAuthKey {
		return name.DefaultRegistry
	}
	return key
}

// verifyLogin does the registry's auth handshake with the credentials: a
// token registry must issue a token for them, and GET /v2/ with them must
// not be refused (which catches htpasswd-style basic auth).
func verifyLogin(ctx context.Context, registry, username, password string, opts Options) error {
	host := hostOf(registry)
	reg, err := name.NewRegistry(host, opts.nameOptions(host)...)
	if err != nil {
		return fmt.Errorf("invalid registry %q: %w", registry, err)
	}
	auth := authn.FromConfig(authn.AuthConfig{Username: username, Password: password})
	scope := reg.Repo(loginCheckRepo).Scope(transport.PullScope)
	base := withUserAgent(opts.transport(host), opts.UserAgent)
	rt, err := transport.NewWithContext(ctx, reg, auth, base, []string{scope})
	if err != nil {
		return loginError(err, host)
	}
	// The wrapped transport picks the scheme the ping found; the one in
	// this URL is replaced for requests to the registry.
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+reg.RegistryStr()+"/v2/", nil)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	resp, err := (&http.Client{Transport: rt}).Do(req)
	if err != nil {
		return loginError(err, host)
	}
	defer resp.Body.Close()
	if err := transport.CheckError(resp, http.StatusOK); err != nil {
		return loginError(err, host)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return nil
}

// loginError turns a handshake failure into the error Login returns.
func loginError(err error, host string) error {
	var terr *transport.Error
	if errors.As(err, &terr) && (terr.StatusCode == http.StatusUnauthorized ||
		hasCode(terr, transport.UnauthorizedErrorCode)) {
		return &classifiedError{
			kind:  ErrUnauthorized,
			msg:   fmt.Sprintf("%s: wrong username or password", ErrUnauthorized),
			cause: err,
		}
	}
	return classifyError(err, host, host, FromCaller)
}
