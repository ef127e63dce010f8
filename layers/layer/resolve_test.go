package layer

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

func TestCleanPath(t *testing.T) {
	for in, want := range map[string]string{
		"":             "",
		"/":            "",
		".":            "",
		"a":            "a",
		"/a/b/":        "a/b",
		"./a//b/../c":  "a/c",
		"../../etc":    "etc",
		"/../x/./y/..": "x",
	} {
		if got := CleanPath(in); got != want {
			t.Errorf("CleanPath(%q) = %q, want %q", in, got, want)
		}
	}
}

// copyContext builds a build context:
//
//	a.yaml b.yaml c.txt
//	dir/x dir/sub/y dir/link -> x
//	out -> ../outside (a link leaving the context)
func copyContext(t *testing.T) (ctxDir string) {
	t.Helper()
	base := t.TempDir()
	ctxDir = filepath.Join(base, "ctx")
	for _, f := range []string{"a.yaml", "b.yaml", "c.txt", "dir/x", "dir/sub/y"} {
		p := filepath.Join(ctxDir, f)
		must(t, os.MkdirAll(filepath.Dir(p), 0o755))
		must(t, os.WriteFile(p, []byte(f), 0o644))
	}
	must(t, os.Symlink("x", filepath.Join(ctxDir, "dir/link")))
	must(t, os.WriteFile(filepath.Join(base, "outside"), []byte("secret"), 0o644))
	must(t, os.Symlink("../outside", filepath.Join(ctxDir, "out")))
	return ctxDir
}

func TestResolveCopy(t *testing.T) {
	ctxDir := copyContext(t)
	real, err := filepath.EvalSymlinks(ctxDir)
	must(t, err)
	tests := []struct {
		name string
		srcs []string
		dest string
		want map[string]string // dest -> src relative to the context
	}{
		{"file renamed", []string{"a.yaml"}, "etc/app.yaml", map[string]string{"etc/app.yaml": "a.yaml"}},
		{"file into dir/", []string{"a.yaml"}, "/etc/", map[string]string{"etc/a.yaml": "a.yaml"}},
		{"file into root", []string{"/a.yaml"}, "/", map[string]string{"a.yaml": "a.yaml"}},
		{"several sources make dest a dir", []string{"a.yaml", "c.txt"}, "etc", map[string]string{
			"etc/a.yaml": "a.yaml", "etc/c.txt": "c.txt"}},
		{"glob", []string{"*.yaml"}, "/m/", map[string]string{"m/a.yaml": "a.yaml", "m/b.yaml": "b.yaml"}},
		{"glob of one match keeps file dest", []string{"c.*"}, "m/c", map[string]string{"m/c": "c.txt"}},
		{"dir copies its contents", []string{"dir"}, "/opt/d", map[string]string{
			"opt/d": "dir", "opt/d/x": "dir/x", "opt/d/link": "dir/link",
			"opt/d/sub": "dir/sub", "opt/d/sub/y": "dir/sub/y"}},
		{"dir into root", []string{"dir/sub/"}, "/", map[string]string{"y": "dir/sub/y"}},
		{"link source is followed", []string{"dir/link"}, "l", map[string]string{"l": "dir/x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			entries, err := ResolveCopy(ctxDir, tt.srcs, tt.dest)
			if err != nil {
				t.Fatal(err)
			}
			got := make(map[string]string)
			for _, e := range entries {
				rel, err := filepath.Rel(real, e.Src)
				must(t, err)
				got[e.Dest] = filepath.ToSlash(rel)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v\nwant %v", got, tt.want)
			}
		})
	}
}

func TestResolveCopyErrors(t *testing.T) {
	ctxDir := copyContext(t)
	tests := []struct {
		src      string
		sentinel error
		text     string
	}{
		{"missing.txt", ErrNotInContext, `COPY source "missing.txt" not found in context ` + ctxDir},
		{"*.json", ErrNotInContext, `COPY source "*.json" not found in context ` + ctxDir},
		{"../outside", ErrOutsideContext, `COPY source "../outside" is outside context ` + ctxDir},
		{"dir/../../outside", ErrOutsideContext, `COPY source "dir/../../outside" is outside context`},
		{"out", ErrOutsideContext, `COPY source "out" is outside context ` + ctxDir},
		{"o*", ErrOutsideContext, `COPY source "o*" is outside context`},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			_, err := ResolveCopy(ctxDir, []string{tt.src}, "/x/")
			if !errors.Is(err, tt.sentinel) {
				t.Fatalf("err = %v, want %v", err, tt.sentinel)
			}
			if !strings.Contains(err.Error(), tt.text) {
				t.Errorf("error %q does not contain %q", err, tt.text)
			}
		})
	}
}

func TestResolveCopyGlobInOddContextName(t *testing.T) {
	ctxDir := filepath.Join(t.TempDir(), "ctx[1]")
	must(t, os.MkdirAll(ctxDir, 0o755))
	must(t, os.WriteFile(filepath.Join(ctxDir, "a.yaml"), nil, 0o644))
	entries, err := ResolveCopy(ctxDir, []string{"*.yaml"}, "/")
	if err != nil {
		t.Fatal(err)
	}
	var dests []string
	for _, e := range entries {
		dests = append(dests, e.Dest)
	}
	sort.Strings(dests)
	if !reflect.DeepEqual(dests, []string{"a.yaml"}) {
		t.Errorf("dests = %v", dests)
	}
}
