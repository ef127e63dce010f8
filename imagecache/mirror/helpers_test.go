package mirror

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/drove-project/drove/internal/testimage"
)

// ociImage is a random single-layer linux/amd64 image with OCI media types
// throughout, so tools that convert Docker types when writing an OCI
// layout keep its bytes.
func ociImage(t *testing.T) v1.Image {
	t.Helper()
	return testimage.Image(t, testimage.Spec{Layers: 1, LayerSize: 2048, Arch: "amd64"})
}

// ociIndex is an OCI index of two random images, linux/amd64 and
// linux/arm64. Its entries carry no artifactType (which go-containerregistry
// adds and Debian's skopeo drops when it copies an index, changing the
// digest).
func ociIndex(t *testing.T) v1.ImageIndex {
	t.Helper()
	idx := testimage.Index(t, testimage.Spec{Layers: 1, LayerSize: 2048}, "amd64", "arm64")
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	im = im.DeepCopy()
	for i := range im.Manifests {
		im.Manifests[i].ArtifactType = ""
	}
	raw, err := json.Marshal(im)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(raw)
	return plainIndex{inner: idx, manifest: im, raw: raw, digest: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}}
}

// plainIndex is inner with the manifest bytes raw.
type plainIndex struct {
	inner    v1.ImageIndex
	manifest *v1.IndexManifest
	raw      []byte
	digest   v1.Hash
}

func (p plainIndex) MediaType() (types.MediaType, error)         { return types.OCIImageIndex, nil }
func (p plainIndex) RawManifest() ([]byte, error)                { return p.raw, nil }
func (p plainIndex) Digest() (v1.Hash, error)                    { return p.digest, nil }
func (p plainIndex) Size() (int64, error)                        { return int64(len(p.raw)), nil }
func (p plainIndex) IndexManifest() (*v1.IndexManifest, error)   { return p.manifest, nil }
func (p plainIndex) Image(h v1.Hash) (v1.Image, error)           { return p.inner.Image(h) }
func (p plainIndex) ImageIndex(h v1.Hash) (v1.ImageIndex, error) { return p.inner.ImageIndex(h) }

// push writes img (a v1.Image or v1.ImageIndex) to ref and returns its
// digest.
func push(t *testing.T, ref string, img remote.Taggable) v1.Hash {
	t.Helper()
	return testimage.Push(t, ref, img)
}

// digestOf returns the digest of an image or index.
func digestOf(t *testing.T, x interface{ Digest() (v1.Hash, error) }) v1.Hash {
	t.Helper()
	d, err := x.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// serve runs h on a loopback listener for the rest of t and returns its
// host:port.
func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// logBuffer is a concurrency-safe log sink for a handler under test.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testLogger logs as text into a buffer the test can read.
func testLogger() (*slog.Logger, *logBuffer) {
	b := &logBuffer{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

// skopeoBin returns skopeo's path, skipping t when it is not installed.
func skopeoBin(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("skopeo")
	if err != nil {
		t.Skipf("skopeo not found (apt-get install skopeo): %v", err)
	}
	return p
}

// skopeoEnv is an isolated environment for skopeo, with a policy that
// accepts anything, reading the registries.conf at conf (none when "").
//
// The file is named by CONTAINERS_REGISTRIES_CONF, which newer skopeo
// reads, and also copied to $HOME/.config/containers/registries.conf:
// Debian's skopeo 1.9.3 ignores the variable but reads that file (in place
// of /etc/containers/registries.conf) for any user.
func skopeoEnv(t *testing.T, conf string) (env []string, policy string) {
	t.Helper()
	home := t.TempDir()
	var data []byte
	if conf != "" {
		var err error
		if data, err = os.ReadFile(conf); err != nil {
			t.Fatal(err)
		}
	}
	userConf := filepath.Join(home, ".config", "containers", "registries.conf")
	if err := os.MkdirAll(filepath.Dir(userConf), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(userConf, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if conf == "" {
		conf = userConf
	}
	policy = filepath.Join(home, "policy.json")
	if err := os.WriteFile(policy, []byte(`{"default":[{"type":"insecureAcceptAnything"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	env = append(os.Environ(),
		"CONTAINERS_REGISTRIES_CONF="+conf,
		"REGISTRY_AUTH_FILE="+filepath.Join(home, "auth.json"),
		"HOME="+home,
	)
	return env, policy
}

// runSkopeo runs skopeo with args (after --policy) in env and returns its
// standard output.
func runSkopeo(t *testing.T, env []string, policy string, args ...string) (string, error) {
	t.Helper()
	bin := skopeoBin(t)
	full := append([]string{"--policy", policy}, args...)
	cmd := exec.Command(bin, full...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), errors.New("skopeo " + strings.Join(args, " ") + ": " + err.Error() + ": " + stderr.String())
	}
	return stdout.String(), nil
}

// layoutIndexDigest returns the digest of the only manifest in the OCI
// layout at dir, as skopeo wrote it.
func layoutIndexDigest(t *testing.T, dir string) v1.Hash {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	im, err := v1.ParseIndexManifest(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 {
		t.Fatalf("%s: want 1 manifest, got %d", dir, len(im.Manifests))
	}
	return im.Manifests[0].Digest
}

// do sends a request with the given method and headers to url.
func do(t *testing.T, method, url string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// errorCodes returns the codes of a distribution error document.
func errorCodes(t *testing.T, body []byte) []string {
	t.Helper()
	var doc errorBody
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatalf("not a distribution error document: %q: %v", body, err)
	}
	var codes []string
	for _, e := range doc.Errors {
		codes = append(codes, e.Code)
	}
	return codes
}

// nsTransport adds ?ns=<registry> to every request, as containerd does
// when it uses a hosts.toml mirror.
type nsTransport struct {
	ns   string
	base http.RoundTripper
}

func (n nsTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	q := r.URL.Query()
	q.Set("ns", n.ns)
	r.URL.RawQuery = q.Encode()
	return n.base.RoundTrip(r)
}
