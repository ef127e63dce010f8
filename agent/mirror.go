package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/drove-project/drove/imagecache"
	"github.com/drove-project/drove/imagecache/mirror"
)

// NodeMirror is the agent's node-local registry mirror: a read-only OCI
// distribution endpoint serving the container images cached in every
// cluster image unpacked on this node, by their original names.
type NodeMirror struct {
	srv *http.Server
	ln  net.Listener
}

// StartNodeMirror serves the mirror on addr. It serves the layouts of
// <dataDir>/rootfs/*/container-images, the most recently unpacked first,
// looked up on each request, so an image delivered later is served at
// once.
func StartNodeMirror(addr, dataDir string, log *slog.Logger) (*NodeMirror, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("node registry mirror on %s: %w (another registry there? --mirror-addr picks another address, off disables it)", addr, err)
	}
	h := mirror.NewNode(mirror.NodeOptions{Layouts: func() []string { return cacheLayouts(dataDir) }, Log: log})
	m := &NodeMirror{ln: ln, srv: &http.Server{Handler: h, ReadHeaderTimeout: 30 * time.Second}}
	go func() {
		if err := m.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("node registry mirror stopped", "err", err)
		}
	}()
	log.Info("node registry mirror serving", "addr", ln.Addr().String())
	return m, nil
}

// Addr is where the mirror listens.
func (m *NodeMirror) Addr() string { return m.ln.Addr().String() }

// Close stops the mirror.
func (m *NodeMirror) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return m.srv.Shutdown(ctx)
}

// cacheLayouts lists the cache layouts of the unpacked images, newest
// first.
func cacheLayouts(dataDir string) []string {
	all, _ := filepath.Glob(filepath.Join(dataDir, "rootfs", "*", imagecache.LayoutDir))
	var dirs []string
	for _, d := range all {
		if !strings.HasPrefix(filepath.Base(filepath.Dir(d)), ".") { // not one being unpacked
			dirs = append(dirs, d)
		}
	}
	mtime := map[string]time.Time{}
	for _, d := range dirs {
		if fi, err := os.Stat(filepath.Dir(d)); err == nil {
			mtime[d] = fi.ModTime()
		}
	}
	sort.SliceStable(dirs, func(i, j int) bool { return mtime[dirs[i]].After(mtime[dirs[j]]) })
	return dirs
}
