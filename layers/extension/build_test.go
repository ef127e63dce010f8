package extension

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/drove-project/drove/layers/kubefile"
)

const fixtureDir = "../../../shared/reference/sealer-fixtures/test/suites/build/fixtures"

// buildText parses and expands a Kubefile and builds its extension.
func buildText(t *testing.T, text string, in Input) (*ImageExtension, map[string]string, error) {
	t.Helper()
	k, err := kubefile.Parse("Kubefile", strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	var inherited []string
	if in.Base != nil {
		inherited = in.Base.AppNames()
	}
	if err := k.Validate(inherited); err != nil {
		t.Fatal(err)
	}
	in.Steps, _, err = k.Steps(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if in.File == "" {
		in.File = "Kubefile"
	}
	if in.Type == "" {
		in.Type = AppInstaller
	}
	if in.Version == "" {
		in.Version = "v0.0.0-test"
	}
	return Build(context.Background(), in)
}

// TestSealerFixtures builds the extension of every sealer fixture and
// checks it against what sealer's e2e tests expect of it.
func TestSealerFixtures(t *testing.T) {
	if _, err := os.Stat(fixtureDir); err != nil {
		t.Skipf("no sealer fixtures: %v", err)
	}
	tests := []struct {
		dir        string
		json       string
		launchCmds []string
	}{
		{
			dir: "build_with_appcmds",
			json: `{"buildClient":{"sealerVersion":"v0.0.0-test","buildahVersion":""},"schemaVersion":"v1alpha1","type":"app-installer","applications":[` +
				`{"name":"yamlapp","type":"kube","files":["a.yaml","b.yaml","c.yaml"],"version":"v1"},` +
				`{"name":"shellapp","type":"shell","files":["a.sh","b.sh","c.sh"],"version":"v1"},` +
				`{"name":"mixedapp","version":"v1","cmds":["kubectl apply -f app.yaml"]}],` +
				`"launch":{"app_names":["mixedapp","shellapp"]}}`,
			launchCmds: []string{
				"cd application/apps/mixedapp/ && kubectl apply -f app.yaml",
				"bash application/apps/shellapp/a.sh && bash application/apps/shellapp/b.sh && bash application/apps/shellapp/c.sh",
			},
		},
		{
			dir:        "build_with_cmds",
			json:       `{"buildClient":{"sealerVersion":"v0.0.0-test","buildahVersion":""},"schemaVersion":"v1alpha1","type":"app-installer","launch":{"cmds":["kubectl apply -f manifests/app.yaml"]}}`,
			launchCmds: []string{"kubectl apply -f manifests/app.yaml"},
		},
		{
			dir:  "build_with_imagelist_flag",
			json: `{"buildClient":{"sealerVersion":"v0.0.0-test","buildahVersion":""},"schemaVersion":"v1alpha1","type":"app-installer","launch":{}}`,
		},
		{
			dir: "build_with_launch",
			json: `{"buildClient":{"sealerVersion":"v0.0.0-test","buildahVersion":""},"schemaVersion":"v1alpha1","type":"app-installer",` +
				`"applications":[{"name":"myapp","type":"kube","files":["app.yaml"],"version":"v1"}],"launch":{"app_names":["myapp"]}}`,
			launchCmds: []string{"kubectl apply -f application/apps/myapp/app.yaml"},
		},
		{
			dir: "build_with_multi_arch",
			json: `{"buildClient":{"sealerVersion":"v0.0.0-test","buildahVersion":""},"schemaVersion":"v1alpha1","type":"app-installer",` +
				`"applications":[{"name":"myapp","type":"kube","files":["app.yaml"],"version":"v1"}],"launch":{"app_names":["myapp"]}}`,
			launchCmds: []string{"kubectl apply -f application/apps/myapp/app.yaml"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.dir, func(t *testing.T) {
			dir := filepath.Join(fixtureDir, tt.dir)
			text, err := os.ReadFile(filepath.Join(dir, "Kubefile"))
			if err != nil {
				t.Fatal(err)
			}
			ext, labels, err := buildText(t, string(text), Input{Context: os.DirFS(dir), Arch: "arm64"})
			if err != nil {
				t.Fatal(err)
			}
			got, err := ext.Annotation()
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.json {
				t.Errorf("annotation\n got %s\nwant %s", got, tt.json)
			}
			if cmds := ext.LaunchCmds(); !reflect.DeepEqual(cmds, tt.launchCmds) {
				t.Errorf("LaunchCmds() = %q, want %q", cmds, tt.launchCmds)
			}
			if len(labels) != 0 {
				t.Errorf("labels = %v, want none", labels)
			}
		})
	}
}

func TestBuildLabelsEnvAndCmd(t *testing.T) {
	fsys := writeTree(t, "calico/calico.yaml", "ebs/ebs.yaml", "tool/run.sh")
	text := `FROM scratch
ENV A=1 B=2
LABEL cluster.alpha.sealer.io/container-runtime-type=containerd
CNI calico local://calico
CSI ebs local://ebs
APP tool local://tool
APPENV tool X=1 Y=2
APPENV tool Y=3
KUBEVERSION ">=1.22 <1.26"
ENV B=3
CMD kubectl get nodes
CMD ["echo", "done"]
`
	ext, labels, err := buildText(t, text, Input{Context: fsys, Type: KubeInstaller})
	if err != nil {
		t.Fatal(err)
	}
	wantLabels := map[string]string{
		LabelContainerRuntimeType:                 "containerd",
		"cluster.alpha.sealer.io/kube-cni-calico": "true",
		"cluster.alpha.sealer.io/kube-csi-ebs":    "true",
		LabelSupportedKubeVersion:                 ">=1.22 <1.26",
	}
	if !reflect.DeepEqual(labels, wantLabels) {
		t.Errorf("labels\n got %v\nwant %v", labels, wantLabels)
	}
	if want := map[string]string{"A": "1", "B": "3"}; !reflect.DeepEqual(ext.Env, want) {
		t.Errorf("env = %v, want %v", ext.Env, want)
	}
	if want := map[string]string{"X": "1", "Y": "3"}; !reflect.DeepEqual(ext.App("tool").Env, want) {
		t.Errorf("tool env = %v, want %v", ext.App("tool").Env, want)
	}
	if want := []string{"kubectl get nodes", "echo done"}; !reflect.DeepEqual(ext.Launch.Cmds, want) {
		t.Errorf("launch cmds = %q, want %q", ext.Launch.Cmds, want)
	}
	if ext.Type != KubeInstaller || ext.App("calico").Type != AppTypeKube || ext.App("tool").Type != AppTypeShell {
		t.Errorf("extension %+v", ext)
	}
}

func TestBuildInheritsFromBase(t *testing.T) {
	base := &ImageExtension{
		SchemaVersion: SchemaVersion,
		Type:          KubeInstaller,
		Applications: []*Application{
			{Name: "calico", Type: AppTypeKube, Files: []string{"old.yaml"}, Version: AppVersion, Cmds: []string{"old"}},
			{Name: "kept", Type: AppTypeShell, Files: []string{"k.sh"}, Version: AppVersion, Env: map[string]string{"E": "base"}},
			{Name: "custom", Version: AppVersion, Cmds: []string{"./go"}},
		},
		Env:    map[string]string{"G": "base", "H": "base"},
		Launch: Launch{AppNames: []string{"calico", "kept"}, Cmds: []string{"base cmd"}},
	}
	baseJSON, err := base.Annotation()
	if err != nil {
		t.Fatal(err)
	}
	fsys := writeTree(t, "calico/new.yaml", "mine.yaml")
	text := `FROM registry.local/base:v1
ENV H=child
CNI calico local://calico
APP mine local://mine.yaml
APPENV kept E=child
APPCMDS custom ["./go", "--fast"]
LAUNCH ["kept", "mine"]
`
	ext, _, err := buildText(t, text, Input{Context: fsys, Base: base, Type: KubeInstaller})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, a := range ext.Applications {
		names = append(names, a.Name)
	}
	if want := []string{"calico", "kept", "custom", "mine"}; !reflect.DeepEqual(names, want) {
		t.Errorf("apps = %q, want %q", names, want)
	}
	if a := ext.App("calico"); !reflect.DeepEqual(a.Files, []string{"new.yaml"}) || a.Cmds != nil {
		t.Errorf("redeclared calico = %+v, want the new files and no inherited cmds", a)
	}
	if a := ext.App("kept"); a.Env["E"] != "child" || !reflect.DeepEqual(a.Files, []string{"k.sh"}) {
		t.Errorf("kept = %+v", a)
	}
	if a := ext.App("custom"); !reflect.DeepEqual(a.Cmds, []string{"./go", "--fast"}) {
		t.Errorf("custom = %+v", a)
	}
	if want := (Launch{AppNames: []string{"kept", "mine"}}); !reflect.DeepEqual(ext.Launch, want) {
		t.Errorf("launch = %+v, want %+v (not inherited)", ext.Launch, want)
	}
	if want := map[string]string{"G": "base", "H": "child"}; !reflect.DeepEqual(ext.Env, want) {
		t.Errorf("env = %v, want %v", ext.Env, want)
	}
	if again, _ := base.Annotation(); again != baseJSON {
		t.Errorf("Build changed the base extension:\n%s\n%s", baseJSON, again)
	}
}

func TestBuildRemoteAndArch(t *testing.T) {
	fsys := writeTree(t, "amd64/app.yaml", "downloads/remote.yaml")
	text := "FROM scratch\nAPP a local://${ARCH}/app.yaml https://example.com/amd64/remote.yaml\nAPP b local://$ARCH"
	remote := map[string]string{"https://example.com/amd64/remote.yaml": "downloads/remote.yaml"}
	ext, _, err := buildText(t, text, Input{Context: fsys, Arch: "amd64", Remote: remote})
	if err != nil {
		t.Fatal(err)
	}
	if a := ext.App("a"); a.Type != AppTypeKube || !reflect.DeepEqual(a.Files, []string{"app.yaml", "remote.yaml"}) {
		t.Errorf("a = %+v", a)
	}
	if b := ext.App("b"); !reflect.DeepEqual(b.Files, []string{"app.yaml"}) {
		t.Errorf("b = %+v", b)
	}
}

func TestBuildErrors(t *testing.T) {
	fsys := writeTree(t, "mixed/a.yaml", "mixed/b.sh", "ok.yaml")
	tests := []struct {
		name string
		text string
		in   Input
		want string
	}{
		{"unknown type", "FROM scratch\nCOPY a b\nAPP m local://mixed", Input{Context: fsys},
			`Kubefile:3: app "m": app type not detected (helm, kube or shell) and no APPCMDS given`},
		{"unknown inherited", "FROM base\nAPP ok local://ok.yaml", Input{Context: fsys, Base: &ImageExtension{Applications: []*Application{{Name: "old"}}}},
			`Kubefile: app "old" of the base image: app type not detected (helm, kube or shell) and no APPCMDS given`},
		{"missing source", "FROM scratch\nAPP m local://nope.yaml", Input{Context: fsys},
			"Kubefile:2: APP: detect type of app m: stat nope.yaml: no such file or directory"},
		{"remote not fetched", "FROM scratch\nAPP m https://example.com/x.yaml", Input{Context: fsys},
			`Kubefile:2: APP: app "m": remote source https://example.com/x.yaml was not fetched`},
		{"escapes context", "FROM scratch\nAPP m local://../x.yaml", Input{Context: fsys},
			`Kubefile:2: APP: app "m": source local://../x.yaml: leaves the build context`},
		{"absolute", "FROM scratch\nAPP m local:///etc/x.yaml", Input{Context: fsys},
			`Kubefile:2: APP: app "m": source local:///etc/x.yaml: must be relative to the build context`},
		{"no context", "FROM scratch\nAPP m local://ok.yaml", Input{},
			"Kubefile:2: APP: no build context"},
		{"bad type", "FROM scratch", Input{Type: "cloud"},
			`image type "cloud": want kube-installer or app-installer`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := buildText(t, tt.text, tt.in)
			if err == nil || err.Error() != tt.want {
				t.Errorf("error\n got %v\nwant %s", err, tt.want)
			}
		})
	}
	_, _, err := buildText(t, "FROM scratch\nAPP m local://mixed", Input{Context: fsys})
	if !errors.Is(err, ErrUnknownAppType) {
		t.Errorf("error %v is not ErrUnknownAppType", err)
	}
}

func TestBuildStepsWithoutValidate(t *testing.T) {
	// Build checks app references itself, in case Validate was skipped.
	k, err := kubefile.Parse("Kubefile", strings.NewReader("FROM base\nAPPENV ghost a=b"))
	if err != nil {
		t.Fatal(err)
	}
	steps, _, err := k.Steps(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = Build(context.Background(), Input{File: "Kubefile", Steps: steps, Type: KubeInstaller})
	if err == nil || err.Error() != `Kubefile:2: APPENV: no app "ghost"` {
		t.Errorf("error = %v", err)
	}
}
