package imagecache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/drove-project/drove/imagecache/mirror"
	"github.com/drove-project/drove/layers/registry"
)

// Environment a RUN step gets from the build mirror.
const (
	// EnvMirror is the mirror's host:port; a tool that takes a mirror or
	// registry address can use "$DROVE_REGISTRY_MIRROR/<registry>/<repo>"
	// (a registry's ":port" written "_port": 127.0.0.1_5000).
	EnvMirror = "DROVE_REGISTRY_MIRROR"
	// EnvHostsDir is a containerd hosts directory sending every registry
	// through the mirror: ctr --hosts-dir, nerdctl --hosts-dir.
	EnvHostsDir = "DROVE_REGISTRY_HOSTS_DIR"
	// EnvRegistriesConf is read by podman, buildah and newer skopeo;
	// Debian 12's skopeo 1.9 needs it passed: skopeo --registries-conf
	// "$CONTAINERS_REGISTRIES_CONF" copy ...
	EnvRegistriesConf = "CONTAINERS_REGISTRIES_CONF"
)

// WellKnownRegistries are written into the build mirror's client
// configuration besides the registries a build names: registries.conf has
// no catch-all entry, so a registry missing from it is not intercepted.
var WellKnownRegistries = []string{
	"docker.io", "registry.k8s.io", "k8s.gcr.io", "gcr.io", "quay.io", "ghcr.io",
	"mcr.microsoft.com", "public.ecr.aws", "registry.gitlab.com", "nvcr.io",
}

// BuildMirror is the pull-through registry mirror a build serves on
// loopback while its RUN steps execute. It implements build.RunHook: each
// RUN gets the environment pointing its tools at the mirror, and every
// image they pull is remembered (also across cached rebuilds) so it can
// be cached into the cluster image.
type BuildMirror struct {
	rec    *mirror.Recorder
	srv    *http.Server
	addr   string
	dir    string
	mu     sync.Mutex
	pulled map[string]bool
}

// BuildMirrorOptions configure StartBuildMirror.
type BuildMirrorOptions struct {
	Dir        string   // where the client configuration is written
	Registries []string // registries to intercept besides WellKnownRegistries
	Registry   registry.Options
	Auth       map[string]authn.Authenticator
	Log        *slog.Logger
}

// StartBuildMirror serves the mirror on 127.0.0.1 and writes its client
// configuration under o.Dir.
func StartBuildMirror(o BuildMirrorOptions) (*BuildMirror, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("start build registry mirror: %w", err)
	}
	m := &BuildMirror{
		rec:    mirror.NewRecorder(mirror.RecorderOptions{Registry: o.Registry, Auth: o.Auth, Log: o.Log}),
		addr:   ln.Addr().String(),
		dir:    o.Dir,
		pulled: map[string]bool{},
	}
	regs := slices.Clone(WellKnownRegistries)
	for _, r := range o.Registries {
		if !slices.Contains(regs, r) {
			regs = append(regs, r)
		}
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		ln.Close()
		return nil, err
	}
	if _, err := mirror.WriteHostsDir(m.hostsDir(), regs, "http://"+m.addr, mirror.HostsOptions{Default: true}); err != nil {
		ln.Close()
		return nil, fmt.Errorf("write build mirror hosts dir: %w", err)
	}
	if err := mirror.WriteRegistriesConf(m.registriesConf(), regs, m.addr); err != nil {
		ln.Close()
		return nil, fmt.Errorf("write build mirror registries.conf: %w", err)
	}
	m.srv = &http.Server{Handler: m.rec, ReadHeaderTimeout: 30 * time.Second}
	go func() {
		if err := m.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			o.Log.Error("build registry mirror stopped", "err", err)
		}
	}()
	return m, nil
}

func (m *BuildMirror) hostsDir() string       { return filepath.Join(m.dir, "certs.d") }
func (m *BuildMirror) registriesConf() string { return filepath.Join(m.dir, "registries.conf") }

// Addr is the mirror's host:port.
func (m *BuildMirror) Addr() string { return m.addr }

// Env is what each RUN step gets.
func (m *BuildMirror) Env() []string {
	return []string{
		EnvMirror + "=" + m.addr,
		EnvHostsDir + "=" + m.hostsDir(),
		EnvRegistriesConf + "=" + m.registriesConf(),
	}
}

// Ran takes what the RUN just run pulled through the mirror.
func (m *BuildMirror) Ran() []string {
	refs := m.rec.Take()
	m.add(refs)
	return refs
}

// Reused adds what a RUN taken from the build cache pulled when it ran.
func (m *BuildMirror) Reused(refs []string) { m.add(refs) }

func (m *BuildMirror) add(refs []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range refs {
		m.pulled[r] = true
	}
}

// Images are all the images pulled through the mirror, sorted.
func (m *BuildMirror) Images() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.pulled))
	for r := range m.pulled {
		out = append(out, r)
	}
	slices.Sort(out)
	return out
}

// Close stops the mirror.
func (m *BuildMirror) Close(ctx context.Context) error {
	return m.srv.Shutdown(ctx)
}
