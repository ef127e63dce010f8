package mirror

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drove-project/drove/imagecache/ocilayout"
	"github.com/drove-project/drove/internal/testregistry"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// nodeFixture is a node mirror serving a layout copied from a registry
// that has been stopped since.
type nodeFixture struct {
	upstream string // host of the stopped upstream registry
	dir      string // the OCI layout
	node     string // the node mirror's host:port
	log      *logBuffer
	// digests of the cached images: app, pause, multi (an index), and
	// child (multi's arm64 image).
	digests map[string]v1.Hash
	// layer is a compressed layer of pause.
	layer v1.Hash
}

// newNodeFixture pushes three images to a real registry, copies them into
// an OCI layout under these names, stops the registry, and serves the
// layout:
//
//	UPSTREAM/team/app:v1 and docker.io/library/nginx:1.25  (app, Docker media types)
//	registry.k8s.io/pause:3.9 and ghcr.io/acme/tool:0.1    (pause, OCI)
//	quay.io/org/multi:2                                    (multi, an OCI index)
func newNodeFixture(t *testing.T) *nodeFixture {
	f := &nodeFixture{dir: t.TempDir(), digests: map[string]v1.Hash{}}
	t.Run("upstream", func(t *testing.T) {
		up := testregistry.Start(t, testregistry.Opts{})
		p, err := layout.Write(f.dir, empty.Index)
		if err != nil {
			t.Fatal(err)
		}
		app, err := random.Image(3000, 2)
		if err != nil {
			t.Fatal(err)
		}
		f.digests["app"] = push(t, up.Ref("team/app", ":v1"), app)
		f.digests["pause"] = push(t, up.Ref("pause", ":3.9"), ociImage(t))
		f.digests["multi"] = push(t, up.Ref("multi", ":1"), ociIndex(t))
		for _, c := range []struct{ from, as string }{
			{up.Ref("team/app", ":v1"), up.Ref("team/app", ":v1")},
			{up.Ref("team/app", ":v1"), "docker.io/library/nginx:1.25"},
			{up.Ref("pause", ":3.9"), "registry.k8s.io/pause:3.9"},
			{up.Ref("pause", ":3.9"), "ghcr.io/acme/tool:0.1"},
			{up.Ref("multi", ":1"), "quay.io/org/multi:2"},
		} {
			copyToLayout(t, p, c.from, c.as)
		}
		f.upstream = up.Host
	})
	if f.upstream == "" {
		t.Skip("no upstream registry (see the upstream subtest)")
	}
	if resp, err := http.Get("http://" + f.upstream + "/v2/"); err == nil {
		resp.Body.Close()
		t.Fatalf("upstream registry %s still answers after it was stopped", f.upstream)
	}
	idx, err := layout.ImageIndexFromPath(f.dir)
	if err != nil {
		t.Fatal(err)
	}
	multi, err := idx.ImageIndex(f.digests["multi"])
	if err != nil {
		t.Fatal(err)
	}
	im, err := multi.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	f.digests["child"] = im.Manifests[1].Digest
	pause, err := idx.Image(f.digests["pause"])
	if err != nil {
		t.Fatal(err)
	}
	layers, err := pause.Layers()
	if err != nil {
		t.Fatal(err)
	}
	f.layer = digestOf(t, layers[0])
	logger := newNodeLogger(f)
	f.node = serve(t, NewNode(NodeOptions{Layouts: func() []string { return []string{f.dir} }, Log: logger}))
	return f
}

// copyToLayout appends the image or index at from to the layout p, named
// as in the annotation io.containerd.image.name.
func copyToLayout(t *testing.T, p layout.Path, from, as string) {
	t.Helper()
	ref, err := name.ParseReference(from, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Get(ref)
	if err != nil {
		t.Fatalf("get %s: %v", from, err)
	}
	ann := layout.WithAnnotations(map[string]string{ocilayout.ImageNameAnnotation: as})
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			t.Fatal(err)
		}
		err = p.AppendIndex(idx, ann)
	} else {
		img, err2 := desc.Image()
		if err2 != nil {
			t.Fatal(err2)
		}
		err = p.AppendImage(img, ann)
	}
	if err != nil {
		t.Fatalf("copy %s into the layout: %v", from, err)
	}
}

// newNodeLogger gives f a log buffer and returns the logger writing to it.
func newNodeLogger(f *nodeFixture) *slog.Logger {
	l, b := testLogger()
	f.log = b
	return l
}

// dirManifestDigest is the digest of the manifest skopeo copied into a dir:
// destination (which keeps the bytes as fetched).
func dirManifestDigest(t *testing.T, dir string) v1.Hash {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
}

