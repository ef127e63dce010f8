package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/drove-project/drove/deploy/media"
)

// TestMediaBuildFlagsToSpec: flags become the media spec: the format from
// -o's extension, this binary for its own architecture, the others from
// --binary-dir, and an agent.yaml drove agent install --config accepts.
func TestMediaBuildFlagsToSpec(t *testing.T) {
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	os.WriteFile(token, []byte("drove-0123456789abcdefghijklmnop\n"), 0o600)
	other := "riscv64"
	if runtime.GOARCH == other {
		other = "arm64"
	}
	os.WriteFile(filepath.Join(dir, "drove-linux-"+other), []byte("binary"), 0o755)

	o := &mediaBuildOptions{}
	cmd := mediaBuildCmd(&Globals{}, o)
	err := cmd.ParseFlags([]string{"--image", "app:1", "--join", "10.0.0.1,10.0.0.2", "--token-file", token,
		"--roles", "node", "--labels", "zone=a", "--arch", runtime.GOARCH + "," + other, "--binary-dir", dir, "-o", "x.ISO"})
	if err != nil {
		t.Fatal(err)
	}
	spec, err := o.spec()
	if err != nil {
		t.Fatal(err)
	}
	self, _ := os.Executable()
	if spec.Format != media.ISO || spec.Image != "app:1" || spec.Label != "DROVE" || string(spec.Token) != "drove-0123456789abcdefghijklmnop\n" ||
		spec.Binaries[other] != filepath.Join(dir, "drove-linux-"+other) || (runtime.GOOS == "linux" && spec.Binaries[runtime.GOARCH] != self) {
		t.Fatalf("spec: %+v", spec)
	}
	var c agentOptions
	if err := yaml.UnmarshalStrict(spec.AgentConfig, &c); err != nil {
		t.Fatalf("agent.yaml: %v\n%s", err, spec.AgentConfig)
	}
	if len(c.Join) != 2 || c.Roles[0] != "node" || c.Labels["zone"] != "a" || c.Token != "" {
		t.Fatalf("agent.yaml: %+v", c)
	}

	o.Archs = []string{"s390x"}
	if _, err := o.spec(); err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "drove-linux-s390x")) {
		t.Fatalf("missing binary: %v, want it to name the file", err)
	}
	o.Archs, o.Output, o.Format = []string{runtime.GOARCH}, "x.bin", ""
	if _, err := o.spec(); err == nil || !strings.Contains(err.Error(), "--format") {
		t.Fatalf("no format: %v", err)
	}
	o.Format, o.Label = "raw", "usb stick"
	if _, err := o.spec(); err == nil || !strings.Contains(err.Error(), "--label") {
		t.Fatalf("bad label: %v", err)
	}
}

// TestMediaBuildAndVerify: drove media build writes tar media from the
// store that drove media verify accepts; a changed file makes verify name
// it and exit 1.
func TestMediaBuildAndVerify(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("media carry this binary only when it is a Linux one")
	}
	d := t.TempDir()
	ctx := writeBuildContext(t, "FROM scratch\nCOPY etc etc\n", map[string]string{"etc/hello": "hello\n"})
	mustRun(t, d, "build", "-t", "media-cli:1", ctx)
	token := filepath.Join(t.TempDir(), "token")
	os.WriteFile(token, []byte("drove-0123456789abcdefghijklmnop\n"), 0o600)
	out := filepath.Join(t.TempDir(), "m.tar")
	r := runCLI(t, d, "", "media", "build", "--image", "media-cli:1", "--join", "10.0.0.1", "--token-file", token, "-o", out)
	if r.code != 0 || !strings.Contains(r.out, "tar media") {
		t.Fatalf("media build: exit %d\n%s%s", r.code, r.out, r.err)
	}
	if r = runCLI(t, d, "", "media", "verify", out); r.code != 0 || !strings.Contains(r.out, "files match") {
		t.Fatalf("media verify: exit %d\n%s%s", r.code, r.out, r.err)
	}
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	os.MkdirAll(tree, 0o755)
	mustExtract(t, out, tree)
	os.WriteFile(filepath.Join(tree, "drove", "agent.yaml"), []byte("join: [10.6.6.6]\n"), 0o644)
	r = runCLI(t, d, "", "media", "verify", tree)
	if r.code != exitFailed || !strings.Contains(r.out, "MISMATCH  drove/agent.yaml") || !strings.Contains(r.err, "drove/agent.yaml") {
		t.Fatalf("verify of a changed tree: exit %d\n%s%s", r.code, r.out, r.err)
	}
}

func mustExtract(t *testing.T, tarPath, dir string) {
	t.Helper()
	if out, err := exec.Command("tar", "-C", dir, "-xf", tarPath).CombinedOutput(); err != nil {
		t.Fatalf("tar -x: %v\n%s", err, out)
	}
}
