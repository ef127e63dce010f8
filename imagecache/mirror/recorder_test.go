package mirror

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/drove-project/drove/internal/testregistry"
	"github.com/drove-project/drove/layers/registry"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// isolatedRegistryOptions reads credentials from a file that does not
// exist, so the machine's own credentials play no part.
func isolatedRegistryOptions(t *testing.T) registry.Options {
	return registry.Options{AuthFile: filepath.Join(t.TempDir(), "config.json")}
}

// wantTake checks what r recorded since the last Take.
func wantTake(t *testing.T, r *Recorder, want ...string) {
	t.Helper()
	got := r.Take()
	if want == nil {
		want = []string{}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("recorded %q, want %q", got, want)
	}
}

func TestRecorder(t *testing.T) {
	up := testregistry.Start(t, testregistry.Opts{})
	xDigest := push(t, up.Ref("x", ":1"), ociImage(t))
	multi := ociIndex(t)
	multiDigest := push(t, up.Ref("multi", ":1"), multi)
	y, err := random.Image(5000, 3)
	if err != nil {
		t.Fatal(err)
	}
	yDigest := push(t, up.Ref("team/y", ":2"), y)

	logger, logs := testLogger()
	rec := NewRecorder(RecorderOptions{Registry: isolatedRegistryOptions(t), Log: logger})
	host := serve(t, rec)
	base := "http://" + host
	conf := filepath.Join(t.TempDir(), "registries.conf")
	if err := WriteRegistriesConf(conf, []string{up.Host}, host); err != nil {
		t.Fatal(err)
	}
	env, policy := skopeoEnv(t, conf)
	ns := "?ns=" + up.Host

	t.Run("skopeo copy records the tag and keeps the bytes", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "oci")
		if _, err := runSkopeo(t, env, policy, "copy", "docker://"+up.Ref("x", ":1"), "oci:"+out+":x"); err != nil {
			t.Fatal(err)
		}
		wantTake(t, rec, up.Ref("x", ":1"))
		if got := layoutIndexDigest(t, out); got != xDigest {
			t.Errorf("copied manifest %s, upstream %s", got, xDigest)
		}
		if !strings.Contains(logs.String(), "image="+up.Ref("x", ":1")) {
			t.Errorf("the recorded image was not logged:\n%s", logs)
		}
	})

	t.Run("a multi-platform index pulled by tag is one image", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "oci")
		if _, err := runSkopeo(t, env, policy, "copy", "--all", "docker://"+up.Ref("multi", ":1"), "oci:"+out+":m"); err != nil {
			t.Fatal(err)
		}
		wantTake(t, rec, up.Ref("multi", ":1"))
		if got := layoutIndexDigest(t, out); got != multiDigest {
			t.Errorf("copied index %s, upstream %s", got, multiDigest)
		}
		// One platform only: skopeo fetches the index by tag, then the
		// image by digest.
		if _, err := runSkopeo(t, env, policy, "--override-arch", "arm64", "copy", "docker://"+up.Ref("multi", ":1"), "dir:"+filepath.Join(t.TempDir(), "d")); err != nil {
			t.Fatal(err)
		}
		wantTake(t, rec, up.Ref("multi", ":1"))
	})

	t.Run("HEAD by tag then GET by digest, as containerd pulls", func(t *testing.T) {
		resp, _ := do(t, http.MethodHead, base+"/v2/multi/manifests/1"+ns, nil)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Docker-Content-Digest") != multiDigest.String() {
			t.Fatalf("HEAD: %s %q", resp.Status, resp.Header.Get("Docker-Content-Digest"))
		}
		wantTake(t, rec) // a HEAD alone pulls nothing
		do(t, http.MethodHead, base+"/v2/multi/manifests/1"+ns, nil)
		resp, body := do(t, http.MethodGet, base+"/v2/multi/manifests/"+multiDigest.String()+ns, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET index by digest: %s %s", resp.Status, body)
		}
		if sum := sha256.Sum256(body); hex.EncodeToString(sum[:]) != multiDigest.Hex {
			t.Fatal("the index's bytes changed on the way through")
		}
		im, err := multi.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range im.Manifests {
			if resp, body := do(t, http.MethodGet, base+"/v2/multi/manifests/"+m.Digest.String()+ns, nil); resp.StatusCode != http.StatusOK {
				t.Fatalf("GET child: %s %s", resp.Status, body)
			}
		}
		wantTake(t, rec, up.Ref("multi", ":1"))
	})

	t.Run("a manifest pulled by digest alone", func(t *testing.T) {
		enc := strings.Replace(up.Host, ":", "_", 1)
		resp, body := do(t, http.MethodGet, base+"/v2/"+enc+"/team/y/manifests/"+yDigest.String(), nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s %s", resp.Status, body)
		}
		wantTake(t, rec, up.Ref("team/y", "@"+yDigest.String()))
	})

	t.Run("go-containerregistry in containerd's ns style", func(t *testing.T) {
		ref, err := name.ParseReference(host+"/team/y:2", name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		img, err := remote.Image(ref, remote.WithTransport(nsTransport{ns: up.Host, base: http.DefaultTransport}))
		if err != nil {
			t.Fatal(err)
		}
		if err := validate.Image(img); err != nil {
			t.Fatal(err)
		}
		if got := digestOf(t, img); got != yDigest {
			t.Fatalf("digest %s, want %s", got, yDigest)
		}
		wantTake(t, rec, up.Ref("team/y", ":2"))
	})

	t.Run("upstream errors pass through", func(t *testing.T) {
		for _, c := range []struct {
			path   string
			status int
			code   string
		}{
			{"/v2/nothing/here/manifests/1" + ns, http.StatusNotFound, codeManifestUnknown}, // docker-registry says so for unknown repositories
			{"/v2/x/manifests/nope" + ns, http.StatusNotFound, codeManifestUnknown},
			{"/v2/x/blobs/sha256:" + strings.Repeat("0", 64) + ns, http.StatusNotFound, codeBlobUnknown},
			{"/v2/x/manifests/1?ns=127.0.0.1:1", http.StatusBadGateway, codeUnavailable},
		} {
			resp, body := do(t, http.MethodGet, base+c.path, nil)
			if resp.StatusCode != c.status || !slices.Contains(errorCodes(t, body), c.code) {
				t.Errorf("GET %s: %s %s, want %d %s", c.path, resp.Status, body, c.status, c.code)
			}
		}
		wantTake(t, rec)
	})

	t.Run("writes are refused", func(t *testing.T) {
		for _, m := range []string{http.MethodPut, http.MethodPost, http.MethodDelete} {
			resp, body := do(t, m, base+"/v2/x/manifests/1"+ns, nil)
			if resp.StatusCode != http.StatusMethodNotAllowed || !slices.Equal(errorCodes(t, body), []string{codeUnsupported}) {
				t.Errorf("%s: %s %s", m, resp.Status, body)
			}
		}
	})
}

