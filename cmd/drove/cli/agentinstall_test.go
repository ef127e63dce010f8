package cli

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"sigs.k8s.io/yaml"
)

// fakeAgentEnv makes this test binary, started as `drove agent` by
// drove agent install, stand in for an agent: "run" waits for SIGTERM,
// "exit" fails at once.
const fakeAgentEnv = "DROVE_TEST_FAKE_AGENT"

func init() {
	switch os.Getenv(fakeAgentEnv) {
	case "":
	case "exit":
		fmt.Fprintln(os.Stderr, "fake agent: no cluster token, giving up")
		os.Exit(3)
	default:
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGTERM)
		<-c
		os.Exit(0)
	}
}

// installFixture is a root to install into, a binary and a token file.
type installFixture struct {
	root, bin, token, tokenFile, dataDir string
}

func newInstallFixture(t *testing.T, bin string) installFixture {
	t.Helper()
	f := installFixture{root: t.TempDir(), bin: bin, dataDir: t.TempDir(),
		token: "drove-0123456789abcdefghijklmnop", tokenFile: filepath.Join(t.TempDir(), "token")}
	if f.bin == "" {
		f.bin = filepath.Join(t.TempDir(), "drove")
		if err := os.WriteFile(f.bin, []byte("#!/bin/sh\n# not really drove\n"), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(f.tokenFile, []byte(f.token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f installFixture) install(t *testing.T, extra ...string) droveRun {
	t.Helper()
	args := append([]string{"agent", "install", "--root", f.root, "--join", "10.0.0.1,10.0.0.2",
		"--token-file", f.tokenFile, "--binary", f.bin}, extra...)
	return runCLI(t, f.dataDir, "", args...)
}

func (f installFixture) path(p string) string { return filepath.Join(f.root, p) }

func checkMode(t *testing.T, p string, want os.FileMode) {
	t.Helper()
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != want {
		t.Errorf("%s: mode %o, want %o", p, st.Mode().Perm(), want)
	}
}

// TestAgentInstallFlagsToOptions: what each flag sets.
func TestAgentInstallFlagsToOptions(t *testing.T) {
	o := &agentInstallOptions{}
	cmd := agentInstallCmd(&Globals{}, o)
	err := cmd.ParseFlags([]string{"--root", "/r", "--join", "a,b", "--token-file", "t", "--roles", "master",
		"--labels", "zone=a", "--labels", "rack=2", "--config", "c.yaml", "--media", "/m", "--binary", "/b", "--no-start"})
	if err != nil {
		t.Fatal(err)
	}
	if o.Root != "/r" || len(o.Join) != 2 || o.TokenFile != "t" || o.Roles[0] != "master" || len(o.Labels) != 2 ||
		o.Config != "c.yaml" || o.Media != "/m" || o.Binary != "/b" || !o.NoStart || o.Settle != 2*time.Second {
		t.Fatalf("options: %+v", o)
	}
}

// TestAgentInstallFiles: install under a root writes the binary, a config
// drove agent --config accepts, the token (0600) and the unit; a second
// run changes nothing; uninstall removes it all, --purge the data too.
func TestAgentInstallFiles(t *testing.T) {
	f := newInstallFixture(t, "")
	r := f.install(t, "--roles", "node", "--labels", "zone=a", "--media", "/mnt/drove-media/drove/image", "--no-start")
	if r.code != 0 || !strings.Contains(r.out, "files written") {
		t.Fatalf("install: exit %d\n%s%s", r.code, r.out, r.err)
	}
	bin, _ := os.ReadFile(f.path("usr/local/bin/drove"))
	src, _ := os.ReadFile(f.bin)
	if !bytes.Equal(bin, src) {
		t.Error("the installed binary differs from --binary")
	}
	checkMode(t, f.path("usr/local/bin/drove"), 0o755)
	checkMode(t, f.path("etc/drove/token"), 0o600)
	checkMode(t, f.path("etc/drove/agent.yaml"), 0o644)
	checkMode(t, f.path("var/lib/drove"), 0o700)
	if tok, _ := os.ReadFile(f.path("etc/drove/token")); string(tok) != f.token+"\n" {
		t.Errorf("token file holds %q", tok)
	}

	// The config is what `drove agent --config` reads, strictly.
	g := &Globals{DataDir: t.TempDir()}
	o := &agentOptions{}
	cmd := agentCmd(g, o)
	if err := cmd.ParseFlags([]string{"--config", f.path("etc/drove/agent.yaml")}); err != nil {
		t.Fatal(err)
	}
	if err := o.complete(g, cmd.Flags()); err != nil {
		t.Fatalf("drove agent --config rejects the installed config: %v", err)
	}
	if o.Token != f.token || o.DataDir != f.path("var/lib/drove") || o.Join[1] != "10.0.0.2" ||
		o.Roles[0] != "node" || o.Labels["zone"] != "a" || o.Media != "/mnt/drove-media/drove/image" {
		t.Errorf("agent options from the installed config: %+v", o)
	}
	if cfg, _ := os.ReadFile(f.path("etc/drove/agent.yaml")); bytes.Contains(cfg, []byte(f.token)) {
		t.Error("agent.yaml holds the token itself")
	}
	unit, _ := os.ReadFile(f.path("etc/systemd/system/drove-agent.service"))
	want := "ExecStart=" + f.path("usr/local/bin/drove") + " agent --config " + f.path("etc/drove/agent.yaml") + "\n"
	if !strings.Contains(string(unit), want) || !strings.Contains(string(unit), "Type=simple") ||
		!strings.Contains(string(unit), "Restart=always") {
		t.Errorf("unit does not run the installed agent (%q):\n%s", want, unit)
	}

	before, _ := os.Stat(f.path("etc/drove/agent.yaml"))
	r = f.install(t, "--roles", "node", "--labels", "zone=a", "--media", "/mnt/drove-media/drove/image", "--no-start")
	if r.code != 0 || !strings.Contains(r.out, "unchanged") {
		t.Fatalf("second install: exit %d\n%s%s", r.code, r.out, r.err)
	}
	if after, _ := os.Stat(f.path("etc/drove/agent.yaml")); !os.SameFile(before, after) {
		t.Error("an unchanged install rewrote agent.yaml")
	}
	os.Chmod(f.path("etc/drove/token"), 0o644)
	if r = f.install(t, "--roles", "node", "--labels", "zone=a", "--media", "/mnt/drove-media/drove/image", "--no-start"); r.code != 0 {
		t.Fatal(r.err)
	}
	checkMode(t, f.path("etc/drove/token"), 0o600)
	if r = f.install(t, "--roles", "master", "--no-start"); r.code != 0 || !strings.Contains(r.out, "files written") {
		t.Fatalf("install with new roles: exit %d\n%s%s", r.code, r.out, r.err)
	}

	os.WriteFile(f.path("var/lib/drove/journal"), []byte("x"), 0o600)
	r = runCLI(t, f.dataDir, "", "agent", "uninstall", "--root", f.root)
	if r.code != 0 {
		t.Fatalf("uninstall: %s", r.err)
	}
	for _, p := range []string{"usr/local/bin/drove", "etc/drove", "etc/systemd/system/drove-agent.service"} {
		if _, err := os.Stat(f.path(p)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still there after uninstall (%v)", p, err)
		}
	}
	if _, err := os.Stat(f.path("var/lib/drove/journal")); err != nil {
		t.Errorf("uninstall without --purge removed the data: %v", err)
	}
	if r = runCLI(t, f.dataDir, "", "agent", "uninstall", "--root", f.root, "--purge"); r.code != 0 {
		t.Fatalf("uninstall --purge: %s", r.err)
	}
	if _, err := os.Stat(f.path("var/lib/drove")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("data directory still there after --purge (%v)", err)
	}
}

// TestAgentInstallRefuses: usage errors name what to fix.
func TestAgentInstallRefuses(t *testing.T) {
	f := newInstallFixture(t, "")
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("jion: [x]\n"), 0o600)
	short := filepath.Join(t.TempDir(), "short")
	os.WriteFile(short, []byte("abc\n"), 0o600)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"agent", "install", "--root", f.root, "--join", "a", "--binary", f.bin}, "no cluster token"},
		{[]string{"agent", "install", "--root", f.root, "--token-file", f.tokenFile, "--binary", f.bin}, "no --join"},
		{[]string{"agent", "install", "--root", f.root, "--join", "a", "--token-file", short, "--binary", f.bin}, "too short"},
		{[]string{"agent", "install", "--root", f.root, "--join", "a", "--token-file", f.tokenFile, "--config", bad, "--binary", f.bin}, "jion"},
		{[]string{"agent", "install", "--root", f.root, "--join", "a", "--token-file", f.tokenFile, "--labels", "zone", "--binary", f.bin}, "key=value"},
		{[]string{"agent", "install", "--root", f.root, "--join", "a", "--token-file", f.tokenFile, "--binary", "/nonexistent"}, "--binary"},
	} {
		r := runCLI(t, f.dataDir, "", tc.args...)
		if r.code != exitUsage || !strings.Contains(r.err, tc.want) {
			t.Errorf("drove %s: exit %d %q, want a usage error with %q", strings.Join(tc.args, " "), r.code, r.err, tc.want)
		}
	}
	if ents, _ := os.ReadDir(f.root); len(ents) != 0 {
		t.Errorf("refused installs wrote %v", ents)
	}
}

