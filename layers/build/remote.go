package build

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/drove-project/drove/internal/atomicfile"
	"github.com/drove-project/drove/layers/kubefile"
)

// remoteDir is the name under which downloaded sources appear in the build
// context seen by app type detection; nothing is written into the user's
// context directory.
const remoteDir = ".drove-remote"

// remoteFiles are the http(s):// sources of ADD, APP, CNI and CSI, fetched
// once before the steps run.
type remoteFiles struct {
	hostPaths    map[string]string // URL → downloaded file
	contextPaths map[string]string // URL → its path in the union context FS
	dir          string
}

func (b *builder) fetchRemote(ctx context.Context, steps []kubefile.Step, arch string) (*remoteFiles, error) {
	r := &remoteFiles{hostPaths: map[string]string{}, contextPaths: map[string]string{},
		dir: filepath.Join(b.o.WorkDir, "remote")}
	for _, st := range steps {
		var srcs []string
		switch st.Cmd {
		case kubefile.Add:
			srcs = st.Args[:len(st.Args)-1]
		case kubefile.App, kubefile.CNI, kubefile.CSI:
			srcs = st.Args[1:]
		}
		for _, src := range srcs {
			src = kubefile.ResolveArch(src, arch)
			if !kubefile.IsRemote(src) || r.hostPaths[src] != "" {
				continue
			}
			p, err := r.fetch(ctx, src)
			if err != nil {
				return nil, b.stepError(st, err)
			}
			rel, _ := filepath.Rel(r.dir, p)
			r.hostPaths[src] = p
			r.contextPaths[src] = path.Join(remoteDir, filepath.ToSlash(rel))
		}
	}
	return r, nil
}

// fetch downloads url to remote/<key>/<basename>; a finished download is
// reused.
func (r *remoteFiles) fetch(ctx context.Context, url string) (string, error) {
	base := path.Base(strings.SplitN(strings.SplitN(url, "?", 2)[0], "#", 2)[0])
	if base == "" || base == "/" || base == "." {
		base = "download"
	}
	dir := filepath.Join(r.dir, keyOf("url", url)[:16])
	dst := filepath.Join(dir, base)
	if _, err := os.Stat(dst); err == nil {
		return dst, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", fmt.Errorf("fetch %s: %w", url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("fetch %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("fetch %s: %s", url, resp.Status)
	}
	err = atomicfile.Write(dst, 0o644, func(w io.Writer) error {
		_, err := io.Copy(w, resp.Body)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("fetch %s: %w", url, err)
	}
	return dst, nil
}

// contextFS is the build context with the downloaded sources under
// remoteDir.
type contextFS struct {
	ctx    fs.FS
	remote fs.FS
}

func newContextFS(contextDir, remote string) fs.FS {
	return contextFS{ctx: os.DirFS(contextDir), remote: os.DirFS(remote)}
}

func (c contextFS) pick(name string) (fs.FS, string) {
	if rest, ok := strings.CutPrefix(name, remoteDir+"/"); ok {
		return c.remote, rest
	}
	return c.ctx, name
}

func (c contextFS) Open(name string) (fs.File, error) {
	f, n := c.pick(name)
	return f.Open(n)
}

func (c contextFS) Stat(name string) (fs.FileInfo, error) {
	f, n := c.pick(name)
	return fs.Stat(f, n)
}

func (c contextFS) ReadDir(name string) ([]fs.DirEntry, error) {
	f, n := c.pick(name)
	return fs.ReadDir(f, n)
}
