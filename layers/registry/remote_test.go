package registry

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/drove-project/drove/internal/testimage"
	"github.com/drove-project/drove/internal/testregistry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// randomImage builds an OCI image of two random layers for platform
// (a linux one).
func randomImage(t *testing.T, platform v1.Platform) v1.Image {
	t.Helper()
	return testimage.Image(t, testimage.Spec{Layers: 2, LayerSize: 4096, Arch: platform.Architecture, Variant: platform.Variant})
}

var (
	amd64 = v1.Platform{OS: "linux", Architecture: "amd64"}
	arm64 = v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}
)

// twoPlatformIndex builds an OCI index of an amd64 and an arm64 image.
func twoPlatformIndex(t *testing.T) (v1.ImageIndex, map[string]v1.Image) {
	t.Helper()
	imgs := map[string]v1.Image{"amd64": randomImage(t, amd64), "arm64": randomImage(t, arm64)}
	return testimage.IndexOf(t, imgs["amd64"], imgs["arm64"]), imgs
}

func digestOf(t *testing.T, d interface{ Digest() (v1.Hash, error) }) v1.Hash {
	t.Helper()
	h, err := d.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// loggedIn starts an authenticated registry and logs in to it with a
// fresh credentials file.
func loggedIn(t *testing.T) (*testregistry.Registry, Options) {
	t.Helper()
	reg := testregistry.Start(t, testregistry.Opts{User: "pusher", Password: "pw"})
	opts := Options{AuthFile: filepath.Join(t.TempDir(), "config.json")}
	if err := Login(context.Background(), reg.Host, reg.User, reg.Password, opts); err != nil {
		t.Fatalf("Login: %v", err)
	}
	return reg, opts
}

// sameLayers fails t unless got has the layer and config digests of want.
func sameLayers(t *testing.T, got, want v1.Image) {
	t.Helper()
	gm, err := got.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	wm, err := want.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if gm.Config.Digest != wm.Config.Digest || len(gm.Layers) != len(wm.Layers) {
		t.Fatalf("pulled manifest %+v differs from pushed %+v", gm, wm)
	}
	for i := range gm.Layers {
		if gm.Layers[i].Digest != wm.Layers[i].Digest {
			t.Errorf("layer %d: %s, want %s", i, gm.Layers[i].Digest, wm.Layers[i].Digest)
		}
	}
	// Reading a layer really fetches and verifies the blob.
	layers, err := got.Layers()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := layers[0].Compressed()
	if err != nil {
		t.Fatalf("fetch layer: %v", err)
	}
	h := sha256.New()
	buf := make([]byte, 32<<10)
	for {
		n, err := rc.Read(buf)
		h.Write(buf[:n])
		if err != nil {
			break
		}
	}
	rc.Close()
	if fmt.Sprintf("sha256:%x", h.Sum(nil)) != wm.Layers[0].Digest.String() {
		t.Errorf("layer bytes do not match digest %s", wm.Layers[0].Digest)
	}
}

func TestPushPullImage(t *testing.T) {
	reg, opts := loggedIn(t)
	ctx := context.Background()
	img := randomImage(t, amd64)
	ref := reg.Ref("drove/app", ":v1")

	var mu sync.Mutex
	var last [2]int64
	calls := 0
	opts.Progress = func(complete, total int64) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		last = [2]int64{complete, total}
	}
	if err := Push(ctx, ref, img, opts); err != nil {
		t.Fatalf("Push: %v", err)
	}
	if calls == 0 || last[0] != last[1] || last[1] < 2*4096 {
		t.Errorf("progress: %d calls, last %v; want complete == total >= layer bytes", calls, last)
	}
	opts.Progress = nil

	got, err := Pull(ctx, ref, opts)
	if err != nil {
		t.Fatalf("Pull: %v", err)
	}
	want := digestOf(t, img)
	if got.Image == nil || got.Index != nil {
		t.Fatalf("Pull returned %+v, want an image", got)
	}
	if got.Descriptor.Digest != want || digestOf(t, got.Image) != want {
		t.Errorf("pulled digest %s, want %s", got.Descriptor.Digest, want)
	}
	if got.Descriptor.MediaType != types.OCIManifestSchema1 {
		t.Errorf("media type %s", got.Descriptor.MediaType)
	}
	if wantRef := reg.Host + "/drove/app@" + want.String(); got.Ref.String() != wantRef {
		t.Errorf("Ref = %s, want %s", got.Ref, wantRef)
	}
	sameLayers(t, got.Image, img)

	desc, err := Resolve(ctx, ref, opts)
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	if desc.Digest != want {
		t.Errorf("Resolve digest %s, want %s", desc.Digest, want)
	}
	byDigest, err := Pull(ctx, reg.Ref("drove/app", "@"+want.String()), opts)
	if err != nil || byDigest.Descriptor.Digest != want {
		t.Errorf("Pull by digest: %v %v", byDigest.Descriptor.Digest, err)
	}
	skopeoInspect(t, reg, ref, want)
}