// TestAgentInstallConfigBase: --config supplies settings the flags do not,
// and its token moves into the token file.
func TestAgentInstallConfigBase(t *testing.T) {
	f := newInstallFixture(t, "")
	base := filepath.Join(t.TempDir(), "agent.yaml")
	os.WriteFile(base, []byte("join: [10.1.1.1]\nroles: [node, gpu]\ngossipPort: 8946\ntoken: "+f.token+"\n"), 0o600)
	r := runCLI(t, f.dataDir, "", "agent", "install", "--root", f.root, "--config", base, "--binary", f.bin, "--no-start")
	if r.code != 0 {
		t.Fatalf("install: %s", r.err)
	}
	var c agentOptions
	b, _ := os.ReadFile(f.path("etc/drove/agent.yaml"))
	if err := yaml.UnmarshalStrict(b, &c); err != nil {
		t.Fatal(err)
	}
	if c.Join[0] != "10.1.1.1" || c.Roles[1] != "gpu" || c.GossipPort != 8946 || c.Token != "" || c.TokenFile != f.path("etc/drove/token") {
		t.Fatalf("config: %+v", c)
	}
	if tok, _ := os.ReadFile(f.path("etc/drove/token")); string(tok) != f.token+"\n" {
		t.Errorf("token file holds %q", tok)
	}
}

