package extension

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// TestAnnotationJSON pins the JSON to sealer's field names and order
// (pkg/define/image/v1 ImageExtension, pkg/define/application/v1
// Application).
func TestAnnotationJSON(t *testing.T) {
	ext := &ImageExtension{
		BuildClient:   BuildClient{SealerVersion: "v0.1.0"},
		SchemaVersion: SchemaVersion,
		Type:          KubeInstaller,
		Applications: []*Application{
			{Name: "nginx", Type: AppTypeKube, Files: []string{"a.yaml"}, Version: AppVersion, Env: map[string]string{"k": "v"}, Cmds: []string{"kubectl apply -f a.yaml"}},
			{Name: "bare"},
		},
		Labels: map[string]string{"l": "1"},
		Env:    map[string]string{"PodCIDR": "100.64.0.0/10"},
		Launch: Launch{Cmds: []string{"echo hi"}, AppNames: []string{"nginx"}},
	}
	got, err := ext.Annotation()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"buildClient":{"sealerVersion":"v0.1.0","buildahVersion":""},"schemaVersion":"v1alpha1","type":"kube-installer",` +
		`"applications":[{"name":"nginx","type":"kube","files":["a.yaml"],"version":"v1","env":{"k":"v"},"cmds":["kubectl apply -f a.yaml"]},{"name":"bare"}],` +
		`"labels":{"l":"1"},"env":{"PodCIDR":"100.64.0.0/10"},"launch":{"cmds":["echo hi"],"app_names":["nginx"]}}`
	if got != want {
		t.Errorf("JSON\n got %s\nwant %s", got, want)
	}
	empty, err := (&ImageExtension{SchemaVersion: SchemaVersion}).Annotation()
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"buildClient":{"sealerVersion":"","buildahVersion":""},"schemaVersion":"v1alpha1","launch":{}}`; empty != want {
		t.Errorf("empty JSON\n got %s\nwant %s", empty, want)
	}

	back, err := Parse(got)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, ext) {
		t.Errorf("round trip\n got %+v\nwant %+v", back, ext)
	}
}

// TestParseSealerWritten decodes an annotation as sealer v0.9 wrote it.
func TestParseSealerWritten(t *testing.T) {
	const sealer = `{"buildClient":{"sealerVersion":"v0.9.0","buildahVersion":"1.27.1"},"schemaVersion":"v1alpha1","type":"app-installer",` +
		`"applications":[{"name":"nginx","type":"kube","files":["/nginx.yaml"],"version":"v1"},{"name":"tool","type":"shell","files":["install.sh"],"version":"v1","env":{"A":"1"}}],` +
		`"env":{"G":"2"},"launch":{"app_names":["nginx","tool"]},"unknownField":true}`
	ext, err := Parse(sealer)
	if err != nil {
		t.Fatal(err)
	}
	if ext.BuildClient.BuildahVersion != "1.27.1" || ext.Type != AppInstaller || ext.Env["G"] != "2" {
		t.Errorf("decoded %+v", ext)
	}
	if got := ext.AppNames(); !reflect.DeepEqual(got, []string{"nginx", "tool"}) {
		t.Errorf("AppNames() = %q", got)
	}
	// sealer wrote directory files with a leading slash; paths still join.
	want := []string{
		"kubectl apply -f application/apps/nginx/nginx.yaml",
		"bash application/apps/tool/install.sh",
	}
	if got := ext.LaunchCmds(); !reflect.DeepEqual(got, want) {
		t.Errorf("LaunchCmds() = %q, want %q", got, want)
	}
	if ext.App("tool").Env["A"] != "1" || ext.App("missing") != nil {
		t.Errorf("App lookups wrong: %+v", ext.Applications)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		in   string
		want string
	}{
		{"", "decode sealer.image.extension annotation: not a JSON object"},
		{"null", "decode sealer.image.extension annotation: not a JSON object"},
		{`["x"]`, "decode sealer.image.extension annotation: not a JSON object"},
		{`{"schemaVersion":`, "decode sealer.image.extension annotation: unexpected end of JSON input"},
		{`{"applications":"x"}`, "decode sealer.image.extension annotation: json: cannot unmarshal string into Go struct field ImageExtension.applications of type []*extension.Application"},
		{`{"applications":[null]}`, "decode sealer.image.extension annotation: application 0 is null"},
	}
	for _, tt := range tests {
		_, err := Parse(tt.in)
		if err == nil || err.Error() != tt.want {
			t.Errorf("Parse(%q) error = %v, want %s", tt.in, err, tt.want)
		}
	}
	if _, err := Parse("42"); !errors.Is(err, ErrNotObject) {
		t.Errorf("Parse(42) error %v is not ErrNotObject", err)
	}
}

func TestContainerImages(t *testing.T) {
	list := []ContainerImage{
		{Image: "docker.io/library/nginx:1.25", Platform: &Platform{Architecture: "amd64", OS: "linux"}},
		{Image: "quay.io/x/y:1", AppName: "app", Platform: &Platform{Architecture: "arm64", OS: "linux", Variant: "v8"}},
	}
	s, err := ContainerImagesAnnotation(list)
	if err != nil {
		t.Fatal(err)
	}
	want := `[{"image":"docker.io/library/nginx:1.25","platform":{"architecture":"amd64","os":"linux"}},` +
		`{"image":"quay.io/x/y:1","appName":"app","platform":{"architecture":"arm64","os":"linux","variant":"v8"}}]`
	if s != want {
		t.Errorf("JSON\n got %s\nwant %s", s, want)
	}
	back, err := ParseContainerImages(s)
	if err != nil || !reflect.DeepEqual(back, list) {
		t.Errorf("round trip: %+v, %v", back, err)
	}
	if s, _ := ContainerImagesAnnotation(nil); s != "[]" {
		t.Errorf("empty list encodes as %s", s)
	}
	for _, bad := range []string{"", "{}", `[{"appName":"a"}]`, `[{"image":1}]`} {
		if _, err := ParseContainerImages(bad); err == nil || !strings.Contains(err.Error(), AnnotationContainerImages) {
			t.Errorf("ParseContainerImages(%q) error = %v", bad, err)
		}
	}
}

func TestLabelKeys(t *testing.T) {
	if got := LabelKubeCNI("calico"); got != "cluster.alpha.sealer.io/kube-cni-calico" {
		t.Errorf("LabelKubeCNI = %s", got)
	}
	if got := LabelKubeCSI("ebs"); got != "cluster.alpha.sealer.io/kube-csi-ebs" {
		t.Errorf("LabelKubeCSI = %s", got)
	}
}
