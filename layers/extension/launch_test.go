package extension

import (
	"reflect"
	"testing"
)

func TestLaunchCmd(t *testing.T) {
	tests := []struct {
		name string
		app  Application
		want string
	}{
		{"kube", Application{Name: "k", Type: AppTypeKube, Files: []string{"a.yaml", "sub/b.yaml"}},
			"kubectl apply -f application/apps/k/a.yaml && kubectl apply -f application/apps/k/sub/b.yaml"},
		{"shell", Application{Name: "s", Type: AppTypeShell, Files: []string{"install.sh"}},
			"bash application/apps/s/install.sh"},
		{"helm", Application{Name: "h", Type: AppTypeHelm, Files: []string{"h"}},
			"helm install h application/apps/h/"},
		{"appcmds override type", Application{Name: "k", Type: AppTypeKube, Files: []string{"a.yaml"}, Cmds: []string{"kubectl apply -f app.yaml"}},
			"cd application/apps/k/ && kubectl apply -f app.yaml"},
		{"appcmds joined by spaces", Application{Name: "u", Cmds: []string{"helm", "install", "x", "."}},
			"cd application/apps/u/ && helm install x ."},
		{"leading slash file", Application{Name: "k", Type: AppTypeKube, Files: []string{"/a.yaml"}},
			"kubectl apply -f application/apps/k/a.yaml"},
		{"unknown without cmds", Application{Name: "u"}, ""},
	}
	for _, tt := range tests {
		if got := tt.app.LaunchCmd(AppRoot(tt.app.Name)); got != tt.want {
			t.Errorf("%s: LaunchCmd = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestLaunchCmds(t *testing.T) {
	ext := &ImageExtension{
		Applications: []*Application{
			{Name: "a", Type: AppTypeShell, Files: []string{"a.sh"}},
			{Name: "b", Type: AppTypeHelm, Files: []string{"b"}},
			{Name: "u"},
		},
		Launch: Launch{AppNames: []string{"b", "gone", "u", "a"}},
	}
	want := []string{"helm install b application/apps/b/", "bash application/apps/a/a.sh"}
	if got := ext.LaunchCmds(); !reflect.DeepEqual(got, want) {
		t.Errorf("LaunchCmds() = %q, want %q", got, want)
	}
	ext.Launch.Cmds = []string{"kubectl apply -f manifests/"}
	if got := ext.LaunchCmds(); !reflect.DeepEqual(got, ext.Launch.Cmds) {
		t.Errorf("with cmds, LaunchCmds() = %q", got)
	}
}
