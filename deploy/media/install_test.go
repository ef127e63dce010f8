package media

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// extract unpacks built tar media into a directory, as a mounted stick
// would show them.
func extract(t *testing.T, tarPath string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("tar", "-C", dir, "-xf", tarPath).CombinedOutput(); err != nil {
		t.Fatalf("tar -x: %v\n%s", err, out)
	}
	return dir
}

// runInstall runs the media's install.sh with sh, ROOT set, and the fake
// drove recording its arguments; it returns them (nil if it never ran).
func runInstall(t *testing.T, dir, root string, args ...string) ([]string, string, error) {
	t.Helper()
	argsFile := filepath.Join(t.TempDir(), "args")
	cmd := exec.Command("sh", append([]string{filepath.Join(dir, InstallSh)}, args...)...)
	cmd.Env = append(os.Environ(), "ROOT="+root, "DROVE_ARGS_FILE="+argsFile, "TMPDIR="+t.TempDir())
	out, err := cmd.CombinedOutput()
	b, rerr := os.ReadFile(argsFile)
	if rerr != nil {
		return nil, string(out), err
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n"), string(out), err
}

// TestInstallScript: install.sh runs this machine's binary from the media
// with the media's config, token and image, under ROOT; it refuses media
// that do not match their manifest before running anything.
func TestInstallScript(t *testing.T) {
	for _, tool := range []string{"sh", "tar", "sha256sum", "awk", "uname"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s: %v", tool, err)
		}
	}
	s, _ := newTestStore(t)
	dir := extract(t, build(t, testSpec(t, s, Tar)))
	root := t.TempDir()
	got, out, err := runInstall(t, dir, root, "--no-start")
	if err != nil {
		t.Fatalf("install.sh: %v\n%s", err, out)
	}
	d := filepath.Join(dir, "drove")
	want := []string{"agent", "install", "--root", root, "--binary", "*", "--config", d + "/agent.yaml",
		"--token-file", d + "/token", "--media", d + "/image", "--no-start"}
	if len(got) != len(want) {
		t.Fatalf("drove ran with %q, want %q", got, want)
	}
	for i := range want {
		if want[i] != "*" && got[i] != want[i] {
			t.Fatalf("drove ran with %q, want %q", got, want)
		}
	}

	t.Run("tampered config", func(t *testing.T) {
		dir := extract(t, build(t, testSpec(t, s, Tar)))
		os.WriteFile(filepath.Join(dir, AgentConfig), []byte("join: [10.6.6.6]\n"), 0o644)
		got, out, err := runInstall(t, dir, t.TempDir())
		if err == nil || got != nil || !strings.Contains(out, "do not match their manifest") {
			t.Fatalf("install.sh with a changed agent.yaml: err %v, ran drove with %q\n%s", err, got, out)
		}
	})
	t.Run("no binary for this machine", func(t *testing.T) {
		dir := extract(t, build(t, testSpec(t, s, Tar)))
		bins, _ := filepath.Glob(filepath.Join(dir, BinDir, "*"))
		for _, b := range bins {
			os.Remove(b)
		}
		got, out, err := runInstall(t, dir, t.TempDir())
		if err == nil || got != nil || !strings.Contains(out, "no drove binary for") {
			t.Fatalf("install.sh without a binary: err %v, ran drove with %q\n%s", err, got, out)
		}
	})
}
