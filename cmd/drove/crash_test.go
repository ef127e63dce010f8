package main

import (
	"bytes"
	"crypto/rand"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drove-project/drove/layers/store"
)

// These tests run the real binary as a separate process and kill -9 it in
// the middle of long work, then check the store holds only whole images.

var droveBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "drove-bin-")
	if err != nil {
		panic(err)
	}
	droveBin = filepath.Join(dir, "drove")
	// drovetest adds the fault switches tests flip (agent/fault_drovetest.go).
	out, err := exec.Command("go", "build", "-tags", "drovetest", "-o", droveBin, ".").CombinedOutput()
	if err != nil {
		os.Stderr.Write(out)
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func drove(t *testing.T, dataDir string, args ...string) string {
	t.Helper()
	cmd := exec.Command(droveBin, append([]string{"--data-dir", dataDir}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("drove %s: %v\n%s%s", strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String()
}

// startDrove starts drove and returns a function that kills it with SIGKILL.
func startDrove(t *testing.T, dataDir string, args ...string) (kill func()) {
	t.Helper()
	cmd := exec.Command(droveBin, append([]string{"--data-dir", dataDir}, args...)...)
	// No pipes: an orphaned RUN child must not hold Wait open.
	cmd.Stdout, cmd.Stderr = nil, nil
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-done })
	return func() {
		cmd.Process.Signal(syscall.SIGKILL)
		<-done
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // polling interval, not synchronisation
	}
}

// tmpBytes is the size of the largest temporary blob being written.
func tmpBytes(dataDir string) int64 {
	ents, _ := os.ReadDir(filepath.Join(dataDir, "store", "tmp"))
	var max int64
	for _, e := range ents {
		if fi, err := e.Info(); err == nil && fi.Size() > max {
			max = fi.Size()
		}
	}
	return max
}

// checkWhole asserts every listed image verifies, and returns the names.
func checkWhole(t *testing.T, dataDir string) []string {
	t.Helper()
	s, err := store.Open(filepath.Join(dataDir, "store"))
	if err != nil {
		t.Fatal(err)
	}
	list, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range list {
		if err := s.Verify(e.Descriptor); err != nil {
			t.Fatalf("listed image %s does not verify: %v", e.Name, err)
		}
		names = append(names, e.Name)
	}
	return names
}

func bigContext(t *testing.T, kubefile string) string {
	t.Helper()
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, "big"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(f, rand.Reader, 96<<20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	os.WriteFile(filepath.Join(dir, "small"), []byte("small"), 0o644)
	os.WriteFile(filepath.Join(dir, "Kubefile"), []byte(kubefile), 0o644)
	return dir
}

func TestKillDuringLoad(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	ctx := bigContext(t, "FROM scratch\nCOPY big big\n")
	drove(t, src, "build", "--compression", "none", "-t", "big:v1", ctx)
	archive := filepath.Join(t.TempDir(), "big.tar")
	drove(t, src, "save", "-o", archive, "big:v1")

	small := bigContext(t, "FROM scratch\nCOPY small small\n")
	drove(t, dst, "build", "-t", "small:v1", small)
	for _, at := range []int64{1 << 20, 48 << 20} {
		kill := startDrove(t, dst, "load", "-i", archive)
		waitFor(t, "load to write a blob", 30*time.Second, func() bool { return tmpBytes(dst) >= at })
		kill()
		names := checkWhole(t, dst)
		if len(names) != 1 || names[0] != "docker.io/library/small:v1" {
			t.Fatalf("after kill at %d bytes, images: %v", at, names)
		}
	}
	drove(t, dst, "load", "-i", archive)
	if names := checkWhole(t, dst); len(names) != 2 {
		t.Fatalf("after a full load: %v", names)
	}
}

func TestKillDuringBuild(t *testing.T) {
	dd := t.TempDir()
	small := bigContext(t, "FROM scratch\nCOPY small small\n")
	drove(t, dd, "build", "-t", "small:v1", small)

	// Killed while the COPY layer is being written.
	ctx := bigContext(t, "FROM scratch\nCOPY big big\nRUN touch started && sleep 60\n")
	kill := startDrove(t, dd, "build", "--compression", "none", "-t", "big:v1", ctx)
	waitFor(t, "build to write the layer", 30*time.Second, func() bool { return tmpBytes(dd) >= 8<<20 })
	kill()
	if names := checkWhole(t, dd); len(names) != 1 {
		t.Fatalf("after kill during COPY: %v", names)
	}

	// Killed while RUN runs (as root, inside an overlay mount).
	kill = startDrove(t, dd, "build", "--compression", "none", "-t", "big:v1", ctx)
	waitFor(t, "RUN to start", 60*time.Second, func() bool {
		m, _ := filepath.Glob(filepath.Join(dd, "build", "runs", "*", "*", "started"))
		return len(m) > 0
	})
	kill()
	if names := checkWhole(t, dd); len(names) != 1 {
		t.Fatalf("after kill during RUN: %v", names)
	}
	// The next build cleans up after the dead one and succeeds.
	os.WriteFile(filepath.Join(ctx, "Kubefile"), []byte("FROM scratch\nCOPY big big\nRUN touch ran\n"), 0o644)
	drove(t, dd, "build", "--compression", "none", "-t", "big:v1", ctx)
	if names := checkWhole(t, dd); len(names) != 2 {
		t.Fatalf("after rebuild: %v", names)
	}
	if runs, _ := os.ReadDir(filepath.Join(dd, "build", "runs")); len(runs) != 0 {
		t.Fatalf("stale RUN directories left: %v", runs)
	}
}
