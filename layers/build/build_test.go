package build

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/drove-project/drove/layers/extension"
	"github.com/drove-project/drove/layers/layer"
	"github.com/drove-project/drove/layers/store"
)

type env struct {
	t    *testing.T
	s    *store.Store
	work string
	out  bytes.Buffer
}

func newEnv(t *testing.T) *env {
	d := t.TempDir()
	s, err := store.Open(filepath.Join(d, "store"))
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, s: s, work: filepath.Join(d, "build")}
}

func (e *env) build(ctxDir string, o Options) (Result, error) {
	e.t.Helper()
	e.out.Reset()
	o.Context = ctxDir
	o.WorkDir = e.work
	o.Out = &e.out
	if o.Tags == nil {
		o.Tags = []string{"test:v1"}
	}
	return Build(context.Background(), e.s, o)
}

func (e *env) mustBuild(ctxDir string, o Options) Result {
	e.t.Helper()
	res, err := e.build(ctxDir, o)
	if err != nil {
		e.t.Fatalf("build: %v\noutput:\n%s", err, e.out.String())
	}
	return res
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// rootfs unpacks an image's layers into a directory and returns it.
func (e *env) rootfs(img v1.Image) string {
	e.t.Helper()
	dir := e.t.TempDir()
	ls, err := img.Layers()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, l := range ls {
		rc, err := l.Uncompressed()
		if err != nil {
			e.t.Fatal(err)
		}
		if _, err := layer.Apply(context.Background(), dir, rc); err != nil {
			e.t.Fatal(err)
		}
		rc.Close()
	}
	return dir
}

func (e *env) image(ref string) v1.Image {
	e.t.Helper()
	ent, err := e.s.Resolve(ref)
	if err != nil {
		e.t.Fatal(err)
	}
	img, err := e.s.Image(ent.Descriptor.Digest)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := validate.Image(img); err != nil {
		e.t.Fatalf("validate %s: %v", ref, err)
	}
	return img
}

func tree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.Type().IsRegular() {
			b, _ := os.ReadFile(p)
			rel += "=" + string(b)
		}
		out = append(out, rel)
		return nil
	})
	sort.Strings(out)
	return out
}

func TestSealerFixturesBuild(t *testing.T) {
	root := "../../../shared/reference/sealer-fixtures/test/suites/build/fixtures"
	dirs, err := os.ReadDir(root)
	if err != nil {
		t.Skipf("sealer fixtures not found at %s: %v", root, err)
	}
	e := newEnv(t)
	for _, d := range dirs {
		ctxDir := filepath.Join(root, d.Name())
		o := Options{Tags: []string{d.Name() + ":v1"}}
		if d.Name() == "build_with_multi_arch" {
			o.Platforms = []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}}
		}
		res := e.mustBuild(ctxDir, o)
		if d.Name() == "build_with_multi_arch" {
			if !res.Descriptor.MediaType.IsIndex() {
				t.Fatalf("multi-arch build gave %s", res.Descriptor.MediaType)
			}
			idx, err := e.s.Index(res.Descriptor.Digest)
			if err != nil {
				t.Fatal(err)
			}
			if err := validate.Index(idx); err != nil {
				t.Fatal(err)
			}
			im, _ := idx.IndexManifest()
			for _, m := range im.Manifests {
				img, _ := idx.Image(m.Digest)
				want := "bin/i_am_" + m.Platform.Architecture
				if got := tree(t, e.rootfs(img)); !containsPrefix(got, want+"=") {
					t.Errorf("%s image has %v, want %s", m.Platform.Architecture, got, want)
				}
			}
			continue
		}
		img := e.image(d.Name() + ":v1")
		m, _ := img.Manifest()
		ext, err := extension.Parse(m.Annotations[extension.AnnotationExtension])
		if err != nil {
			t.Fatalf("%s: %v", d.Name(), err)
		}
		switch d.Name() {
		case "build_with_appcmds":
			if got := strings.Join(ext.Launch.AppNames, ","); got != "mixedapp,shellapp" {
				t.Errorf("launch apps %q", got)
			}
			if a := ext.App("shellapp"); a == nil || a.Type != "shell" {
				t.Errorf("shellapp: %+v", a)
			}
			files := tree(t, e.rootfs(img))
			for _, f := range []string{"application/apps/yamlapp/a.yaml", "application/apps/mixedapp/install.sh", "application/apps/mixedapp/app.yaml"} {
				if !containsPrefix(files, f) {
					t.Errorf("rootfs lacks %s: %v", f, files)
				}
			}
		case "build_with_cmds":
			if got := strings.Join(ext.Launch.Cmds, ";"); got != "kubectl apply -f manifests/app.yaml" {
				t.Errorf("cmds %q", got)
			}
		case "build_with_launch":
			if a := ext.App("myapp"); a == nil || a.Type != "kube" {
				t.Errorf("myapp: %+v", a)
			}
		}
	}
}

func containsPrefix(list []string, prefix string) bool {
	for _, s := range list {
		if strings.HasPrefix(s, prefix) {
			return true
		}
	}
	return false
}

