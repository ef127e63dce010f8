package agent

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/drove-project/drove/protocol"
)

func TestParseOutputLine(t *testing.T) {
	for _, c := range []struct {
		line        string
		name, value string
		ok          bool
	}{
		{"::drove-output token=abc", "token", "abc", true},
		{"::drove-output token=a=b c", "token", "a=b c", true},
		{"::drove-output t.k-1_X=", "t.k-1_X", "", true},
		{"::drove-output token=v\r", "token", "v", true},
		{"::drove-output token= spaced ", "token", " spaced ", true},
		{"::drove-output =v", "", "", false},
		{"::drove-output bad name=v", "", "", false},
		{"::drove-output token", "", "", false},
		{"::drove-outputtoken=v", "", "", false},
		{" ::drove-output token=v", "", "", false},
		{"echo ::drove-output token=v", "", "", false},
		{"::drove-output tök=v", "", "", false},
		{"", "", "", false},
	} {
		name, value, ok := parseOutputLine(c.line)
		if name != c.name || value != c.value || ok != c.ok {
			t.Errorf("parseOutputLine(%q) = %q %q %v, want %q %q %v", c.line, name, value, ok, c.name, c.value, c.ok)
		}
	}
}

// scanWhole is the reference for outputScanner: split on newlines, parse
// each line that is short enough.
func scanWhole(data []byte) map[string]string {
	var ref outputScanner
	for _, line := range strings.Split(string(data), "\n") {
		if len(line) <= MaxOutputLine {
			if name, value, ok := parseOutputLine(line); ok {
				ref.set(name, value)
			}
		}
	}
	return ref.outputs
}

func scanChunks(data []byte, split int) map[string]string {
	var s outputScanner
	split = int(uint(split) % uint(len(data)+1))
	s.Write(data[:split])
	s.Write(data[split:])
	s.flush()
	return s.outputs
}

func TestOutputScanner(t *testing.T) {
	long := "::drove-output long=" + strings.Repeat("x", MaxOutputLine)
	for _, c := range []struct {
		name string
		data string
		want map[string]string
	}{
		{"plain", "a\n::drove-output x=1\nb\n", map[string]string{"x": "1"}},
		{"no final newline", "::drove-output x=1", map[string]string{"x": "1"}},
		{"later wins", "::drove-output x=1\n::drove-output x=2\n", map[string]string{"x": "2"}},
		{"too long a line", long + "\n::drove-output y=1\n", map[string]string{"y": "1"}},
		{"nothing", "hello\n", nil},
	} {
		for split := 0; split <= len(c.data); split += 1 + len(c.data)/50 {
			if got := scanChunks([]byte(c.data), split); !reflect.DeepEqual(got, c.want) {
				t.Errorf("%s split at %d: %v, want %v", c.name, split, got, c.want)
				break
			}
		}
	}
	// Byte-at-a-time writes.
	var s outputScanner
	for _, b := range []byte("x\n::drove-output k=v\r\n") {
		s.Write([]byte{b})
	}
	s.flush()
	if !reflect.DeepEqual(s.outputs, map[string]string{"k": "v"}) {
		t.Fatalf("byte-wise: %v", s.outputs)
	}
}

func TestOutputsBounded(t *testing.T) {
	var s outputScanner
	big := strings.Repeat("v", MaxOutputsSize/2)
	s.set("a", big)
	s.set("b", big) // would pass the bound: dropped
	s.set("a", "small")
	s.set("c", big) // fits now that a shrank
	if _, ok := s.outputs["b"]; ok || s.outputs["a"] != "small" || s.outputs["c"] != big {
		t.Fatalf("outputs %d entries, a=%.10q", len(s.outputs), s.outputs["a"])
	}
	if s.size > MaxOutputsSize {
		t.Fatalf("size %d over the bound", s.size)
	}
	m := boundOutputs(map[string]string{"a": big, "b": big, "c": "x", "bad\xff": "\xff"})
	if len(m) != 1 || m["a"] != big {
		t.Fatalf("boundOutputs kept %d entries", len(m))
	}
}

// FuzzOutputScanner: how stdout is cut into writes never changes the
// outputs.
func FuzzOutputScanner(f *testing.F) {
	f.Add([]byte("::drove-output a=b\n"), 5)
	f.Fuzz(func(t *testing.T, data []byte, split int) {
		got, want := scanChunks(data, split), scanWhole(data)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("chunked %v, whole %v", got, want)
		}
		size := 0
		for k, v := range got {
			if !validOutputName(k) {
				t.Fatalf("invalid name %q", k)
			}
			size += len(k) + len(v)
		}
		if size > MaxOutputsSize {
			t.Fatalf("outputs %d bytes", size)
		}
	})
}

