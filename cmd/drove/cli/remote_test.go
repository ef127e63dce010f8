package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/drove-project/drove/internal/testregistry"
	"github.com/drove-project/drove/layers/store"
)

// TestRegistryRoundTrip drives login, push and pull through the CLI against
// Debian's real registry with htpasswd auth, and cross-checks with skopeo.
func TestRegistryRoundTrip(t *testing.T) {
	reg := testregistry.Start(t, testregistry.Opts{User: "ops", Password: "s3cret"})
	auth := filepath.Join(t.TempDir(), "config.json")
	src, dst := t.TempDir(), t.TempDir()

	ctxDir := writeBuildContext(t, "FROM scratch\nCOPY bin bin\nCOPY ${ARCH}/x x\nLAUNCH [\"app\"]\nAPP app local://app.yaml\n",
		map[string]string{"bin/kubeadm": "#!/bin/sh\n", "amd64/x": "amd", "arm64/x": "arm", "app.yaml": "kind: Namespace\n"})
	// LAUNCH must be last: fix the Kubefile and check the error first.
	r := runCLI(t, src, "", "build", "-t", "bad:v1", ctxDir)
	if r.code == 0 || !strings.Contains(r.err, "Kubefile:4:") {
		t.Fatalf("LAUNCH not last: %+v", r)
	}
	os.WriteFile(filepath.Join(ctxDir, "Kubefile"), []byte("FROM scratch\nCOPY bin bin\nCOPY ${ARCH}/x x\nAPP app local://app.yaml\nLAUNCH [\"app\"]\n"), 0o644)
	mustRun(t, src, "build", "--platform", "linux/amd64,linux/arm64", "-t", "cluster:v1", ctxDir)

	ref := reg.Host + "/infra/cluster:v1"
	r = runCLI(t, src, "", "login", reg.Host, "-u", "ops", "-p", "wrong", "--authfile", auth)
	if r.code == 0 || !strings.Contains(r.err, "unauthorized") || !strings.Contains(r.err, reg.Host) {
		t.Fatalf("wrong password: %+v", r)
	}
	if _, err := os.Stat(auth); !os.IsNotExist(err) {
		t.Fatalf("failed login wrote %s", auth)
	}
	r = runCLI(t, src, "", "push", "cluster:v1", ref, "--authfile", auth)
	if r.code == 0 || !strings.Contains(r.err, "unauthorized") {
		t.Fatalf("anonymous push: %+v", r)
	}
	r = runCLI(t, src, "s3cret\n", "login", reg.Host, "-u", "ops", "--password-stdin", "--authfile", auth)
	if r.code != 0 {
		t.Fatalf("login: %+v", r)
	}
	mustRun(t, src, "push", "cluster:v1", ref, "--authfile", auth)
	mustRun(t, dst, "pull", ref, "--authfile", auth)

	want := entry(t, src, "cluster:v1")
	got := entry(t, dst, ref)
	if want.Descriptor.Digest != got.Descriptor.Digest {
		t.Fatalf("pulled %s, pushed %s", got.Descriptor.Digest, want.Descriptor.Digest)
	}
	s, _ := store.Open(filepath.Join(dst, "store"))
	idx, err := s.Index(got.Descriptor.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Index(idx); err != nil {
		t.Fatalf("validate pulled index: %v", err)
	}
	if err := s.Verify(got.Descriptor); err != nil {
		t.Fatal(err)
	}

	// FROM an image that is only in the registry: the build pulls it (the
	// platform it needs), keeps it in the store, and layers on top.
	child := t.TempDir()
	childCtx := writeBuildContext(t, "FROM "+ref+"\nCOPY extra etc/extra\n", map[string]string{"extra": "x"})
	mustRun(t, child, "build", "--authfile", auth, "-t", "child:v1", childCtx)
	cs, _ := store.Open(filepath.Join(child, "store"))
	ce := entry(t, child, "child:v1")
	cimg, err := cs.Image(ce.Descriptor.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if ls, _ := cimg.Layers(); len(ls) != 4 { // bin, ${ARCH}/x, app, extra
		t.Fatalf("child image has %d layers, want 4", len(ls))
	}
	if err := validate.Image(cimg); err != nil {
		t.Fatal(err)
	}
	entry(t, child, ref) // the base is kept under its name

	// --platform pulls a single image.
	one := t.TempDir()
	mustRun(t, one, "pull", "--platform", "linux/arm64", ref, "--authfile", auth)
	e := entry(t, one, ref)
	if !e.Descriptor.MediaType.IsImage() {
		t.Fatalf("platform pull stored %s", e.Descriptor.MediaType)
	}

	if _, err := exec.LookPath("skopeo"); err != nil {
		t.Skip("skopeo not installed (apt-get install skopeo)")
	}
	out, err := exec.Command("skopeo", "inspect", "--raw", "--tls-verify=false", "--authfile", auth, "docker://"+ref).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "arm64") {
		t.Fatalf("skopeo inspect: %v\n%s", err, out)
	}
	out, err = exec.Command("skopeo", "inspect", "--tls-verify=false", "--authfile", auth, "--override-arch", "arm64", "docker://"+ref).CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"Architecture": "arm64"`) {
		t.Fatalf("skopeo inspect: %v\n%s", err, out)
	}
	mustRun(t, src, "logout", reg.Host, "--authfile", auth)
	if r := runCLI(t, src, "", "pull", ref, "--authfile", auth); r.code == 0 || !strings.Contains(r.err, "unauthorized") {
		t.Fatalf("pull after logout: %+v", r)
	}
}

func entry(t *testing.T, dataDir, ref string) store.Entry {
	t.Helper()
	s, err := store.Open(filepath.Join(dataDir, "store"))
	if err != nil {
		t.Fatal(err)
	}
	e, err := s.Resolve(ref)
	if err != nil {
		t.Fatalf("resolve %s in %s: %v", ref, dataDir, err)
	}
	return e
}
