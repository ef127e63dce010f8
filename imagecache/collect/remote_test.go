package collect

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drove-project/drove/internal/testregistry"
	"github.com/drove-project/drove/layers/registry"
	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func TestCollectWithCredentials(t *testing.T) {
	const user, password = "builder", "s3cret"
	reg := testregistry.Start(t, testregistry.Opts{User: user, Password: password})
	img := buildImage(t, amd64, false, randomLayer(t, 4096, types.OCILayer))
	ref := reg.Ref("private/app", ":v1")
	push(t, ref, img, &authn.Basic{Username: user, Password: password})

	authFile := func(t *testing.T, pw string) string {
		path := filepath.Join(t.TempDir(), "config.json")
		f, err := registry.ParseAuthFile([]byte("{}"))
		if err != nil {
			t.Fatal(err)
		}
		f.Set(reg.Host, registry.Credential{Username: user, Password: pw})
		if err := registry.WriteAuthFile(path, f); err != nil {
			t.Fatal(err)
		}
		return path
	}
	right := map[string]authn.Authenticator{reg.Host: &authn.Basic{Username: user, Password: password}}
	wrong := map[string]authn.Authenticator{reg.Host: &authn.Basic{Username: user, Password: "nope"}}

	tests := []struct {
		name     string
		auth     map[string]authn.Authenticator
		authFile func(t *testing.T) string
		wantErr  string // "" for success
	}{
		{"none", nil, noAuthFile, "requires authentication (log in first)"},
		{"Options.Auth", right, noAuthFile, ""},
		{"Options.Auth wins over the auth file", right, func(t *testing.T) string { return authFile(t, "nope") }, ""},
		{"wrong Options.Auth", wrong, noAuthFile, "rejected the credentials given for it"},
		{"auth file", nil, func(t *testing.T) string { return authFile(t, password) }, ""},
		{"wrong auth file", nil, func(t *testing.T) string { return authFile(t, "nope") }, "rejected the credentials"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			opts := Options{
				Platforms: []v1.Platform{amd64},
				Auth:      tt.auth,
				Registry:  registry.Options{AuthFile: tt.authFile(t)},
			}
			got, err := Collect(context.Background(), dir, []Request{{Ref: ref}}, opts)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Collect: %v", err)
				}
				if len(got) != 1 || got[0].Digest != digestOf(t, img) {
					t.Fatalf("collected %+v, want %s", got, digestOf(t, img))
				}
				if files, want := blobFiles(t, dir), hexes(imageBlobs(t, img)); !slices.Equal(files, want) {
					t.Errorf("blobs %v, want %v", files, want)
				}
				return
			}
			t.Logf("the error users see:\n%v", err)
			var missing *MissingError
			if !errors.As(err, &missing) || !errors.Is(err, registry.ErrUnauthorized) {
				t.Fatalf("Collect error = %v, want a *MissingError wrapping registry.ErrUnauthorized", err)
			}
			if msg := err.Error(); !strings.Contains(msg, ref) || !strings.Contains(msg, tt.wantErr) || !strings.Contains(msg, reg.Host) {
				t.Errorf("error %q should name %s, its registry and say %q", msg, ref, tt.wantErr)
			}
			if msg := err.Error(); tt.auth == nil && strings.Contains(msg, "given for it") {
				t.Errorf("error %q blames credentials given in Options.Auth, but there were none", msg)
			}
			if len(got) != 0 {
				t.Errorf("collected %+v without access", got)
			}
		})
	}
}

func TestCollectUnreachableRegistry(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := l.Addr().String()
	l.Close()
	_, err = Collect(context.Background(), t.TempDir(), []Request{{Ref: host + "/x:1"}}, Options{
		Platforms: []v1.Platform{amd64}, Registry: registry.Options{AuthFile: noAuthFile(t)},
	})
	if !errors.Is(err, registry.ErrUnreachable) {
		t.Fatalf("err = %v, want ErrUnreachable", err)
	}
}

func TestCollectRefusesCorruptBlob(t *testing.T) {
	u := startUpstream(t)
	dir := t.TempDir()
	ls, err := u.docker.Layers()
	if err != nil {
		t.Fatal(err)
	}
	bad := digestOf(t, ls[0])
	ct := newCountingTransport()
	ct.mangle = func(_ *http.Request, hex string, body io.ReadCloser) io.ReadCloser {
		if hex == bad.Hex {
			return &corruptReader{ReadCloser: body}
		}
		return body
	}
	opts := Options{Platforms: []v1.Platform{amd64}, Registry: registry.Options{Transport: ct, AuthFile: noAuthFile(t)}}
	got, err := Collect(context.Background(), dir, []Request{{Ref: u.refDocker}, {Ref: u.refA}}, opts)
	if !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("Collect error = %v, want ErrDigestMismatch", err)
	}
	var missing *MissingError
	if !errors.As(err, &missing) || len(missing.Failures) != 1 || missing.Failures[0].Ref != u.refDocker ||
		!strings.Contains(missing.Failures[0].Err.Error(), bad.String()) {
		t.Errorf("failures %+v, want one for %s naming blob %s", missing, u.refDocker, bad)
	}
	if len(got) != 1 || got[0].Ref != u.refA {
		t.Errorf("collected %+v, want only %s", got, u.refA)
	}
	files := blobFiles(t, dir) // also fails on any file whose bytes do not match its name
	if slices.Contains(files, bad.Hex) {
		t.Errorf("corrupt blob %s was kept", bad)
	}
	assertNoTemps(t, dir)
}

