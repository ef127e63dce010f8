package collect

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/drove-project/drove/imagecache/ocilayout"
	"github.com/drove-project/drove/internal/testimage"
	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

var (
	amd64   = v1.Platform{OS: "linux", Architecture: "amd64"}
	arm64   = v1.Platform{OS: "linux", Architecture: "arm64"}
	riscv64 = v1.Platform{OS: "linux", Architecture: "riscv64"}
)

// randomLayer returns a random layer of n bytes of content.
func randomLayer(t *testing.T, n int64, mt types.MediaType) v1.Layer {
	t.Helper()
	return testimage.Layer(t, n, mt)
}

// buildImage makes an image of layers for p (a linux platform), with OCI
// media types or, with docker set, docker schema2 ones.
func buildImage(t *testing.T, p v1.Platform, docker bool, layers ...v1.Layer) v1.Image {
	t.Helper()
	return testimage.Image(t, testimage.Spec{Arch: p.Architecture, Variant: p.Variant, Docker: docker}, layers...)
}

// buildIndex makes an OCI index of the images, each under its config's
// platform.
func buildIndex(t *testing.T, imgs ...v1.Image) v1.ImageIndex {
	t.Helper()
	return testimage.IndexOf(t, imgs...)
}

// push writes an image or index to ref.
func push(t *testing.T, ref string, what remote.Taggable, auth authn.Authenticator) {
	t.Helper()
	if auth == nil {
		auth = authn.Anonymous
	}
	testimage.Push(t, ref, what, remote.WithAuth(auth))
}

func digestOf(t *testing.T, d interface{ Digest() (v1.Hash, error) }) v1.Hash {
	t.Helper()
	h, err := d.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func rawOf(t *testing.T, d interface{ RawManifest() ([]byte, error) }) []byte {
	t.Helper()
	b, err := d.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// imageBlobs returns the digests of an image's manifest, config and layers.
func imageBlobs(t *testing.T, img v1.Image) []v1.Hash {
	t.Helper()
	out := []v1.Hash{digestOf(t, img)}
	cfg, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	out = append(out, cfg)
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		out = append(out, digestOf(t, l))
	}
	return out
}

// blobFiles lists the file names under the layout's blobs/sha256, failing
// on anything that is not a verified blob (a temp file, wrong content).
func blobFiles(t *testing.T, dir string) []string {
	t.Helper()
	bdir := filepath.Join(dir, "blobs", "sha256")
	entries, err := os.ReadDir(bdir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(bdir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		if hex.EncodeToString(sum[:]) != e.Name() {
			t.Errorf("blobs/sha256/%s: content hashes to %x", e.Name(), sum)
		}
		names = append(names, e.Name())
	}
	slices.Sort(names)
	return names
}

// hexes returns the sorted, de-duplicated hex parts of digests.
func hexes(hs ...[]v1.Hash) []string {
	var out []string
	for _, list := range hs {
		for _, h := range list {
			out = append(out, h.Hex)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// assertNoTemps fails if the layout holds a temporary file.
func assertNoTemps(t *testing.T, dir string) {
	t.Helper()
	for _, d := range []string{dir, filepath.Join(dir, "blobs", "sha256")} {
		entries, err := os.ReadDir(d)
		if err != nil {
			continue
		}
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), tempPrefix) {
				t.Errorf("temporary file left: %s", filepath.Join(d, e.Name()))
			}
		}
	}
}

// countingTransport counts GETs of blobs by digest hex, and lets a test
// rewrite responses.
type countingTransport struct {
	base http.RoundTripper
	// mangle, when set, may replace the body of a blob response.
	mangle func(req *http.Request, hex string, body io.ReadCloser) io.ReadCloser

	mu    sync.Mutex
	blobs map[string]int
}

func newCountingTransport() *countingTransport {
	return &countingTransport{base: http.DefaultTransport.(*http.Transport).Clone(), blobs: make(map[string]int)}
}

func (c *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	hex := ""
	if i := strings.Index(req.URL.Path, "/blobs/sha256:"); i >= 0 && req.Method == http.MethodGet {
		hex = req.URL.Path[i+len("/blobs/sha256:"):]
		c.mu.Lock()
		c.blobs[hex]++
		c.mu.Unlock()
	}
	resp, err := c.base.RoundTrip(req)
	if err == nil && hex != "" && c.mangle != nil && resp.StatusCode == http.StatusOK {
		resp.Body = c.mangle(req, hex, resp.Body)
	}
	return resp, err
}

// gets returns how often the blob was fetched.
func (c *countingTransport) gets(h v1.Hash) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.blobs[h.Hex]
}

// total returns how many blob GETs there were.
func (c *countingTransport) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.blobs {
		n += v
	}
	return n
}

func (c *countingTransport) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.blobs = make(map[string]int)
}

// corruptReader flips the first byte it returns.
type corruptReader struct {
	io.ReadCloser
	done bool
}

func (r *corruptReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	if n > 0 && !r.done {
		p[0] ^= 0xff
		r.done = true
	}
	return n, err
}

// equalBytes reports whether a file holds want.
func fileEquals(t *testing.T, path string, want []byte) bool {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	return bytes.Equal(b, want)
}

// indexEntries returns the entries of dir/index.json, failing t when it
// cannot be read.
func indexEntries(t *testing.T, dir string) []v1.Descriptor {
	t.Helper()
	idx, err := ocilayout.ReadIndex(dir)
	if err != nil {
		t.Fatal(err)
	}
	return idx.Manifests
}
