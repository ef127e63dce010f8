package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drove-project/drove/coordinator/netinstall"
	"github.com/drove-project/drove/internal/clusterauth"
	"github.com/drove-project/drove/internal/lab"
	"github.com/drove-project/drove/protocol"
)

// The one-line network install, end to end: a bare host of a netns lab
// (a namespace with nothing running) runs
//
//	curl -fsSL --cacert CA https://MASTER:7951/install.sh | sh -s -- --token T --root PREFIX
//
// against the lab's coordinator: the script downloads the coordinator's
// own drove binary over the pinned cluster CA, `drove agent install`
// starts the agent under PREFIX, and it joins and shows in drove status.
// A wrong or missing token is refused before anything is installed.
func TestNetworkInstall(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process lab test (-short)")
	}
	if os.Geteuid() != 0 {
		t.Skip("network install test: needs root (network and mount namespaces)")
	}
	for _, tool := range []string{"ip", "unshare", "curl", "sha256sum"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("network install test: needs %s: %v", tool, err)
		}
	}
	l := upLab(t, lab.Options{Dir: t.TempDir(), Binary: droveBin, Masters: 1, Bare: 1, NetNS: true})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := l.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	m1, _ := l.Node("m1")
	h1, _ := l.Node("h1")
	work := t.TempDir()
	caPEM, err := clusterauth.CACertPEM(l.Token)
	if err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(work, "ca.pem")
	writeTestFile(t, ca, caPEM, 0o644)
	url := fmt.Sprintf("https://%s:%d/install.sh", m1.Addr, netinstall.DefaultPort)

	// oneLiner runs the one line on h1 and returns its exit error and
	// output.
	oneLiner := func(t *testing.T, installArgs string) (string, error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd, err := l.Command(ctx, "h1", "sh", "-c", "curl -fsSL --cacert "+ca+" "+url+" | sh -s -- "+installArgs)
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err = cmd.Run()
		return out.String(), err
	}

	t.Run("refused", func(t *testing.T) {
		for name, args := range map[string]string{
			"wrong token":   "--token drove-not-this-clusters-token",
			"missing token": "",
		} {
			prefix := filepath.Join(work, "refused-"+strings.ReplaceAll(name, " ", "-"))
			out, err := oneLiner(t, args+" --root "+prefix)
			if err == nil {
				t.Fatalf("%s: the install succeeded:\n%s", name, out)
			}
			want := netinstall.RefusedMessage
			if name == "missing token" {
				want = "drove: no cluster token: pass --token T or --token-file F"
			}
			if !strings.Contains(out, want) {
				t.Errorf("%s: the install does not say %q:\n%s", name, want, out)
			}
			if _, err := os.Stat(prefix); !os.IsNotExist(err) {
				t.Errorf("%s: something was installed under %s: %v", name, prefix, err)
			}
			t.Logf("%s:\n%s", name, out)
		}
	})
	if t.Failed() {
		return
	}

	prefix := filepath.Join(work, "root")
	out, err := oneLiner(t, "--token "+l.Token+" --root "+prefix)
	if err != nil {
		t.Fatalf("the network install failed: %v\n%s", err, out)
	}
	t.Logf("the network install:\n%s", out)
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(prefix, "var/log/drove-agent.log"))
			t.Logf("--- h1's installed agent log ---\n%s", b)
		}
	})
	installed, err := os.ReadFile(filepath.Join(prefix, "usr/local/bin/drove"))
	if err != nil {
		t.Fatalf("no binary installed: %v", err)
	}
	if want, _ := os.ReadFile(droveBin); !bytes.Equal(installed, want) {
		t.Errorf("the installed binary (%d bytes) is not the coordinator's (%d bytes)", len(installed), len(want))
	}
	if tok, err := os.ReadFile(filepath.Join(prefix, "etc/drove/token")); err != nil || strings.TrimSpace(string(tok)) != l.Token {
		t.Errorf("installed token: %q, %v", tok, err)
	}

	// The new agent joins: drove status lists it, alive, at h1's address.
	cli := t.TempDir()
	deadline := time.Now().Add(90 * time.Second)
	var last string
	for {
		st, raw, err := labStatus(l, cli)
		if err == nil && hasAliveMember(st, h1.Addr) {
			break
		}
		last = fmt.Sprint(err, "\n", raw)
		if time.Now().After(deadline) {
			t.Fatalf("the installed agent on h1 (%s) never showed alive in drove status; last:\n%s", h1.Addr, last)
		}
		time.Sleep(200 * time.Millisecond) // polling the CLI, not synchronisation
	}
}

// labStatus runs `drove status -o json` against the lab's coordinators.
func labStatus(l *lab.Lab, dataDir string) (*protocol.Status, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, droveBin, "--data-dir", dataDir, "status", "-o", "json",
		"--server", strings.Join(l.Servers(), ","), "--token-file", filepath.Join(l.Dir, "token"))
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, errb.String(), err
	}
	var st protocol.Status
	if err := json.Unmarshal(out.Bytes(), &st); err != nil {
		return nil, out.String(), err
	}
	return &st, out.String(), nil
}

func hasAliveMember(st *protocol.Status, addr string) bool {
	for _, m := range st.Members {
		if m.Address == addr && m.State == "alive" {
			return true
		}
	}
	return false
}