func TestShellExitCodeAndErrors(t *testing.T) {
	var buf bytes.Buffer
	out := &syncWriter{w: &buf}
	code, _, err := Shell{}.Run(t.Context(), protocol.Action{Command: "echo hi; exit 4"}, out)
	if err != nil || code != 4 || buf.String() != "hi\n" {
		t.Fatalf("exit 4: code %d err %v out %q", code, err, buf.String())
	}
	if _, _, err := (Shell{}).Run(t.Context(), protocol.Action{}, out); err == nil {
		t.Fatal("empty command ran")
	}
	if _, _, err := (Shell{}).Run(t.Context(), protocol.Action{Command: "true", Dir: "/does/not/exist"}, out); err == nil {
		t.Fatal("missing Dir accepted")
	}
}

func TestShellBackgroundChildDoesNotHangStep(t *testing.T) {
	// The shell exits at once but leaves a child holding stdout: the step
	// ends after WaitDelay, successfully.
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	out := &syncWriter{w: &bytes.Buffer{}}
	code, _, err := Shell{WaitDelay: 100 * time.Millisecond}.Run(t.Context(), protocol.Action{Command: "sleep 300 & echo $! > " + pidFile + "; echo bye"}, out)
	pid := readPID(t, pidFile)
	syscall.Kill(pid, syscall.SIGKILL)
	if err != nil || code != 0 || out.w.String() != "bye\n" {
		t.Fatalf("code %d err %v output %q", code, err, out.w.String())
	}
}

// syncWriter is a bytes.Buffer safe for exec's concurrent stdout and
// stderr copiers.
type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func TestShellEnv(t *testing.T) {
	got := shellEnv([]string{"A=1", "B=2", "PATH=/bin"}, map[string]string{"B": "3", "C": "4"})
	want := []string{"A=1", "PATH=/bin", "B=3", "C=4"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("shellEnv %v, want %v", got, want)
	}
}

func TestFileMode(t *testing.T) {
	for _, c := range []struct {
		in   uint32
		want os.FileMode
		ok   bool
	}{
		{0, 0o644, true},
		{0o600, 0o600, true},
		{0o755, 0o755, true},
		{0o4755, 0o755 | os.ModeSetuid, true},
		{0o3775, 0o775 | os.ModeSetgid | os.ModeSticky, true},
		{0o10644, 0, false},
	} {
		got, err := fileMode(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("fileMode(%o) = %v %v", c.in, got, err)
		}
	}
}

func TestWriteFileAtomicAndMode(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a", "b", "conf")
	var out bytes.Buffer
	run := func(a protocol.Action) (int, error) {
		a.Path = path
		code, _, err := WriteFile{}.Run(context.Background(), a, &out)
		return code, err
	}
	if code, err := run(protocol.Action{Content: "old\n"}); err != nil || code != 0 {
		t.Fatalf("first write: %d %v", code, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode() != 0o644 {
		t.Fatalf("default mode: %v %v", fi.Mode(), err)
	}
	// Replacing goes through a new file renamed into place: a reader that
	// opened the old file still sees all of the old content, never a mix.
	old, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	oldInfo, _ := old.Stat()
	if code, err := run(protocol.Action{Content: "new content\n", Mode: 0o666}); err != nil || code != 0 {
		t.Fatalf("second write: %d %v", code, err)
	}
	b, _ := os.ReadFile(path)
	fi, _ := os.Stat(path)
	if string(b) != "new content\n" || fi.Mode() != 0o666 {
		t.Fatalf("after replace: %q %v (umask must not apply)", b, fi.Mode())
	}
	if os.SameFile(oldInfo, fi) {
		t.Fatal("file was rewritten in place, not replaced")
	}
	if ob, _ := io.ReadAll(old); string(ob) != "old\n" {
		t.Fatalf("old file changed under its reader: %q", ob)
	}
	ents, _ := os.ReadDir(filepath.Dir(path))
	if len(ents) != 1 {
		t.Fatalf("temporary files left: %v", ents)
	}

	// Failures change nothing.
	for _, a := range []protocol.Action{
		{Path: "relative/conf", Content: "x"},
		{Path: path, Content: "x", Mode: 0o10644},
		{Path: filepath.Dir(path), Content: "x"}, // a directory
	} {
		code, _, err := WriteFile{}.Run(context.Background(), a, &out)
		if err == nil || code == 0 {
			t.Errorf("write-file %+v succeeded", a)
		}
	}
	if b, _ := os.ReadFile(path); string(b) != "new content\n" {
		t.Fatalf("failed writes changed the file: %q", b)
	}
	if _, err := os.Stat("relative"); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("relative path created")
	}
	for _, d := range []string{filepath.Dir(path), filepath.Dir(filepath.Dir(path))} {
		if ents, _ := os.ReadDir(d); len(ents) != 1 {
			t.Fatalf("failed writes left files in %s: %v", d, ents)
		}
	}
}