func TestPushPullIndex(t *testing.T) {
	reg, opts := loggedIn(t)
	ctx := context.Background()
	idx, imgs := twoPlatformIndex(t)
	ref := reg.Ref("drove/multi", ":v2")
	if err := Push(ctx, ref, idx, opts); err != nil {
		t.Fatalf("Push index: %v", err)
	}
	want := digestOf(t, idx)

	got, err := Pull(ctx, ref, opts)
	if err != nil {
		t.Fatalf("Pull: %v", err)
	}
	if got.Index == nil || got.Image != nil {
		t.Fatalf("Pull returned %+v, want an index", got)
	}
	if got.Descriptor.Digest != want || digestOf(t, got.Index) != want {
		t.Errorf("pulled index digest %s, want %s", got.Descriptor.Digest, want)
	}

	for _, p := range []struct {
		name     string
		platform v1.Platform
	}{{"arm64", v1.Platform{OS: "linux", Architecture: "arm64"}}, {"amd64", amd64}} {
		o := opts
		o.Platform = &p.platform
		pp, err := Pull(ctx, ref, o)
		if err != nil {
			t.Fatalf("Pull for %s: %v", p.name, err)
		}
		wantImg := digestOf(t, imgs[p.name])
		if pp.Image == nil || pp.Descriptor.Digest != wantImg || digestOf(t, pp.Image) != wantImg {
			t.Errorf("Pull for %s gave %s, want %s", p.name, pp.Descriptor.Digest, wantImg)
		}
		if pp.Ref.DigestStr() != wantImg.String() {
			t.Errorf("Ref for %s = %s", p.name, pp.Ref)
		}
		if pp.Descriptor.Platform == nil || pp.Descriptor.Platform.Architecture != p.name {
			t.Errorf("descriptor platform for %s = %v", p.name, pp.Descriptor.Platform)
		}
		sameLayers(t, pp.Image, imgs[p.name])
	}

	o := opts
	o.Platform = &v1.Platform{OS: "linux", Architecture: "s390x"}
	if _, err := Pull(ctx, ref, o); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "linux/s390x") {
		t.Errorf("Pull for a platform not in the index: %v, want ErrNotFound naming it", err)
	}
	skopeoInspect(t, reg, ref, want)
}

func TestAnonymousPushToAuthRegistry(t *testing.T) {
	reg := testregistry.Start(t, testregistry.Opts{User: "u", Password: "p"})
	opts := Options{AuthFile: filepath.Join(t.TempDir(), "empty.json")}
	err := Push(context.Background(), reg.Ref("x", ":1"), randomImage(t, amd64), opts)
	if !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("anonymous Push: %v, want ErrUnauthorized", err)
	}
	if !strings.Contains(err.Error(), "registry "+reg.Host+" requires authentication") {
		t.Errorf("error %q does not name the registry", err)
	}
}

func TestWrongStoredPasswordPush(t *testing.T) {
	reg := testregistry.Start(t, testregistry.Opts{User: "u", Password: "p"})
	path := filepath.Join(t.TempDir(), "config.json")
	f, _ := ParseAuthFile(nil)
	f.Set(reg.Host, Credential{Username: "u", Password: "stale"})
	if err := WriteAuthFile(path, f); err != nil {
		t.Fatal(err)
	}
	err := Push(context.Background(), reg.Ref("x", ":1"), randomImage(t, amd64), Options{AuthFile: path})
	if !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), "registry "+reg.Host+" rejected the credentials") {
		t.Errorf("Push with a stale password: %v", err)
	}
}