// stallingBody passes the first read through, signals, and then blocks
// until the request's context ends.
type stallingBody struct {
	io.ReadCloser
	ctx     context.Context
	started func()
	reads   int
}

func (b *stallingBody) Read(p []byte) (int, error) {
	b.reads++
	if b.reads == 1 {
		n, err := b.ReadCloser.Read(p)
		b.started()
		return n, err
	}
	<-b.ctx.Done()
	return 0, b.ctx.Err()
}

func TestCollectCancelStopsAndCleansUp(t *testing.T) {
	reg := testregistry.Start(t, testregistry.Opts{})
	big := randomLayer(t, 2<<20, types.OCILayer)
	img := buildImage(t, amd64, false, big)
	ref := reg.Ref("big", ":v1")
	push(t, ref, img, nil)

	dir := t.TempDir()
	started := make(chan struct{})
	var once sync.Once
	ct := newCountingTransport()
	ct.mangle = func(req *http.Request, hex string, body io.ReadCloser) io.ReadCloser {
		if hex != digestOf(t, big).Hex {
			return body
		}
		return &stallingBody{ReadCloser: body, ctx: req.Context(), started: func() { once.Do(func() { close(started) }) }}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		got []Collected
		err error
	}
	done := make(chan result, 1)
	go func() {
		got, err := Collect(ctx, dir, []Request{{Ref: ref}}, Options{
			Platforms: []v1.Platform{amd64},
			Registry:  registry.Options{Transport: ct, AuthFile: noAuthFile(t)},
		})
		done <- result{got, err}
	}()
	select {
	case <-started:
	case r := <-done:
		t.Fatalf("Collect ended before the layer was being written: %+v", r)
	case <-time.After(30 * time.Second):
		t.Fatal("the layer was never fetched")
	}
	if !hasTemp(t, filepath.Join(dir, "blobs", "sha256")) {
		t.Fatal("no temporary file while the layer is being written; the test would prove nothing")
	}
	cancel()
	var r result
	select {
	case r = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Collect did not return within 10s of the cancel")
	}
	if !errors.Is(r.err, context.Canceled) || r.got != nil {
		t.Fatalf("Collect = %+v, %v; want nothing and context.Canceled", r.got, r.err)
	}
	assertNoTemps(t, dir)
	if slices.Contains(blobFiles(t, dir), digestOf(t, big).Hex) {
		t.Error("the interrupted layer was kept")
	}
	if _, err := os.Stat(filepath.Join(dir, "index.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("index.json written by a cancelled Collect: %v", err)
	}
}

func TestCollectProgressCallsNeverOverlap(t *testing.T) {
	u := startUpstream(t)
	var inCall, overlaps, calls atomic.Int32
	failed := make(map[string]error)
	opts := Options{
		Platforms:   []v1.Platform{amd64},
		Registry:    registry.Options{AuthFile: noAuthFile(t)},
		Concurrency: 6,
		Progress: func(e Event) {
			if !inCall.CompareAndSwap(0, 1) {
				overlaps.Add(1)
			}
			calls.Add(1)
			if e.Phase == Failed {
				failed[e.Ref] = e.Err
			}
			inCall.Store(0)
		},
	}
	reqs := []Request{{Ref: u.refA}, {Ref: u.refB}, {Ref: u.refIdx}, {Ref: u.refDocker}, {Ref: u.refArm}, {Ref: u.refMissing}}
	_, err := Collect(context.Background(), t.TempDir(), reqs, opts)
	if err == nil {
		t.Fatal("Collect succeeded with a missing image")
	}
	if overlaps.Load() != 0 {
		t.Errorf("%d of %d Progress calls overlapped another", overlaps.Load(), calls.Load())
	}
	if len(failed) != 2 || !errors.Is(failed[u.refArm], ErrPlatformNotFound) || !errors.Is(failed[u.refMissing], registry.ErrNotFound) {
		t.Errorf("Failed events %v, want %s and %s", failed, u.refArm, u.refMissing)
	}
}

// hasTemp reports whether dir holds a temporary file of Collect.
func hasTemp(t *testing.T, dir string) bool {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tempPrefix) {
			return true
		}
	}
	return false
}

// lookSkopeo returns the skopeo binary or skips t.
func lookSkopeo(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("skopeo")
	if err != nil {
		t.Skipf("skopeo not found (apt-get install skopeo): %v", err)
	}
	return p
}

// runSkopeo runs skopeo with a permissive signature policy and returns
// its standard output, failing t on error.
func runSkopeo(t *testing.T, bin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"--insecure-policy"}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("skopeo %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}
