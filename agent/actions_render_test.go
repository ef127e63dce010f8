package agent

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/drove-project/drove/layers/render"
	"github.com/drove-project/drove/protocol"
)

func writeTestFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readTestFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRenderActionRendersAndConfigures(t *testing.T) {
	dataDir, rootfs := rfsTestRootfs(t)
	writeTestFile(t, filepath.Join(rootfs, "etc/node.yaml.tmpl"),
		"ip: {{ .HostIP }}\nsans:\n{{- range .CertSANs }}\n  - {{ . }}\n{{- end }}\nnote: {{ .Note }}\n")
	writeTestFile(t, filepath.Join(rootfs, "etc/app.yaml"), "replicas: 1\nimage: app:1\n")
	a := protocol.Action{
		Kind:   ActionRender,
		Rootfs: rfsImage,
		// As the coordinator sends it: lists space-joined (render.Env.Shell).
		Env: map[string]string{"HostIP": "10.0.0.5", "CertSANs": "api.example 10.0.0.100", "Note": "two words"},
		Configs: []protocol.ConfigFile{
			{Path: "etc/app.yaml", Data: "replicas: 3\n", Strategy: render.StrategyMerge},
			{Path: "etc/node.yaml", Data: "extra: true\n", Strategy: render.StrategyMerge},
		},
	}
	var out bytes.Buffer
	code, outputs, err := RenderAction{DataDir: dataDir}.Run(context.Background(), a, &out)
	if err != nil || code != 0 {
		t.Fatalf("code %d, err %v, output %q", code, err, out.String())
	}
	node := readTestFile(t, filepath.Join(rootfs, "etc/node.yaml"))
	for _, want := range []string{"ip: 10.0.0.5", "- api.example", "- 10.0.0.100", "note: two words", "extra: true"} {
		if !strings.Contains(node, want) {
			t.Errorf("etc/node.yaml lacks %q:\n%s", want, node)
		}
	}
	if app := readTestFile(t, filepath.Join(rootfs, "etc/app.yaml")); !strings.Contains(app, "replicas: 3") || !strings.Contains(app, "image: app:1") {
		t.Errorf("etc/app.yaml not merged:\n%s", app)
	}
	for _, want := range []string{"rendered etc/node.yaml\n", "configured etc/app.yaml\n", "configured etc/node.yaml\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if outputs["rendered"] != "1" || outputs["configured"] != "2" {
		t.Errorf("outputs %v", outputs)
	}

	// Again: the same files (the merge is not applied twice over itself).
	before := readTestFile(t, filepath.Join(rootfs, "etc/node.yaml")) + readTestFile(t, filepath.Join(rootfs, "etc/app.yaml"))
	if code, _, err := (RenderAction{DataDir: dataDir}).Run(context.Background(), a, &out); err != nil || code != 0 {
		t.Fatalf("second run: %d %v", code, err)
	}
	after := readTestFile(t, filepath.Join(rootfs, "etc/node.yaml")) + readTestFile(t, filepath.Join(rootfs, "etc/app.yaml"))
	if before != after {
		t.Errorf("second run changed the files:\n%s\n---\n%s", before, after)
	}
}

func TestRenderActionFailures(t *testing.T) {
	dataDir, rootfs := rfsTestRootfs(t)
	writeTestFile(t, filepath.Join(rootfs, "etc/bad.yaml.tmpl"), "x: {{ .HostIP \n")
	writeTestFile(t, filepath.Join(rootfs, "etc/keep.yaml"), "keep: 1\n")
	for _, c := range []struct {
		name   string
		action protocol.Action
		is     error
		want   string
	}{
		{"no image", protocol.Action{}, nil, "names no image"},
		{"image missing", protocol.Action{Rootfs: "sha256:" + strings.Repeat("a", 64)}, ErrImageNotHere, "distribute it first"},
		{"bad template", protocol.Action{Rootfs: rfsImage}, nil, "bad.yaml.tmpl"},
		{"bad env key", protocol.Action{Rootfs: rfsImage, Env: map[string]string{"A B": "x"}}, render.ErrBadEnv, "env"},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.action.Kind = ActionRender
			var out bytes.Buffer
			code, _, err := RenderAction{DataDir: dataDir}.Run(context.Background(), c.action, &out)
			if err == nil || code == 0 || !strings.Contains(err.Error(), c.want) || (c.is != nil && !errors.Is(err, c.is)) {
				t.Fatalf("code %d, err %v; want %q", code, err, c.want)
			}
		})
	}
	// A bad Config changes nothing either.
	os.Remove(filepath.Join(rootfs, "etc/bad.yaml.tmpl"))
	a := protocol.Action{Kind: ActionRender, Rootfs: rfsImage, Configs: []protocol.ConfigFile{
		{Path: "etc/keep.yaml", Data: "keep: 2\n"},
		{Path: "../outside", Data: "x"},
	}}
	if code, _, err := (RenderAction{DataDir: dataDir}).Run(context.Background(), a, &bytes.Buffer{}); err == nil || code == 0 {
		t.Fatalf("a Config leaving the rootfs was applied: %d", code)
	}
	if got := readTestFile(t, filepath.Join(rootfs, "etc/keep.yaml")); got != "keep: 1\n" {
		t.Errorf("a failed render changed etc/keep.yaml: %q", got)
	}
}

func TestRenderEnv(t *testing.T) {
	for _, c := range []struct {
		name string
		in   map[string]string
		want render.Env
	}{
		{"empty", nil, render.Env{}},
		{"plain values keep their spaces", map[string]string{"A": "x y", "B": "1"}, render.Env{"A": {"x y"}, "B": {"1"}}},
		{"semicolons make lists", map[string]string{"L": "a;b"}, render.Env{"L": {"a", "b"}}},
		{"CertSANs split at spaces", map[string]string{"CertSANs": "a.example  10.0.0.1"}, render.Env{"CertSANs": {"a.example", "10.0.0.1"}}},
		{"CertSANs with both", map[string]string{"CertSANs": "a b;c"}, render.Env{"CertSANs": {"a", "b", "c"}}},
		{"empty value", map[string]string{"E": ""}, render.Env{"E": {""}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := RenderEnv(c.in)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got %#v, want %#v", got, c.want)
			}
		})
	}
	// Round trip of what the coordinator sends: Shell of a render.Env.
	env := render.Env{"CertSANs": {"a", "b"}, "HostIP": {"10.0.0.1"}}
	got, err := RenderEnv(env.Shell())
	if err != nil || !reflect.DeepEqual(got, env) {
		t.Fatalf("round trip: %#v, %v", got, err)
	}
}

func FuzzRenderEnv(f *testing.F) {
	f.Add("CertSANs", "a b;c", "K", "v")
	f.Add("A B", "x", "", "")
	f.Add("K", "a\x00b", "L", ";;")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 string) {
		in := map[string]string{k1: v1, k2: v2}
		env, err := RenderEnv(in)
		if err != nil {
			if !errors.Is(err, render.ErrBadEnv) {
				t.Fatalf("error %v does not wrap ErrBadEnv", err)
			}
			return
		}
		for k, v := range in {
			got, ok := env[k]
			if !ok {
				t.Fatalf("key %q lost", k)
			}
			if k == render.KeyCertSANs {
				if want := strings.Fields(strings.ReplaceAll(v, ";", " ")); !reflect.DeepEqual([]string(got), want) && len(want) > 0 {
					t.Fatalf("CertSANs %q -> %q", v, got)
				}
				continue
			}
			if strings.Join(got, ";") != v {
				t.Fatalf("%s=%q read as %q", k, v, got)
			}
		}
	})
}
