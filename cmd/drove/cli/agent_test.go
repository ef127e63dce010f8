package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAgentOptions: the YAML file fills what flags leave unset; flags win;
// role master turns the coordinator on by default.
func TestAgentOptions(t *testing.T) {
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	os.WriteFile(token, []byte("drove-0123456789abcdefghij\n"), 0o600)
	cfg := filepath.Join(dir, "agent.yaml")
	os.WriteFile(cfg, []byte("name: m1\nroles: [master]\njoin: [10.0.0.1]\nlabels: {zone: a}\nbootstrapExpect: 3\ntokenFile: "+token+"\nraftPort: 9000\ndownloadConcurrency: 8\n"), 0o600)
	g := &Globals{DataDir: dir}
	o := &agentOptions{}
	cmd := agentCmd(g, o)
	if err := cmd.ParseFlags([]string{"--config", cfg, "--raft-port", "9100", "--bind", "127.0.0.5"}); err != nil {
		t.Fatal(err)
	}
	if err := o.complete(g, cmd.Flags()); err != nil {
		t.Fatal(err)
	}
	if o.Name != "m1" || o.RaftPort != 9100 || o.BootstrapExpect != 3 || o.Labels["zone"] != "a" ||
		o.Token != "drove-0123456789abcdefghij" || !*o.Coordinator || o.Advertise != "127.0.0.5" || o.Join[0] != "10.0.0.1" || o.DownloadConc != 8 {
		t.Fatalf("options: %+v", o)
	}

	o = &agentOptions{}
	cmd = agentCmd(g, o)
	cmd.ParseFlags([]string{"--token-file", token, "--download-concurrency", "0"})
	if err := o.complete(g, cmd.Flags()); err == nil || !strings.Contains(err.Error(), "--download-concurrency") {
		t.Fatalf("--download-concurrency 0: %v", err)
	}

	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("nmae: typo\n"), 0o600)
	o = &agentOptions{}
	cmd = agentCmd(g, o)
	cmd.ParseFlags([]string{"--config", bad})
	if err := o.complete(g, cmd.Flags()); err == nil || !strings.Contains(err.Error(), "nmae") {
		t.Fatalf("unknown key: %v", err)
	}
	o = &agentOptions{}
	cmd = agentCmd(g, o)
	cmd.ParseFlags([]string{"--roles", "node"})
	t.Setenv("DROVE_TOKEN", "")
	if err := o.complete(g, cmd.Flags()); err == nil || !strings.Contains(err.Error(), "token") {
		t.Fatalf("missing token: %v", err)
	}
}

func TestExecPlan(t *testing.T) {
	o := &execOptions{Roles: []string{"master"}, Parallel: 1}
	p := o.plan("uptime")
	s := p.Phases[0].Steps[0]
	if p.Phases[0].Parallel != 1 || s.Target.Roles[0] != "master" || s.Action.Kind != "shell" || s.Action.Command != "uptime" {
		t.Fatalf("plan: %+v", p)
	}
}

func TestClientNeedsACluster(t *testing.T) {
	t.Setenv("DROVE_SERVER", "")
	t.Setenv("DROVE_TOKEN", "")
	r := runCLI(t, t.TempDir(), "", "status")
	if r.code != exitUsage || !strings.Contains(r.err, "drove lab up") {
		t.Fatalf("status without a cluster: %+v", r)
	}
}
