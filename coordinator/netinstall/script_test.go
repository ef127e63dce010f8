package netinstall

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/drove-project/drove/internal/clusterauth"
)

// These tests run the served install.sh as a user would: fetched with
// curl, piped into sh. The binary the server hands out is a stub that
// records how the script ran it, so the script's side is checked without
// installing anything.

// stubDrove answers `--data-dir D version` and otherwise writes its
// arguments (one a line) to $STUB_OUT/args and the token file it was
// given to $STUB_OUT/token.
const stubDrove = `#!/bin/sh
if [ "$1" = --data-dir ] && [ "$3" = version ]; then
	echo "drove stub"
	exit 0
fi
printf '%s\n' "$@" >"$STUB_OUT/args"
while [ "$#" -gt 0 ]; do
	if [ "$1" = --token-file ]; then
		cp "$2" "$STUB_OUT/token"
		printf '%s\n' "$2" >"$STUB_OUT/token-path"
	fi
	shift
done
`

// scriptArch is what install.sh picks for this machine's uname -m.
func scriptArch(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("uname", "-m").Output()
	if err != nil {
		t.Skipf("uname -m: %v", err)
	}
	switch m := strings.TrimSpace(string(out)); m {
	case "x86_64", "amd64":
		return "amd64"
	case "aarch64", "arm64":
		return "arm64"
	default:
		return m
	}
}

type scriptRun struct {
	out    string // stdout and stderr
	err    error
	stub   string // the stub's output directory
	caFile string
}

// runScript fetches install.sh from s with curl (pinning the CA) and
// runs it with args; the stub's records land in a new directory.
func runScript(t *testing.T, s *testServer, curlArgs string, args ...string) scriptRun {
	t.Helper()
	dir := t.TempDir()
	caPEM, err := clusterauth.CACertPEM(testToken)
	if err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, caPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	stub := filepath.Join(dir, "stub")
	if err := os.Mkdir(stub, 0o755); err != nil {
		t.Fatal(err)
	}
	if curlArgs == "" {
		curlArgs = "--cacert " + ca
	}
	line := "curl -fsSL " + curlArgs + " " + s.base + "/install.sh | sh -s --"
	for _, a := range args {
		line += " '" + a + "'"
	}
	cmd := exec.Command("sh", "-c", line)
	cmd.Env = append(os.Environ(), "STUB_OUT="+stub, "TMPDIR="+dir, "DROVE_TOKEN=")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	return scriptRun{out: out.String(), err: err, stub: stub, caFile: ca}
}

func needScriptTools(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"curl", "sh", "sha256sum", "mktemp"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("the install script test needs %s: %v", tool, err)
		}
	}
}

func stubServer(t *testing.T) *testServer {
	t.Helper()
	needScriptTools(t)
	if runtime.GOOS != "linux" || scriptArch(t) != runtime.GOARCH {
		t.Skipf("install.sh picks %s here, the server serves %s/%s itself", scriptArch(t), runtime.GOOS, runtime.GOARCH)
	}
	exe := filepath.Join(t.TempDir(), "drove-stub")
	if err := os.WriteFile(exe, []byte(stubDrove), 0o755); err != nil {
		t.Fatal(err)
	}
	return startServer(t, Config{Executable: exe})
}

func TestScriptInstalls(t *testing.T) {
	s := stubServer(t)
	prefix := filepath.Join(t.TempDir(), "root")
	r := runScript(t, s, "", "--token", testToken, "--root", prefix, "--roles", "node,edge", "--labels", "zone=a", "--no-start")
	if r.err != nil {
		t.Fatalf("install.sh: %v\n%s", r.err, r.out)
	}
	args, err := os.ReadFile(filepath.Join(r.stub, "args"))
	if err != nil {
		t.Fatalf("the script did not run the downloaded binary: %v\n%s", err, r.out)
	}
	tokenPath, _ := os.ReadFile(filepath.Join(r.stub, "token-path"))
	want := strings.Join([]string{"agent", "install", "--join", "127.0.0.1:17946,10.9.9.9:7946",
		"--token-file", strings.TrimSpace(string(tokenPath)), "--root", prefix,
		"--roles", "node,edge", "--labels", "zone=a", "--no-start"}, "\n") + "\n"
	if string(args) != want {
		t.Errorf("the script ran\n%s\nwant\n%s", args, want)
	}
	if tok, _ := os.ReadFile(filepath.Join(r.stub, "token")); strings.TrimSpace(string(tok)) != testToken {
		t.Errorf("the token file held %q", tok)
	}
	// The script's temporary directory (token included) is gone.
	if _, err := os.Stat(strings.TrimSpace(string(tokenPath))); !os.IsNotExist(err) {
		t.Errorf("the temporary token file is left behind: %v", err)
	}
	if !strings.Contains(r.out, "drove: downloaded drove-linux-"+runtime.GOARCH+" from "+strings.TrimPrefix(s.base, "https://")) {
		t.Errorf("the script does not say what it downloaded:\n%s", r.out)
	}
}