func TestNodeMirror(t *testing.T) {
	f := newNodeFixture(t)
	base := "http://" + f.node

	t.Run("skopeo inspect by plain name", func(t *testing.T) {
		env, policy := skopeoEnv(t, "")
		for _, ref := range []string{f.node + "/library/nginx:1.25", f.node + "/nginx:1.25"} {
			out, err := runSkopeo(t, env, policy, "inspect", "--tls-verify=false", "docker://"+ref)
			if err != nil {
				t.Fatal(err)
			}
			var got struct{ Digest string }
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("skopeo inspect output %q: %v", out, err)
			}
			if got.Digest != f.digests["app"].String() {
				t.Errorf("skopeo inspect %s: digest %s, want the upstream's %s", ref, got.Digest, f.digests["app"])
			}
		}
	})

	t.Run("skopeo copy by original names through registries.conf", func(t *testing.T) {
		conf := filepath.Join(t.TempDir(), "registries.conf")
		if err := WriteRegistriesConf(conf, []string{f.upstream, "docker.io", "registry.k8s.io", "quay.io"}, f.node); err != nil {
			t.Fatal(err)
		}
		env, policy := skopeoEnv(t, conf)
		for _, c := range []struct {
			ref, want string
			all       bool
		}{
			{f.upstream + "/team/app:v1", "app", false},
			{"docker.io/library/nginx:1.25", "app", false},
			{"registry.k8s.io/pause:3.9", "pause", false},
			{"quay.io/org/multi:2", "multi", true},
		} {
			out := filepath.Join(t.TempDir(), "img")
			args := []string{"copy", "docker://" + c.ref, "dir:" + out}
			if c.all {
				args = []string{"copy", "--all", "docker://" + c.ref, "dir:" + out}
			}
			if _, err := runSkopeo(t, env, policy, args...); err != nil {
				t.Fatalf("pull %s with its registry unreachable: %v", c.ref, err)
			}
			if got := dirManifestDigest(t, out); got != f.digests[c.want] {
				t.Errorf("skopeo copy %s: manifest %s, want %s", c.ref, got, f.digests[c.want])
			}
		}
	})

	t.Run("go-containerregistry in containerd's ns style", func(t *testing.T) {
		for _, c := range []struct{ ns, repo, want string }{
			{"docker.io", "library/nginx:1.25", "app"},
			{"index.docker.io", "library/nginx:1.25", "app"},
			{"registry.k8s.io", "pause:3.9", "pause"},
			{f.upstream, "team/app:v1", "app"},
			{SealerHub, "pause:3.9", "pause"},
			{SealerHub, "nginx:1.25", "app"},
			{SealerHub, "org/multi:2", "multi"},
		} {
			pullAndValidate(t, f.node+"/"+c.repo, remote.WithTransport(nsTransport{ns: c.ns, base: http.DefaultTransport}), f.digests[c.want])
		}
	})

	t.Run("go-containerregistry in registries.conf style", func(t *testing.T) {
		enc := strings.Replace(f.upstream, ":", "_", 1)
		for _, c := range []struct{ repo, want string }{
			{"docker.io/library/nginx:1.25", "app"},
			{"registry.k8s.io/pause:3.9", "pause"},
			{"quay.io/org/multi:2", "multi"},
			{enc + "/team/app:v1", "app"},
		} {
			pullAndValidate(t, f.node+"/"+c.repo, nil, f.digests[c.want])
		}
	})

	t.Run("HEAD of a manifest", func(t *testing.T) {
		resp, body := do(t, http.MethodHead, base+"/v2/library/nginx/manifests/1.25", nil)
		if resp.StatusCode != http.StatusOK || len(body) != 0 {
			t.Fatalf("HEAD: %s, %d body bytes", resp.Status, len(body))
		}
		_, full := do(t, http.MethodGet, base+"/v2/library/nginx/manifests/1.25", nil)
		if resp.ContentLength != int64(len(full)) || resp.ContentLength == 0 {
			t.Errorf("HEAD Content-Length %d, GET body %d bytes", resp.ContentLength, len(full))
		}
		if got := resp.Header.Get("Docker-Content-Digest"); got != f.digests["app"].String() {
			t.Errorf("Docker-Content-Digest %q, want %s", got, f.digests["app"])
		}
		if got := resp.Header.Get("Content-Type"); got != "application/vnd.docker.distribution.manifest.v2+json" {
			t.Errorf("Content-Type %q", got)
		}
	})

	t.Run("manifests by digest only within their repository", func(t *testing.T) {
		child := f.digests["child"].String()
		resp, body := do(t, http.MethodGet, base+"/v2/org/multi/manifests/"+child+"?ns=quay.io", nil)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/vnd.oci.image.manifest.v1+json" {
			t.Fatalf("child of a cached index: %s %q: %s", resp.Status, resp.Header.Get("Content-Type"), body)
		}
		resp, body = do(t, http.MethodGet, base+"/v2/library/nginx/manifests/"+child, nil)
		if resp.StatusCode != http.StatusNotFound || !slices.Contains(errorCodes(t, body), codeManifestUnknown) {
			t.Fatalf("another repository's manifest: %s %s", resp.Status, body)
		}
	})

	t.Run("blob ranges", func(t *testing.T) {
		url := base + "/v2/pause/blobs/" + f.layer.String() + "?ns=registry.k8s.io"
		_, whole := do(t, http.MethodGet, url, nil)
		resp, part := do(t, http.MethodGet, url, map[string]string{"Range": "bytes=5-14"})
		if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(part, whole[5:15]) {
			t.Fatalf("range: %s, %d bytes", resp.Status, len(part))
		}
		sum := sha256.Sum256(whole)
		if hex.EncodeToString(sum[:]) != f.layer.Hex {
			t.Fatalf("blob bytes do not hash to %s", f.layer)
		}
	})

	t.Run("tags list", func(t *testing.T) {
		resp, body := do(t, http.MethodGet, base+"/v2/docker.io/library/nginx/tags/list", nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %s", resp.Status, body)
		}
		var tl tagList
		if err := json.Unmarshal(body, &tl); err != nil || !slices.Equal(tl.Tags, []string{"1.25"}) {
			t.Fatalf("tags %q (%v)", body, err)
		}
	})

	t.Run("writes are refused", func(t *testing.T) {
		for _, m := range []string{http.MethodPut, http.MethodPost, http.MethodDelete, http.MethodPatch} {
			for _, p := range []string{"/v2/library/nginx/manifests/1.25", "/v2/library/nginx/blobs/uploads/", "/v2/library/nginx/blobs/" + f.layer.String()} {
				resp, body := do(t, m, base+p, nil)
				if resp.StatusCode != http.StatusMethodNotAllowed || !slices.Equal(errorCodes(t, body), []string{codeUnsupported}) {
					t.Errorf("%s %s: %s %s", m, p, resp.Status, body)
				}
			}
		}
	})

	t.Run("unknown names and paths", func(t *testing.T) {
		for _, c := range []struct{ path, code string }{
			{"/v2/nobody/nothing/manifests/1", codeNameUnknown},
			{"/v2/library/nginx/manifests/9.9", codeManifestUnknown},
			{"/v2/pause/manifests/3.9", codeNameUnknown}, // docker.io/library/pause is not cached
			{"/v2/library/nginx/blobs/sha256:" + strings.Repeat("0", 64), codeBlobUnknown},
			{"/v2/_catalog", codeUnsupported},
			{"/v2/library/nginx/blobs/uploads/x", codeUnsupported},
		} {
			resp, body := do(t, http.MethodGet, base+c.path, nil)
			if resp.StatusCode != http.StatusNotFound || !slices.Contains(errorCodes(t, body), c.code) {
				t.Errorf("GET %s: %s %s, want 404 %s", c.path, resp.Status, body, c.code)
			}
		}
		env, policy := skopeoEnv(t, "")
		if _, err := runSkopeo(t, env, policy, "inspect", "--tls-verify=false", "docker://"+f.node+"/nobody/nothing:1"); err == nil {
			t.Error("skopeo inspect of an image not cached succeeded")
		}
	})

	t.Run("API version probe", func(t *testing.T) {
		resp, _ := do(t, http.MethodGet, base+"/v2/", nil)
		if resp.StatusCode != http.StatusOK || resp.Header.Get(apiVersionHeader) != "registry/2.0" {
			t.Fatalf("GET /v2/: %s %q", resp.Status, resp.Header.Get(apiVersionHeader))
		}
	})
}