func TestPullMissing(t *testing.T) {
	reg, opts := loggedIn(t)
	ctx := context.Background()
	if err := Push(ctx, reg.Ref("present", ":v1"), randomImage(t, amd64), opts); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{reg.Ref("present", ":nope"), reg.Ref("absent", ":v1")} {
		_, err := Pull(ctx, ref, opts)
		if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), ref) {
			t.Errorf("Pull(%s): %v, want ErrNotFound naming it", ref, err)
		}
		_, err = Resolve(ctx, ref, opts)
		if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), ref) {
			t.Errorf("Resolve(%s): %v, want ErrNotFound naming it", ref, err)
		}
	}
}

func TestPullUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := l.Addr().String()
	l.Close()
	_, err = Pull(context.Background(), host+"/x:1", Options{AuthFile: filepath.Join(t.TempDir(), "c.json")})
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "cannot connect to "+host) {
		t.Errorf("Pull from closed port: %v", err)
	}
}

func TestLoopbackNamesWithoutFlag(t *testing.T) {
	reg := testregistry.Start(t, testregistry.Opts{IP: "127.0.0.2"})
	ctx := context.Background()
	opts := Options{AuthFile: filepath.Join(t.TempDir(), "c.json")}
	img := randomImage(t, amd64)
	if err := Push(ctx, reg.Ref("lo", ":1"), img, opts); err != nil {
		t.Fatalf("Push to %s without Insecure: %v", reg.Host, err)
	}
	got, err := Pull(ctx, reg.Ref("lo", ":1"), opts)
	if err != nil || got.Descriptor.Digest != digestOf(t, img) {
		t.Fatalf("Pull from %s: %v", reg.Host, err)
	}

	anon := testregistry.Start(t, testregistry.Opts{})
	_, port, _ := net.SplitHostPort(anon.Host)
	if err := Push(ctx, "localhost:"+port+"/lo:1", img, opts); err != nil {
		t.Fatalf("Push via localhost: %v", err)
	}
	if _, err := Pull(ctx, anon.Ref("lo", ":1"), opts); err != nil {
		t.Fatalf("Pull via 127.0.0.1 after push via localhost: %v", err)
	}
}

func TestPushRejectsOtherTypes(t *testing.T) {
	l := testimage.Layer(t, 10, types.OCILayer)
	err := Push(context.Background(), "127.0.0.1:1/x:1", rawOnly{l}, Options{})
	if err == nil || !strings.Contains(err.Error(), "neither an image nor an index") {
		t.Errorf("Push of a non-image: %v", err)
	}
}

// rawOnly has a RawManifest but is neither an image nor an index.
type rawOnly struct{ v1.Layer }

func (rawOnly) RawManifest() ([]byte, error) { return []byte("{}"), nil }

// skopeoInspect checks with skopeo, when installed, that the registry
// serves ref with the pushed digest.
func skopeoInspect(t *testing.T, reg *testregistry.Registry, ref string, want v1.Hash) {
	t.Helper()
	bin, err := exec.LookPath("skopeo")
	if err != nil {
		t.Logf("skopeo not installed, skipping the skopeo check (apt-get install skopeo)")
		return
	}
	args := []string{"inspect", "--tls-verify=false"}
	if reg.User != "" {
		args = append(args, "--creds", reg.User+":"+reg.Password)
	}
	raw, err := exec.Command(bin, append(args, "--raw", "docker://"+ref)...).Output()
	if err != nil {
		t.Fatalf("skopeo inspect --raw %s: %v: %s", ref, err, stderrOf(err))
	}
	if got := fmt.Sprintf("sha256:%x", sha256.Sum256(raw)); got != want.String() {
		t.Errorf("skopeo raw manifest digest %s, want %s", got, want)
	}
	out, err := exec.Command(bin, append(args, "--override-os", "linux", "--override-arch", "amd64", "docker://"+ref)...).Output()
	if err != nil {
		t.Fatalf("skopeo inspect %s: %v: %s", ref, err, stderrOf(err))
	}
	var info struct{ Digest, Architecture, Os string }
	if err := json.Unmarshal(out, &info); err != nil {
		t.Fatalf("skopeo inspect output: %v: %s", err, out)
	}
	if info.Digest != want.String() || info.Architecture != "amd64" || info.Os != "linux" {
		t.Errorf("skopeo inspect = %+v, want digest %s linux/amd64", info, want)
	}
}

func stderrOf(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(ee.Stderr)
	}
	return ""
}
