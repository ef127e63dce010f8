package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// drove runs the command tree in-process with its own streams and data dir.
type droveRun struct {
	out, err string
	code     int
}

func runCLI(t *testing.T, dataDir string, stdin string, args ...string) droveRun {
	t.Helper()
	var out, errb bytes.Buffer
	code := Execute(context.Background(), append([]string{"--data-dir", dataDir}, args...),
		Streams{In: strings.NewReader(stdin), Out: &out, Err: &errb})
	return droveRun{out: out.String(), err: errb.String(), code: code}
}

func mustRun(t *testing.T, dataDir string, args ...string) string {
	t.Helper()
	r := runCLI(t, dataDir, "", args...)
	if r.code != 0 {
		t.Fatalf("drove %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.out, r.err)
	}
	return r.out
}

// writeContext makes a small build context with a Kubefile.
func writeBuildContext(t *testing.T, kubefile string, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	files["Kubefile"] = kubefile
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestVersionAndUsageErrors(t *testing.T) {
	d := t.TempDir()
	if out := mustRun(t, d, "version", "--short"); strings.TrimSpace(out) == "" {
		t.Fatal("empty version")
	}
	if r := runCLI(t, d, "", "--bogus"); r.code != exitUsage || !strings.Contains(r.err, "unknown flag") {
		t.Fatalf("unknown flag: %+v", r)
	}
	if r := runCLI(t, d, "", "build", "."); r.code != exitUsage || !strings.Contains(r.err, "-t NAME") {
		t.Fatalf("build without -t: %+v", r)
	}
	if r := runCLI(t, d, "", "images", "-o", "xml"); r.code != exitUsage {
		t.Fatalf("bad -o: %+v", r)
	}
}

func TestBuildFlagsToOptions(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	o := &buildOptions{Tags: []string{"x:1"}, BuildArgs: []string{"A=1", "B="}, Platforms: []string{"linux/arm64", "linux/amd64"},
		Compression: "gzip", Context: "ctx", Type: "app-installer"}
	g := &Globals{DataDir: "/data"}
	bo, err := o.toBuild(g)
	if err != nil {
		t.Fatal(err)
	}
	if bo.BuildArgs["A"] != "1" || bo.BuildArgs["B"] != "" || len(bo.Platforms) != 2 || bo.Platforms[0].Architecture != "arm64" {
		t.Fatalf("options: %+v", bo)
	}
	if bo.WorkDir != "/data/build" || bo.Created.Unix() != 1700000000 || bo.Type != "app-installer" {
		t.Fatalf("options: %+v", bo)
	}
	for _, bad := range []buildOptions{
		{Tags: []string{"x"}, BuildArgs: []string{"=v"}},
		{Tags: []string{"x"}, Platforms: []string{"amd64"}},
		{Tags: []string{"x"}, Compression: "lz4"},
	} {
		if bad.Compression == "" {
			bad.Compression = "gzip"
		}
		if _, err := bad.toBuild(g); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
}

func TestImagesTagRmi(t *testing.T) {
	d := t.TempDir()
	ctxDir := writeBuildContext(t, "FROM scratch\nCOPY a.txt etc/\nCMDS [\"echo hi\"]\n", map[string]string{"a.txt": "hello"})
	digest := strings.TrimSpace(mustRun(t, d, "build", "-t", "demo:v1", ctxDir))
	if !strings.HasPrefix(digest, "sha256:") {
		t.Fatalf("build printed %q", digest)
	}
	mustRun(t, d, "tag", "demo:v1", "registry.example.com/demo:v2")
	out := mustRun(t, d, "images")
	if !strings.Contains(out, "demo") || !strings.Contains(out, "registry.example.com/demo") || !strings.Contains(out, digest[7:19]) {
		t.Fatalf("images:\n%s", out)
	}
	if ids := strings.Fields(mustRun(t, d, "images", "-q")); len(ids) != 1 || ids[0] != digest[7:19] {
		t.Fatalf("images -q: %v", ids)
	}
	js := mustRun(t, d, "images", "-o", "json")
	if !strings.Contains(js, `"name": "docker.io/library/demo:v1"`) {
		t.Fatalf("images -o json:\n%s", js)
	}
	insp := mustRun(t, d, "inspect", "demo:v1")
	if !strings.Contains(insp, `"sealerExtension"`) || !strings.Contains(insp, "echo hi") {
		t.Fatalf("inspect:\n%s", insp)
	}
	mustRun(t, d, "rmi", "demo:v1")
	if r := runCLI(t, d, "", "rmi", "demo:v1"); r.code == 0 || !strings.Contains(r.err, "not found") {
		t.Fatalf("second rmi: %+v", r)
	}
	mustRun(t, d, "rmi", "-f", "demo:v1")
	mustRun(t, d, "rmi", "registry.example.com/demo:v2")
	out = mustRun(t, d, "rmi", "--prune")
	if !strings.Contains(out, "Deleted") {
		t.Fatalf("prune: %s", out)
	}
	blobs, _ := os.ReadDir(filepath.Join(d, "store", "blobs", "sha256"))
	// The build cache keeps its layer (so a rebuild is fast); manifests and
	// configs are gone.
	if len(blobs) != 1 {
		t.Fatalf("after prune %d blobs remain, want the 1 cached layer", len(blobs))
	}
}