func TestScriptTokenFile(t *testing.T) {
	s := stubServer(t)
	tf := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tf, []byte(testToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := runScript(t, s, "", "--token-file", tf, "--root", t.TempDir())
	if r.err != nil {
		t.Fatalf("install.sh --token-file: %v\n%s", r.err, r.out)
	}
	if tok, _ := os.ReadFile(filepath.Join(r.stub, "token")); string(tok) != testToken+"\n" {
		t.Errorf("the token file held %q", tok)
	}
}

func TestScriptWrongToken(t *testing.T) {
	s := stubServer(t)
	for name, args := range map[string][]string{
		"wrong token":     {"--token", otherToken, "--root", t.TempDir()},
		"token too short": {"--token", "x", "--root", t.TempDir()},
	} {
		t.Run(name, func(t *testing.T) {
			r := runScript(t, s, "", args...)
			if r.err == nil {
				t.Fatalf("install.sh with a %s succeeded:\n%s", name, r.out)
			}
			if !strings.Contains(r.out, RefusedMessage) {
				t.Errorf("install.sh does not say %q:\n%s", RefusedMessage, r.out)
			}
			if _, err := os.Stat(filepath.Join(r.stub, "args")); !os.IsNotExist(err) {
				t.Errorf("the binary ran after a refusal: %v", err)
			}
		})
	}
	r := runScript(t, s, "", "--root", t.TempDir())
	if r.err == nil || !strings.Contains(r.out, "drove: no cluster token") {
		t.Errorf("install.sh without a token: %v\n%s", r.err, r.out)
	}
}

// TestScriptNeedsTrust: the first fetch is refused without the CA (the
// coordinator's certificate is the cluster's own), works with -k, and
// the script then pins the CA for the download.
func TestScriptNeedsTrust(t *testing.T) {
	s := stubServer(t)
	// sh runs the empty script curl leaves when it refuses the server.
	r := runScript(t, s, " ", "--token", testToken, "--root", t.TempDir())
	if !strings.Contains(r.out, "curl: (60)") {
		t.Errorf("curl without the cluster CA does not refuse the certificate:\n%s", r.out)
	}
	if _, err := os.Stat(filepath.Join(r.stub, "args")); !os.IsNotExist(err) {
		t.Fatalf("install.sh ran without the cluster CA: %v\n%s", err, r.out)
	}
	r = runScript(t, s, "-k", "--token", testToken, "--root", t.TempDir())
	if r.err != nil {
		t.Fatalf("curl -k | sh: %v\n%s", r.err, r.out)
	}
	if _, err := os.Stat(filepath.Join(r.stub, "args")); err != nil {
		t.Errorf("curl -k | sh did not run the binary: %v\n%s", err, r.out)
	}
}

func TestScriptNoBinary(t *testing.T) {
	needScriptTools(t)
	s := startServer(t, Config{Executable: filepath.Join(t.TempDir(), "gone")})
	r := runScript(t, s, "", "--token", testToken, "--root", t.TempDir())
	if r.err == nil {
		t.Fatalf("install.sh without a binary to download succeeded:\n%s", r.out)
	}
	if !strings.Contains(r.out, "could not download drove-linux-") || !strings.Contains(r.out, "HTTP 404") {
		t.Errorf("install.sh does not say the download failed:\n%s", r.out)
	}
}
