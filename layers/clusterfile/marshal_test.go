package clusterfile

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/drove-project/drove/protocol"
)

// clearLines zeroes what depends on where things were written: lines,
// warnings and the file name. It changes f and returns it.
func clearLines(f *File) *File {
	f.Name, f.Warnings = "", nil
	if c := f.Cluster; c != nil {
		c.Line = 0
		for i := range c.Hosts {
			c.Hosts[i].Line = 0
		}
	}
	if f.Application != nil {
		f.Application.Line = 0
	}
	for i := range f.Plugins {
		f.Plugins[i].Line = 0
	}
	for i := range f.Kubeadm {
		f.Kubeadm[i].Line = 0
	}
	return f
}

// roundTrip checks that Marshal writes what Parse reads back to the same
// model, and that marshalling again gives the same bytes.
func roundTrip(t *testing.T, f *File) []byte {
	t.Helper()
	data, err := f.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse("marshalled", data)
	if err != nil {
		t.Fatalf("Parse(Marshal()): %v\n%s", err, data)
	}
	if len(back.Warnings) != 0 {
		t.Errorf("warnings reading marshalled output: %v", back.Warnings)
	}
	again, err := back.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, data) {
		t.Errorf("second Marshal differs:\n%s\n---- first:\n%s", again, data)
	}
	want := clearLines(f)
	if got := clearLines(back); !reflect.DeepEqual(got, want) {
		t.Errorf("round trip changed the model:\n got %+v\nwant %+v\n%s", got, want, data)
	}
	return data
}

func TestMarshalRoundTrip(t *testing.T) {
	f, err := Load("testdata/full_v2.yaml")
	if err != nil {
		t.Fatal(err)
	}
	data := roundTrip(t, f)
	for _, want := range []string{
		"apiVersion: sealer.io/v2\nkind: Cluster\nmetadata:\n  name: prod\nspec:\n",
		"    port: \"2222\"\n",
		"      ha: false\n      insecure: true\n",
		"---\napiVersion: sealer.io/v2\nkind: Application\n",
		"apiVersion: sealer.io/v1\nkind: Config\nmetadata:\n  name: config-1\n",
		"  process: value|toSecret\n",
		"  action: pre-init-host|post-init-host\n  scope: master|db\n",
		"---\napiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nmaxPods: 200\n",
	} {
		if !strings.Contains(string(data), want) {
			t.Errorf("output lacks %q:\n%s", want, data)
		}
	}
	// Documents keep the canonical order: Cluster first, raw docs last.
	if !strings.HasPrefix(string(data), "apiVersion: sealer.io/v2\nkind: Cluster\n") {
		t.Errorf("output does not start with the Cluster:\n%s", data)
	}
}

// TestMarshalFixtures round-trips every sealer fixture that Parse accepts
// (cloud clusters made baremetal), so a v1 Cluster comes back as v2.
func TestMarshalFixtures(t *testing.T) {
	inputs := map[string]func([]byte) []byte{
		"pkg/cluster-runtime/test/test.yaml":                     nil,
		"test/suites/apply/fixtures/config_plugin_for_test.yaml": nil,
		"pkg/env/test/template/kubeadm.yaml":                     nil,
		"utils/test/file/Clusterfile": func(b []byte) []byte {
			return blankLines(blankLines(b, 42, 63), 151, 184)
		},
		"utils/test/file/v1Clusterfile": func(b []byte) []byte {
			return bytes.Replace(b, []byte("ALI_CLOUD"), []byte("BAREMETAL"), 1)
		},
	}
	for rel, edit := range inputs {
		t.Run(rel, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(fixtureDir, rel))
			if err != nil {
				t.Skip(err)
			}
			if edit != nil {
				data = edit(data)
			}
			out := roundTrip(t, mustParse(t, rel, data))
			if strings.Contains(string(out), "v1alpha1") {
				t.Errorf("v1 apiVersion in canonical output:\n%s", out)
			}
		})
	}
}

// TestMarshalDeterministic checks that labels and other maps come out in
// one order, so equal models give equal bytes.
func TestMarshalDeterministic(t *testing.T) {
	in := v2 + "  hosts:\n  - ips: [10.0.0.1]\n    roles: [master]\n    labels: {z: '1', a: '2', m: '3', b: '4', y: '5'}\n"
	var first []byte
	for i := range 20 {
		out, err := mustParse(t, "d", []byte(in)).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = out
		} else if !bytes.Equal(out, first) {
			t.Fatalf("run %d differs:\n%s\n----\n%s", i, out, first)
		}
	}
	if !strings.Contains(string(first), "a: \"2\"\n        b: \"4\"\n        m: \"3\"\n") {
		t.Errorf("labels not sorted:\n%s", first)
	}
}

// TestMarshalEmpty checks that an empty model marshals to nothing and a
// Cluster built from flags to a Clusterfile.
func TestMarshalEmpty(t *testing.T) {
	out, err := (&File{}).Marshal()
	if err != nil || len(out) != 0 {
		t.Errorf("got %q, %v", out, err)
	}
	f := &File{Kubeadm: []RawDoc{{APIVersion: "kubeadm.k8s.io/v1beta3", Kind: "InitConfiguration", Data: []byte("apiVersion: kubeadm.k8s.io/v1beta3\nkind: InitConfiguration")}}}
	out, err = f.Marshal()
	if err != nil || string(out) != "apiVersion: kubeadm.k8s.io/v1beta3\nkind: InitConfiguration\n" {
		t.Errorf("got %q, %v", out, err)
	}
}

// TestMarshalQuoting round-trips values that YAML must quote or escape.
func TestMarshalQuoting(t *testing.T) {
	odd := []string{
		"", " lead", "trail ", "a: b", "#x", "- x", "*ref", "&anchor", "!tag", "'q'", `"dq"`,
		"true", "on", "null", "~", "0x1F", "1e3", "12", "multi\nline\n", "trail \nspaces \n",
		"---\n...\n", "--- x\n---", "tab\there", "cr\r\nlf", "ünïcödé", "\\back", "{a: 1}", "[1]",
		strings.Repeat("long words ", 30) + "\n---\nend",
	}
	f := &File{
		Cluster: &Cluster{
			Name: "q", Image: "reg:5000/img:tag", Env: nil, Cmds: odd, CmdArgs: odd, AppNames: odd,
			Hosts:    []Host{{IPs: []string{"fd00::1"}, Roles: []string{"master"}, Labels: map[string]string{"a": "on", "b": "12"}}},
			SSH:      SSH{User: "root", Passwd: ": #x", Port: 22},
			Registry: Registry{Local: &LocalRegistry{Domain: "sea.hub", Port: 5000, HA: true}},
		},
		Application: &Application{Name: "a", Cmds: odd, Configs: []AppConfig{{Name: "x", Files: []AppFile{{Path: "p", Strategy: StrategyMerge, Data: odd[len(odd)-1]}}}}},
	}
	for _, s := range odd {
		f.Cluster.Env = append(f.Cluster.Env, "K="+s)
		f.Configs = append(f.Configs, protocol.ConfigFile{Path: "etc/x", Data: s, Strategy: StrategyOverwrite})
		f.Plugins = append(f.Plugins, Plugin{Name: "p", Type: PluginShell, Phases: []string{HookPostInstall}, Data: s})
	}
	roundTrip(t, f)
}