func TestRecorderCredentials(t *testing.T) {
	up := testregistry.Start(t, testregistry.Opts{User: "builder", Password: "s3cret-pw"})
	basic := &authn.Basic{Username: up.User, Password: up.Password}
	ref, err := name.ParseReference(up.Ref("private/app", ":1"), name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img := ociImage(t)
	if err := remote.Write(ref, img, remote.WithAuth(basic)); err != nil {
		t.Fatal(err)
	}
	path := "/v2/private/app/manifests/1?ns=" + up.Host

	anon := NewRecorder(RecorderOptions{Registry: isolatedRegistryOptions(t)})
	resp, body := do(t, http.MethodGet, "http://"+serve(t, anon)+path, nil)
	if resp.StatusCode != http.StatusUnauthorized || !slices.Contains(errorCodes(t, body), "UNAUTHORIZED") {
		t.Fatalf("without credentials: %s %s, want the upstream's 401", resp.Status, body)
	}
	wantTake(t, anon)

	withAuth := NewRecorder(RecorderOptions{Registry: isolatedRegistryOptions(t), Auth: map[string]authn.Authenticator{up.Host: basic}})
	if resp, body := do(t, http.MethodGet, "http://"+serve(t, withAuth)+path, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("with Auth: %s %s", resp.Status, body)
	}
	wantTake(t, withAuth, up.Ref("private/app", ":1"))

	opts := isolatedRegistryOptions(t)
	f, err := registry.ParseAuthFile(nil)
	if err != nil {
		t.Fatal(err)
	}
	f.Set(up.Host, registry.Credential{Username: up.User, Password: up.Password})
	if err := registry.WriteAuthFile(opts.AuthFile, f); err != nil {
		t.Fatal(err)
	}
	fromFile := NewRecorder(RecorderOptions{Registry: opts})
	if resp, body := do(t, http.MethodGet, "http://"+serve(t, fromFile)+path, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("with the auth file: %s %s", resp.Status, body)
	}
	wantTake(t, fromFile, up.Ref("private/app", ":1"))
}