// TestAgentInstallStartsAgent: without --no-start, install starts the
// installed binary as `agent --config …` in its own session with a pid
// file; a second install leaves it running; uninstall stops it.
func TestAgentInstallStartsAgent(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(fakeAgentEnv, "run")
	f := newInstallFixture(t, self)
	r := f.install(t, "--settle", "300ms")
	if r.code != 0 || !strings.Contains(r.out, "agent started") {
		t.Fatalf("install: exit %d\n%s%s", r.code, r.out, r.err)
	}
	l := layoutUnder(f.root)
	pid, ok := runningAgent(l)
	if !ok {
		t.Fatalf("no running agent after install (pid file %s)", l.PID)
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	if sid, _ := unix.Getsid(pid); sid != pid {
		t.Errorf("agent pid %d is in session %d, not its own", pid, sid)
	}
	r = f.install(t, "--settle", "300ms")
	if again, _ := runningAgent(l); r.code != 0 || again != pid || !strings.Contains(r.out, "already running") {
		t.Fatalf("second install: pid %d then %d, exit %d\n%s%s", pid, again, r.code, r.out, r.err)
	}
	r = runCLI(t, f.dataDir, "", "agent", "uninstall", "--root", f.root)
	if r.code != 0 || !strings.Contains(r.out, fmt.Sprintf("stopped the agent (pid %d)", pid)) {
		t.Fatalf("uninstall: exit %d\n%s%s", r.code, r.out, r.err)
	}
	if isAgentProcess(pid, l.Binary) {
		t.Fatal("the agent still runs after uninstall")
	}
	if _, err := os.Stat(l.PID); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pid file still there: %v", err)
	}
}

// TestAgentInstallReportsDeadAgent: an agent that exits at once fails the
// install with the end of its log.
func TestAgentInstallReportsDeadAgent(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(fakeAgentEnv, "exit")
	f := newInstallFixture(t, self)
	r := f.install(t, "--settle", "10s")
	if r.code == 0 || !strings.Contains(r.err, errAgentExited.Error()) || !strings.Contains(r.err, "no cluster token, giving up") {
		t.Fatalf("install of a dying agent: exit %d\n%s", r.code, r.err)
	}
}
