package netinstall

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	installsh "github.com/drove-project/drove/deploy/netinstall"
	"github.com/drove-project/drove/internal/clusterauth"
)

// RefusedMessage is the body of a 401: the install script prints it as
// its last words.
const RefusedMessage = "drove: the cluster token was refused (wrong or missing --token)"

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /install.sh", s.serveScript)
	mux.HandleFunc("GET /dl/{name}", s.serveBinary)
	mux.HandleFunc("GET /", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, fmt.Sprintf("drove: nothing at %s: this is a drove coordinator's install API (GET /install.sh, GET /dl/drove-<os>-<arch>)", r.URL.Path), http.StatusNotFound)
	})
	return mux
}

// serveScript answers GET /install.sh: the script with the cluster CA,
// the coordinators to download from (first the address this client used)
// and the coordinators to join.
func (s *Server) serveScript(w http.ResponseWriter, r *http.Request) {
	join, api := s.coordinators()
	servers := api
	if host := r.Host; host != "" && !slices.Contains(api, host) {
		servers = append([]string{host}, api...)
	}
	p := installsh.Params{CAPEM: s.caPEM, Servers: servers, Join: join, Source: "drove install API " + s.ln.Addr().String()}
	var b bytes.Buffer
	err := installsh.Render(&b, p)
	if errors.Is(err, installsh.ErrBadAddress) && len(servers) > len(api) {
		// The client's Host header is no usable address: leave it out.
		p.Servers = api
		b.Reset()
		err = installsh.Render(&b, p)
	}
	if err != nil {
		s.cfg.Log.Error("install API: cannot render install.sh", "peer", r.RemoteAddr, "err", err)
		http.Error(w, "drove: this coordinator cannot render install.sh: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/x-shellscript; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(b.Bytes())
	s.cfg.Log.Info("install API: served install.sh", "peer", r.RemoteAddr, "join", strings.Join(join, ","))
}

// serveBinary answers GET /dl/drove-<os>-<arch> to holders of the token.
func (s *Server) serveBinary(w http.ResponseWriter, r *http.Request) {
	proof, ok := bearer(r.Header.Get("Authorization"))
	if !ok || !clusterauth.CheckInstallProof(s.cfg.Token, proof) {
		s.cfg.Log.Warn("install API: refused a download: no valid token proof", "peer", r.RemoteAddr, "path", r.URL.Path)
		w.Header().Set("WWW-Authenticate", `Bearer realm="drove"`)
		http.Error(w, RefusedMessage, http.StatusUnauthorized)
		return
	}
	name := r.PathValue("name")
	goos, goarch, err := ParseBinaryName(name)
	if err != nil {
		http.Error(w, fmt.Sprintf("drove: no download %q here: %v", name, ErrBadBinaryName), http.StatusNotFound)
		return
	}
	f, err := s.openBinary(goos, goarch)
	if err != nil {
		s.cfg.Log.Info("install API: no binary to serve", "peer", r.RemoteAddr, "binary", name, "err", err)
		http.Error(w, "drove: "+err.Error(), http.StatusNotFound)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		http.Error(w, fmt.Sprintf("drove: read %s: %v", f.Name(), err), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	s.cfg.Log.Info("install API: serving drove", "peer", r.RemoteAddr, "binary", name, "bytes", st.Size())
	http.ServeContent(w, r, name, st.ModTime(), f)
}

// openBinary opens the drove binary for goos/goarch: this process's own
// executable for its own platform, otherwise BinaryDir's
// drove-<os>-<arch>. Its errors are written for the installing user.
func (s *Server) openBinary(goos, goarch string) (*os.File, error) {
	name := BinaryName(goos, goarch)
	if goos == runtime.GOOS && goarch == runtime.GOARCH {
		f, err := openRegular(s.cfg.Executable)
		if err != nil {
			return nil, fmt.Errorf("this coordinator cannot read its own executable for %s: %w", name, err)
		}
		return f, nil
	}
	own := runtime.GOOS + "/" + runtime.GOARCH
	if s.cfg.BinaryDir == "" {
		return nil, fmt.Errorf("this coordinator has no drove binary for %s/%s (only its own, %s)", goos, goarch, own)
	}
	path := filepath.Join(s.cfg.BinaryDir, name)
	f, err := openRegular(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("this coordinator has no drove binary for %s/%s: put one at %s on it (it serves its own %s itself)",
			goos, goarch, path, own)
	}
	if err != nil {
		return nil, fmt.Errorf("this coordinator cannot read %s: %w", path, err)
	}
	return f, nil
}

// openRegular opens path if it is a regular file.
func openRegular(path string) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err == nil && !st.Mode().IsRegular() {
		err = fmt.Errorf("%s is not a regular file", path)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}