func TestCacheReuseAndInvalidation(t *testing.T) {
	e := newEnv(t)
	ctxDir := t.TempDir()
	writeFiles(t, ctxDir, map[string]string{
		"Kubefile": "FROM scratch\nARG V=1\nCOPY a etc/a\nRUN echo $V > etc/v\nCOPY b etc/b\n",
		"a":        "A", "b": "B",
	})
	first := e.mustBuild(ctxDir, Options{})
	if first.Steps != 3 || first.Cached != 0 {
		t.Fatalf("first build %+v", first)
	}
	again := e.mustBuild(ctxDir, Options{})
	if again.Cached != 3 || again.Descriptor.Digest == (v1.Hash{}) {
		t.Fatalf("rebuild %+v\n%s", again, e.out.String())
	}
	if !strings.Contains(e.out.String(), "CACHED") {
		t.Fatalf("no CACHED in output:\n%s", e.out.String())
	}
	// Touching a file without changing it keeps the cache.
	os.Chtimes(filepath.Join(ctxDir, "a"), first0(), first0())
	if r := e.mustBuild(ctxDir, Options{}); r.Cached != 3 {
		t.Fatalf("after touch: %+v\n%s", r, e.out.String())
	}
	// Changing b reruns only the last step.
	writeFiles(t, ctxDir, map[string]string{"b": "B2"})
	if r := e.mustBuild(ctxDir, Options{}); r.Cached != 2 {
		t.Fatalf("after changing b: %+v", r)
	}
	// A different build arg reruns RUN and what follows.
	if r := e.mustBuild(ctxDir, Options{BuildArgs: map[string]string{"V": "2"}}); r.Cached != 1 {
		t.Fatalf("after changing V: %+v", r)
	}
	files := tree(t, e.rootfs(e.image("test:v1")))
	if !containsPrefix(files, "etc/v=2\n") || !containsPrefix(files, "etc/b=B2") {
		t.Fatalf("rootfs %v", files)
	}
	if r := e.mustBuild(ctxDir, Options{NoCache: true}); r.Cached != 0 {
		t.Fatalf("--no-cache reused %d steps", r.Cached)
	}
}

func TestRunChangesBecomeLayers(t *testing.T) {
	for _, mode := range []string{"overlay", "copy"} {
		t.Run(mode, func(t *testing.T) {
			if mode == "overlay" && os.Geteuid() != 0 {
				t.Skip("overlay RUN needs root")
			}
			old := useOverlay
			useOverlay = func() bool { return mode == "overlay" }
			defer func() { useOverlay = old }()
			e := newEnv(t)
			ctxDir := t.TempDir()
			writeFiles(t, ctxDir, map[string]string{
				"Kubefile": "FROM scratch\nENV GREETING=hi\nCOPY ctx/ .\n" +
					"RUN rm keep/gone && rm -r dir && mkdir dir && echo new > dir/new && echo $GREETING > greeting\n" +
					"RUN true\n" +
					"RUN [\"/bin/sh\", \"-c\", \"echo json > json\"]\n",
				"ctx/keep/gone": "x", "ctx/keep/stays": "y", "ctx/dir/old": "o",
			})
			res := e.mustBuild(ctxDir, Options{})
			if res.Steps != 4 {
				t.Fatalf("steps %+v", res)
			}
			img := e.image("test:v1")
			if ls, _ := img.Layers(); len(ls) != 3 { // COPY, RUN, RUN json; "RUN true" adds none
				t.Fatalf("%d layers, want 3\n%s", len(ls), e.out.String())
			}
			got := strings.Join(tree(t, e.rootfs(img)), " ")
			want := "dir dir/new=new\n greeting=hi\n json=json\n keep keep/stays=y"
			if got != want {
				t.Fatalf("rootfs:\n got %s\nwant %s", got, want)
			}
			// A second build on top of the first exercises lowers with whiteouts.
			ctx2 := t.TempDir()
			writeFiles(t, ctx2, map[string]string{"Kubefile": "FROM test:v1\nRUN test ! -e keep/gone && test ! -e dir/old && cat greeting > copy\n"})
			e.mustBuild(ctx2, Options{Tags: []string{"child:v1"}})
			if got := tree(t, e.rootfs(e.image("child:v1"))); !containsPrefix(got, "copy=hi") {
				t.Fatalf("child rootfs %v", got)
			}
		})
	}
}

func TestBuildErrorsChangeNothing(t *testing.T) {
	cases := []struct {
		name, kubefile, want string
		platforms            []v1.Platform
	}{
		{"missing copy source", "FROM scratch\nCOPY a a\nCOPY nope x\n", "Kubefile:3: COPY", nil},
		{"failing run", "FROM scratch\nCOPY a a\nRUN exit 3\n", "Kubefile:3: RUN: command failed with exit code 3", nil},
		{"unknown instruction", "FROM scratch\nFORM x\n", "Kubefile:2:", nil},
		{"launch not last", "FROM scratch\nAPP x local://a\nLAUNCH x\nCOPY a a\n", "Kubefile:3:", nil},
		{"appcmds undeclared", "FROM scratch\nAPPCMDS y [\"a\"]\n", "Kubefile:2:", nil},
		{"foreign run", "FROM scratch\nRUN true\n", "drove does not emulate", []v1.Platform{{OS: "linux", Architecture: "s390x"}}},
		{"missing base", "FROM 127.0.0.1:1/nothing:here\n", "Kubefile:1: FROM", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			ctxDir := t.TempDir()
			writeFiles(t, ctxDir, map[string]string{"Kubefile": "FROM scratch\nCOPY a a\n", "a": "A"})
			e.mustBuild(ctxDir, Options{Tags: []string{"keep:v1"}})
			before, _ := e.s.List()
			writeFiles(t, ctxDir, map[string]string{"Kubefile": c.kubefile})
			_, err := e.build(ctxDir, Options{Tags: []string{"keep:v1", "other:v1"}, Platforms: c.platforms})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
			after, _ := e.s.List()
			if len(before) != len(after) || before[0].Descriptor.Digest != after[0].Descriptor.Digest {
				t.Fatalf("names changed: %v -> %v", before, after)
			}
		})
	}
}

func first0() time.Time { return time.Unix(1e9, 0) }
