package sshpush

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fakeAgentSource is the program pushed in these tests: it writes its argv
// to the file named by --argv-file=, then sleeps; with --crash it exits.
const fakeAgentSource = `package main

import (
	"os"
	"strings"
	"time"
)

func main() {
	for _, a := range os.Args[1:] {
		if a == "--crash" {
			os.Stderr.WriteString("fake agent: crashing as asked\n")
			os.Exit(3)
		}
		if f, ok := strings.CutPrefix(a, "--argv-file="); ok {
			os.WriteFile(f+".tmp", []byte(strings.Join(os.Args, "\n")), 0o644)
			os.Rename(f+".tmp", f)
		}
	}
	time.Sleep(time.Hour)
}
`

// buildFakeAgent compiles fakeAgentSource into dir.
func buildFakeAgent(t *testing.T, dir string) string {
	t.Helper()
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(src, "go.mod"), []byte("module fakeagent\n\ngo 1.21\n"), 0o644)
	writeFile(t, filepath.Join(src, "main.go"), []byte(fakeAgentSource), 0o644)
	bin := filepath.Join(dir, "fake-agent")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build fake agent: %v\n%s", err, out)
	}
	return bin
}

func TestInstallAgentDetached(t *testing.T) {
	s := startSSHD(t, false)
	c := s.rootClient(t)
	if _, err := os.Stat("/run/systemd/system"); err == nil {
		t.Skip("this host runs systemd: InstallAgent would install a real unit")
	}
	ctx := context.Background()
	dir := t.TempDir()
	bin := buildFakeAgent(t, dir)
	remoteBin := filepath.Join(dir, "remote", "bin", "drove")
	dataDir := filepath.Join(dir, "remote", "data")
	argvFile := filepath.Join(dir, "argv")
	spec := InstallSpec{
		Binary:       bin,
		RemoteBinary: remoteBin,
		DataDir:      dataDir,
		Args:         []string{"--data-dir", dataDir, "agent", "--argv-file=" + argvFile, "--name", `it's "quoted" $HOME %n`},
		Token:        []byte("cluster-secret\n"),
		Settle:       300 * time.Millisecond,
	}
	t.Cleanup(func() {
		// The agent is detached from everything: stop it by its pid.
		for _, pid := range findProcs(t, remoteBin) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})

	if err := c.InstallAgent(ctx, spec); err != nil {
		t.Fatalf("install: %v", err)
	}
	pid := oneAgent(t, remoteBin)
	waitFor(t, 10*time.Second, "argv written", func() bool { _, err := os.Stat(argvFile); return err == nil })
	b, _ := os.ReadFile(argvFile)
	if want := append([]string{remoteBin}, spec.Args...); !reflect.DeepEqual(strings.Split(string(b), "\n"), want) {
		t.Fatalf("agent argv = %q, want %q", b, want)
	}
	if pf, _ := os.ReadFile(filepath.Join(dataDir, "agent.pid")); strings.TrimSpace(string(pf)) != strconv.Itoa(pid) {
		t.Fatalf("pid file %q, running pid %d", pf, pid)
	}
	tok := filepath.Join(dataDir, "token")
	if b, err := os.ReadFile(tok); err != nil || string(b) != "cluster-secret\n" {
		t.Fatalf("token = %q, %v", b, err)
	}
	if st, _ := os.Stat(tok); st.Mode().Perm() != 0o600 {
		t.Fatalf("token mode %v", st.Mode().Perm())
	}
	if st, _ := os.Stat(dataDir); st.Mode().Perm() != 0o700 {
		t.Fatalf("data dir mode %v", st.Mode().Perm())
	}
	local, _, _ := fileSHA256(bin)
	if remote, _, _ := fileSHA256(remoteBin); remote != local {
		t.Fatal("remote binary differs")
	}
	ino := inode(t, remoteBin)

	// Twice: nothing uploaded, the same single agent.
	if err := c.InstallAgent(ctx, spec); err != nil {
		t.Fatalf("second install: %v", err)
	}
	if again := oneAgent(t, remoteBin); again != pid {
		t.Fatalf("second install restarted the agent: pid %d, was %d", again, pid)
	}
	if inode(t, remoteBin) != ino {
		t.Fatal("second install uploaded the binary again")
	}

	// Changed arguments: the one agent is replaced.
	os.Remove(argvFile)
	spec.Args = append(spec.Args, "--join", "10.0.0.1:7946")
	if err := c.InstallAgent(ctx, spec); err != nil {
		t.Fatalf("third install: %v", err)
	}
	if again := oneAgent(t, remoteBin); again == pid {
		t.Fatal("changed arguments did not restart the agent")
	}
	waitFor(t, 10*time.Second, "argv written", func() bool { _, err := os.Stat(argvFile); return err == nil })
	if b, _ := os.ReadFile(argvFile); !strings.HasSuffix(string(b), "--join\n10.0.0.1:7946") {
		t.Fatalf("restarted agent argv = %q", b)
	}

	// An agent that dies at once is reported, with its log.
	spec.Args = []string{"--crash"}
	err := c.InstallAgent(ctx, spec)
	if !errors.Is(err, ErrAgentNotRunning) || !strings.Contains(err.Error(), "crashing as asked") {
		t.Fatalf("crashing agent: err = %v", err)
	}
	if pids := findProcs(t, remoteBin); len(pids) != 0 {
		t.Fatalf("agents still running after a crash: %v", pids)
	}
}