// pullAndValidate gets ref through the node mirror, checks its digest and
// reads and checks every manifest and blob below it.
func pullAndValidate(t *testing.T, ref string, opt remote.Option, want v1.Hash) {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	var opts []remote.Option
	if opt != nil {
		opts = append(opts, opt)
	}
	desc, err := remote.Get(r, opts...)
	if err != nil {
		t.Fatalf("get %s: %v", ref, err)
	}
	if desc.Digest != want {
		t.Fatalf("get %s: digest %s, want %s", ref, desc.Digest, want)
	}
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			t.Fatal(err)
		}
		if err := validate.Index(idx); err != nil {
			t.Fatalf("index %s: %v", ref, err)
		}
		return
	}
	img, err := desc.Image()
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(img); err != nil {
		t.Fatalf("image %s: %v", ref, err)
	}
}

// memLayout writes img into a new OCI layout as ref and returns the
// layout's directory.
func memLayout(t *testing.T, ref string, img v1.Image) string {
	t.Helper()
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{ocilayout.ImageNameAnnotation: ref})); err != nil {
		t.Fatal(err)
	}
	return dir
}

// corrupt flips every byte of the file at path, keeping its size, and
// moves its modification time so a cached verdict no longer applies.
func corrupt(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] ^= 0xff
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Minute)
	if err := os.Chtimes(path, later, later); err != nil {
		t.Fatal(err)
	}
}

