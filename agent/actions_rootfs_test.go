package agent

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drove-project/drove/protocol"
)

const (
	rfsImageHex = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	rfsImage    = "sha256:" + rfsImageHex
)

// rfsTestRootfs makes a data directory holding the unpacked image rfsImage
// and returns both paths.
func rfsTestRootfs(t *testing.T) (dataDir, rootfs string) {
	t.Helper()
	dataDir = t.TempDir()
	rootfs = filepath.Join(dataDir, "rootfs", rfsImageHex)
	if err := os.MkdirAll(filepath.Join(rootfs, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	return dataDir, rootfs
}

func TestRootfsDir(t *testing.T) {
	for _, c := range []struct {
		digest, want string // want "" means an error
	}{
		{rfsImage, "/data/rootfs/" + rfsImageHex},
		{rfsImageHex, ""},
		{"sha256:" + rfsImageHex[:63], ""},
		{"sha256:" + strings.ToUpper(rfsImageHex), ""},
		{"sha256:../../../../../../../../../../../../../../../../etc/passwd", ""},
		{"sha512:" + rfsImageHex, ""},
		{"", ""},
	} {
		got, err := RootfsDir("/data", c.digest)
		if (err != nil) != (c.want == "") || got != c.want {
			t.Errorf("RootfsDir(%q) = %q, %v; want %q", c.digest, got, err, c.want)
		}
	}
	if _, err := RootfsDir("", rfsImage); err == nil {
		t.Error("no data directory accepted")
	}
}

func TestShellRunsInRootfs(t *testing.T) {
	dataDir, rootfs := rfsTestRootfs(t)
	sh := Shell{DataDir: dataDir}
	out := &syncWriter{w: &bytes.Buffer{}}
	code, _, err := sh.Run(context.Background(), protocol.Action{
		Kind: "shell", Rootfs: rfsImage, Command: `echo "pwd=$(pwd)"; echo "rootfs=$ROOTFS"; echo "k=$K"`,
		Env: map[string]string{"ROOTFS": "/not/this", "K": "v"},
	}, out)
	if err != nil || code != 0 {
		t.Fatalf("code %d, err %v, output %q", code, err, out.w.String())
	}
	want := "pwd=" + rootfs + "\nrootfs=" + rootfs + "\nk=v\n"
	if out.w.String() != want {
		t.Fatalf("output %q, want %q", out.w.String(), want)
	}

	// Dir wins over the rootfs as working directory; ROOTFS is still set.
	dir := t.TempDir()
	out.w.Reset()
	code, _, err = sh.Run(context.Background(), protocol.Action{
		Kind: "shell", Rootfs: rfsImage, Dir: dir, Command: `echo "$(pwd) $ROOTFS"`,
	}, out)
	if err != nil || code != 0 || out.w.String() != dir+" "+rootfs+"\n" {
		t.Fatalf("with Dir: code %d, err %v, output %q", code, err, out.w.String())
	}

	// Without Rootfs nothing changes: no ROOTFS from the agent.
	out.w.Reset()
	t.Setenv("ROOTFS", "")
	code, _, err = sh.Run(context.Background(), protocol.Action{Kind: "shell", Command: `echo "[$ROOTFS]"`}, out)
	if err != nil || code != 0 || out.w.String() != "[]\n" {
		t.Fatalf("without Rootfs: code %d, err %v, output %q", code, err, out.w.String())
	}
}

func TestShellFailsAtOnceWithoutTheImage(t *testing.T) {
	dataDir := t.TempDir()
	marker := filepath.Join(dataDir, "ran")
	out := &syncWriter{w: &bytes.Buffer{}}
	code, _, err := Shell{DataDir: dataDir}.Run(context.Background(), protocol.Action{
		Kind: "shell", Rootfs: rfsImage, Command: "touch " + marker,
	}, out)
	if !errors.Is(err, ErrImageNotHere) || code == 0 {
		t.Fatalf("code %d, err %v; want ErrImageNotHere", code, err)
	}
	if msg := err.Error(); !strings.Contains(msg, "image "+rfsImage+" is not on this node") || !strings.Contains(msg, "distribute it first") {
		t.Errorf("message %q does not say what is missing and what to do", msg)
	}
	if _, err := os.Stat(marker); !errors.Is(err, os.ErrNotExist) {
		t.Error("the command ran although the image is missing")
	}
	// A digest that is not one is refused too, and is not "missing".
	_, _, err = Shell{DataDir: dataDir}.Run(context.Background(), protocol.Action{Kind: "shell", Rootfs: "sha256:..", Command: "true"}, out)
	if err == nil || errors.Is(err, ErrImageNotHere) {
		t.Errorf("bad digest: %v", err)
	}
}

func TestShellRootfsThroughExecutor(t *testing.T) {
	dataDir, rootfs := rfsTestRootfs(t)
	reg := Builtins()
	reg.Register("shell", Shell{DataDir: dataDir})
	e := openTest(t, t.TempDir(), reg)
	res := e.Handle(context.Background(), with(shellStep("p1/0/0/"+testNode, "pwd"), func(d *protocol.StepDispatch) {
		d.Action.Rootfs = rfsImage
	}))
	if res.State != protocol.StateSucceeded || res.Output != rootfs+"\n" {
		t.Fatalf("result %+v", res)
	}
	if err := os.RemoveAll(rootfs); err != nil {
		t.Fatal(err)
	}
	res = e.Handle(context.Background(), with(shellStep("p1/0/1/"+testNode, "true"), func(d *protocol.StepDispatch) {
		d.Action.Rootfs = rfsImage
	}))
	if res.State != protocol.StateFailed || !strings.Contains(res.Error, "distribute it first") {
		t.Fatalf("missing image: %+v", res)
	}
}

func TestWriteFileRelativeToRootfs(t *testing.T) {
	dataDir, rootfs := rfsTestRootfs(t)
	w := WriteFile{DataDir: dataDir}
	var out bytes.Buffer
	code, _, err := w.Run(context.Background(), protocol.Action{
		Kind: "write-file", Rootfs: rfsImage, Path: "etc/kubeadm.yaml", Content: "kind: x\n", Mode: 0o600,
	}, &out)
	if err != nil || code != 0 {
		t.Fatalf("code %d, err %v", code, err)
	}
	path := filepath.Join(rootfs, "etc", "kubeadm.yaml")
	b, err := os.ReadFile(path)
	if err != nil || string(b) != "kind: x\n" {
		t.Fatalf("read %s: %q, %v", path, b, err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode())
	}
	if !strings.Contains(out.String(), path) {
		t.Errorf("output %q does not name %s", out.String(), path)
	}

	// An absolute path ignores the rootfs.
	abs := filepath.Join(t.TempDir(), "abs")
	if code, _, err := w.Run(context.Background(), protocol.Action{Kind: "write-file", Rootfs: rfsImage, Path: abs, Content: "a"}, &out); err != nil || code != 0 {
		t.Fatalf("absolute: %d %v", code, err)
	}
	if b, _ := os.ReadFile(abs); string(b) != "a" {
		t.Errorf("absolute path got %q", b)
	}

	for _, c := range []struct {
		name   string
		action protocol.Action
		is     error
		want   string
	}{
		{"relative without rootfs", protocol.Action{Path: "etc/x"}, nil, "not absolute"},
		{"leads out", protocol.Action{Rootfs: rfsImage, Path: "../../escape"}, nil, "leads out"},
		{"image missing", protocol.Action{Rootfs: "sha256:" + strings.Repeat("f", 64), Path: "etc/x"}, ErrImageNotHere, "distribute it first"},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.action.Kind = "write-file"
			code, _, err := w.Run(context.Background(), c.action, &out)
			if err == nil || code == 0 || !strings.Contains(err.Error(), c.want) || (c.is != nil && !errors.Is(err, c.is)) {
				t.Fatalf("code %d, err %v; want %q", code, err, c.want)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dataDir, "escape")); !errors.Is(err, os.ErrNotExist) {
		t.Error("a path with .. wrote outside the rootfs")
	}
}
