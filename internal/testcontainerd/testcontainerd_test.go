package testcontainerd

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestStartAnswersAndKeepsEverythingInDir(t *testing.T) {
	dir := t.TempDir()
	d := Start(t, dir)
	out, err := d.Ctr(t, "version")
	if err != nil {
		t.Fatalf("ctr version: %v", err)
	}
	if !strings.Contains(out, "Server:") {
		t.Errorf("ctr version printed no server section:\n%s", out)
	}
	for name, p := range map[string]string{"Address": d.Address, "Root": d.Root, "State": d.State, "ConfigPath": d.ConfigPath} {
		if !strings.HasPrefix(p, dir+string(filepath.Separator)) {
			t.Errorf("%s = %s, want a path under %s", name, p, dir)
		}
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	// The content store lives in the daemon's own root.
	if _, err := os.Stat(filepath.Join(d.Root, "io.containerd.content.v1.content")); err != nil {
		t.Errorf("content store not under root: %v", err)
	}
	out, err = d.Ctr(t, "plugins", "ls")
	if err != nil {
		t.Fatalf("ctr plugins ls: %v", err)
	}
	if strings.Contains(out, "io.containerd.grpc.v1.cri") {
		t.Errorf("CRI plugin loaded, want it disabled:\n%s", out)
	}
	if !lineHasAll(out, "overlayfs", "ok") {
		t.Errorf("overlayfs snapshotter not ok:\n%s", out)
	}

	d.Stop()
	d.Stop() // idempotent
	select {
	case <-d.exited:
	default:
		t.Error("daemon process not reaped after Stop")
	}
	if c, err := net.Dial("unix", d.Address); err == nil {
		c.Close()
		t.Error("daemon socket still accepts connections after Stop")
	}
}

func TestTwoDaemonsSideBySide(t *testing.T) {
	a := Start(t, t.TempDir())
	b := Start(t, t.TempDir())
	if _, err := a.Ctr(t, "namespaces", "create", "only-in-a"); err != nil {
		t.Fatal(err)
	}
	outA, err := a.Ctr(t, "namespaces", "ls", "-q")
	if err != nil {
		t.Fatal(err)
	}
	outB, err := b.Ctr(t, "namespaces", "ls", "-q")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(outA, "only-in-a") || strings.Contains(outB, "only-in-a") {
		t.Errorf("daemons share state: a=%q b=%q", outA, outB)
	}
}

func TestLongDirGetsShortSocket(t *testing.T) {
	dir := filepath.Join(t.TempDir(), strings.Repeat("very-long-directory-name-", 4))
	sd := SocketDir(dir)
	if sd == dir {
		t.Fatalf("SocketDir(%s) = dir, want a short directory", dir)
	}
	if got := SocketDir(dir); got != sd {
		t.Errorf("SocketDir not stable: %s then %s", sd, got)
	}
	d := Start(t, dir)
	if len(d.Address)+len(".ttrpc") >= maxSocketPath {
		t.Errorf("Address %s is %d bytes", d.Address, len(d.Address))
	}
	if !strings.HasPrefix(d.Address, sd) || !strings.HasPrefix(d.Root, dir) {
		t.Errorf("Address %s Root %s, want socket in %s and root in %s", d.Address, d.Root, sd, dir)
	}
	if _, err := d.Ctr(t, "version"); err != nil {
		t.Fatal(err)
	}
}

func TestCommandWritesConfigWithoutStarting(t *testing.T) {
	dir := t.TempDir()
	cmd, configPath, err := Command(dir)
	if err != nil {
		t.Fatal(err)
	}
	if cmd.Process != nil {
		t.Fatal("Command started the process")
	}
	if want := []string{Binary, "--config", configPath}; strings.Join(cmd.Args, " ") != strings.Join(want, " ") {
		t.Errorf("Args = %q, want %q", cmd.Args, want)
	}
	b, err := os.ReadFile(configPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(b)
	for _, want := range []string{
		"version = 2",
		`root = "` + filepath.Join(dir, "root") + `"`,
		`state = "` + filepath.Join(dir, "state") + `"`,
		`"io.containerd.grpc.v1.cri"`,
		`address = "` + LayoutFor(dir).Address + `"`,
		`address = "` + LayoutFor(dir).Address + `.ttrpc"`,
	} {
		if !strings.Contains(cfg, want) {
			t.Errorf("config lacks %s:\n%s", want, cfg)
		}
	}
}

// lineHasAll reports whether some line of out contains every word.
func lineHasAll(out string, words ...string) bool {
	for _, line := range strings.Split(out, "\n") {
		all := true
		for _, w := range words {
			if !strings.Contains(line, w) {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}
