package cli

import (
	"bytes"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/drove-project/drove/coordinator/netinstall"
	"github.com/drove-project/drove/internal/clusterauth"
)

func TestTokenCA(t *testing.T) {
	dir := t.TempDir()
	const token = "drove-token-ca-test-0123456789"
	file := filepath.Join(dir, "token")
	if err := os.WriteFile(file, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := mustRun(t, dir, "token", "ca", "--token-file", file)
	fp, _ := clusterauth.CAFingerprint(token)
	if !strings.HasPrefix(out, "# drove cluster CA, sha256 fingerprint "+fp+"\n") {
		t.Errorf("token ca does not start with the fingerprint comment:\n%s", out)
	}
	block, rest := pem.Decode([]byte(out))
	want, _ := clusterauth.CACert(token)
	if block == nil || block.Type != "CERTIFICATE" || !bytes.Equal(block.Bytes, want.Raw) || len(bytes.TrimSpace(rest)) != 0 {
		t.Errorf("token ca does not print the cluster CA:\n%s", out)
	}
	if got := mustRun(t, dir, "token", "ca", "--token", token, "--fingerprint"); got != fp+"\n" {
		t.Errorf("--fingerprint printed %q, want %q", got, fp)
	}
	t.Setenv("DROVE_TOKEN", token)
	if got := mustRun(t, dir, "token", "ca", "--fingerprint"); got != fp+"\n" {
		t.Errorf("DROVE_TOKEN: --fingerprint printed %q, want %q", got, fp)
	}
	t.Setenv("DROVE_TOKEN", "")
	if r := runCLI(t, dir, "", "token", "ca"); r.code != exitUsage || !strings.Contains(r.err, "no cluster token") {
		t.Errorf("no token: exit %d, %s", r.code, r.err)
	}
	short := filepath.Join(dir, "short")
	os.WriteFile(short, []byte("abc\n"), 0o600)
	if r := runCLI(t, dir, "", "token", "ca", "--token-file", short); r.code != exitUsage || !strings.Contains(r.err, "token file "+short) {
		t.Errorf("short token: exit %d, %s", r.code, r.err)
	}
}

// TestAgentAPIPort: --api-port defaults to the install API's port, comes
// from the config file, and the flag wins.
func TestAgentAPIPort(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "agent.yaml")
	os.WriteFile(cfg, []byte("token: drove-0123456789abcdefghij\napiPort: 9051\n"), 0o600)
	g := &Globals{DataDir: dir}
	for _, tt := range []struct {
		args []string
		want int
	}{
		{[]string{"--token", "drove-0123456789abcdefghij"}, netinstall.DefaultPort},
		{[]string{"--config", cfg}, 9051},
		{[]string{"--config", cfg, "--api-port", "0"}, 0},
	} {
		o := &agentOptions{}
		cmd := agentCmd(g, o)
		if err := cmd.ParseFlags(tt.args); err != nil {
			t.Fatal(err)
		}
		if err := o.complete(g, cmd.Flags()); err != nil {
			t.Fatal(err)
		}
		if o.APIPort != tt.want {
			t.Errorf("%v: api port %d, want %d", tt.args, o.APIPort, tt.want)
		}
	}
}

func TestInstallHosts(t *testing.T) {
	hosts := installHosts("10.1.2.3", "10.1.2.3")
	for _, want := range []string{"10.1.2.3", "localhost", "127.0.0.1"} {
		if !slices.Contains(hosts, want) {
			t.Errorf("hosts %v lack %s", hosts, want)
		}
	}
	if len(slices.Compact(slices.Sorted(slices.Values(hosts)))) != len(hosts) {
		t.Errorf("hosts %v repeat an address", hosts)
	}
	// Bound to every interface: the certificate covers each address.
	all := installHosts("0.0.0.0", "192.0.2.7")
	if all[0] != "192.0.2.7" || len(all) < 4 {
		t.Errorf("hosts for 0.0.0.0: %v", all)
	}
	if _, err := clusterauth.ServingCert("drove-0123456789abcdefghij", all); err != nil {
		t.Errorf("a certificate for this machine's hosts %v: %v", all, err)
	}
}