func TestNodeRefusesTamperedBlob(t *testing.T) {
	img := ociImage(t)
	dir := memLayout(t, "docker.io/library/t:1", img)
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	d := digestOf(t, layers[0])
	logger, logs := testLogger()
	h := NewNode(NodeOptions{Layouts: func() []string { return []string{dir} }, Log: logger})
	base := "http://" + serve(t, h)
	url := base + "/v2/library/t/blobs/" + d.String()

	for range 3 {
		if resp, _ := do(t, http.MethodGet, url, nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("intact blob: %s", resp.Status)
		}
	}
	if n := h.(*node).verify.hashed.Load(); n != 1 {
		t.Errorf("an unchanged blob served 3 times was hashed %d times, want 1", n)
	}

	corrupt(t, filepath.Join(dir, "blobs", "sha256", d.Hex))
	resp, body := do(t, http.MethodGet, url, nil)
	if resp.StatusCode != http.StatusNotFound || !slices.Equal(errorCodes(t, body), []string{codeBlobUnknown}) ||
		!strings.Contains(string(body), "on this node does not match its digest") {
		t.Fatalf("tampered blob: %s %s", resp.Status, body)
	}
	if !strings.Contains(logs.String(), "do not match its digest") || !strings.Contains(logs.String(), d.String()) {
		t.Errorf("the refused blob was not logged with its digest: %s", logs)
	}

	m := digestOf(t, img)
	corrupt(t, filepath.Join(dir, "blobs", "sha256", m.Hex))
	resp, body = do(t, http.MethodGet, base+"/v2/library/t/manifests/1", nil)
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(body), "does not match its digest") {
		t.Fatalf("tampered manifest: %s %s", resp.Status, body)
	}
}

func TestNodeFollowsLayouts(t *testing.T) {
	older, newer := ociImage(t), ociImage(t)
	oldDir := memLayout(t, "registry.k8s.io/app:1", older)
	newDir := memLayout(t, "registry.k8s.io/app:1", newer)
	broken := t.TempDir()
	if err := os.WriteFile(filepath.Join(broken, "index.json"), []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var dirs []string
	setDirs := func(d ...string) {
		mu.Lock()
		dirs = d
		mu.Unlock()
	}
	logger, logs := testLogger()
	base := "http://" + serve(t, NewNode(NodeOptions{Log: logger, Layouts: func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), dirs...)
	}}))
	url := base + "/v2/app/manifests/1?ns=registry.k8s.io"
	digest := func() string {
		resp, body := do(t, http.MethodGet, url, nil)
		if resp.StatusCode != http.StatusOK {
			return fmt.Sprintf("%s %s", resp.Status, body)
		}
		return resp.Header.Get("Docker-Content-Digest")
	}

	if got := digest(); !strings.Contains(got, "404") {
		t.Fatalf("no layouts yet: %s", got)
	}
	setDirs(broken, oldDir)
	if got := digest(); got != digestOf(t, older).String() {
		t.Fatalf("after the first layout appeared: %s", got)
	}
	digest()
	if n := strings.Count(logs.String(), "layout not fully served"); n != 1 {
		t.Errorf("the broken layout was reported %d times, want once:\n%s", n, logs)
	}
	setDirs(newDir, broken, oldDir)
	if got := digest(); got != digestOf(t, newer).String() {
		t.Fatalf("the newest layout should win: %s", got)
	}
	// The manifest of the older image is still served by digest.
	resp, _ := do(t, http.MethodGet, base+"/v2/registry.k8s.io/app/manifests/"+digestOf(t, older).String(), nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("older image by digest: %s", resp.Status)
	}
}