// oneAgent asserts that exactly one agent runs and returns its pid.
func oneAgent(t *testing.T, bin string) int {
	t.Helper()
	pids := findProcs(t, bin)
	if len(pids) != 1 {
		t.Fatalf("%d agents running (%v), want 1", len(pids), pids)
	}
	return pids[0]
}

func inode(t *testing.T, name string) uint64 {
	t.Helper()
	st, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	return st.Sys().(*syscall.Stat_t).Ino
}

func TestInstallSpecDefaults(t *testing.T) {
	tests := []struct {
		name    string
		spec    InstallSpec
		wantErr string
		check   func(InstallSpec) bool
	}{
		{name: "defaults", spec: InstallSpec{Binary: "/b"}, check: func(s InstallSpec) bool {
			return s.RemoteBinary == DefaultRemoteBinary && s.DataDir == DefaultDataDir &&
				s.TokenFile == DefaultDataDir+"/token" && s.LogFile == DefaultDataDir+"/agent.log" && s.Settle == DefaultSettle
		}},
		{name: "token and log follow data dir", spec: InstallSpec{Binary: "/b", DataDir: "/d"}, check: func(s InstallSpec) bool {
			return s.TokenFile == "/d/token" && s.LogFile == "/d/agent.log"
		}},
		{name: "no binary", spec: InstallSpec{}, wantErr: "no local binary"},
		{name: "relative remote", spec: InstallSpec{Binary: "/b", RemoteBinary: "drove"}, wantErr: "remote binary"},
		{name: "unclean data dir", spec: InstallSpec{Binary: "/b", DataDir: "/var/../x"}, wantErr: "data directory"},
		{name: "newline in log", spec: InstallSpec{Binary: "/b", LogFile: "/x\n/y"}, wantErr: "log file"},
		{name: "NUL in arg", spec: InstallSpec{Binary: "/b", Args: []string{"a\x00b"}}, wantErr: "not valid UTF-8 text"},
		{name: "bad UTF-8 arg", spec: InstallSpec{Binary: "/b", Args: []string{"\xff"}}, wantErr: "not valid UTF-8 text"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.spec
			err := s.defaults()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !tt.check(s) {
				t.Fatalf("defaults() = %+v, %v", s, err)
			}
		})
	}
}

func TestRenderUnit(t *testing.T) {
	u := renderUnit("/usr/local/bin/drove", []string{"--data-dir", "/var/lib/drove", "agent", `a "b" \c`, "50%", "$HOME"}, "/var/lib/drove/agent.log")
	for _, want := range []string{
		`ExecStart="/usr/local/bin/drove" "--data-dir" "/var/lib/drove" "agent" "a \"b\" \\c" "50%%" "$$HOME"` + "\n",
		"Restart=always\n",
		"StandardOutput=append:/var/lib/drove/agent.log\n",
		"WantedBy=multi-user.target\n",
	} {
		if !strings.Contains(u, want) {
			t.Errorf("unit lacks %q:\n%s", want, u)
		}
	}
}
