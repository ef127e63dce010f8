package clusterfile

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/drove-project/drove/protocol"
)

// fixtureDir holds sealer's own test inputs (see shared/README.md).
const fixtureDir = "../../../shared/reference/sealer-fixtures"

// fixtureFiles returns every file under fixtureDir that has a "kind:" line,
// relative to fixtureDir.
func fixtureFiles(t testing.TB) []string {
	var out []string
	err := filepath.WalkDir(fixtureDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.HasPrefix(data, []byte("kind:")) || bytes.Contains(data, []byte("\nkind:")) {
			rel, _ := filepath.Rel(fixtureDir, path)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil || len(out) == 0 {
		t.Skipf("no sealer fixtures under %s: %v", fixtureDir, err)
	}
	return out
}

// blankLines turns lines from..to (1-based, inclusive) into comments, so a
// document can be left out without moving the lines of the others.
func blankLines(data []byte, from, to int) []byte {
	lines := strings.Split(string(data), "\n")
	for i := from - 1; i < to && i < len(lines); i++ {
		lines[i] = "#"
	}
	return []byte(strings.Join(lines, "\n"))
}

// plain clears lines so plugins compare by content.
func plain(ps []Plugin) []Plugin {
	out := make([]Plugin, len(ps))
	for i, p := range ps {
		p.Line = 0
		out[i] = p
	}
	return out
}

// errorLines returns the messages of a (possibly joined) error.
func errorLines(err error) []string {
	if err == nil {
		return nil
	}
	return strings.Split(err.Error(), "\n")
}

// TestSealerFixtures parses every sealer test input that has documents and
// checks what each one means.
func TestSealerFixtures(t *testing.T) {
	shell := func(name, action, data string, line int) Plugin {
		return Plugin{Name: name, Type: PluginShell, Phases: strings.Split(action, "|"), Data: data, Line: line}
	}
	legacyPlugins := func(base int) []Plugin {
		// config_plugin_for_test.yaml and the tail of utils/test/file/Clusterfile
		// share these seven plugins; base is the first one's line.
		on := shell("clusterfile_PostInstall_PostJoin", "PostInstall|PostJoin",
			"hostname && echo \"PostInstall|PostJoin from Clusterfile on sealer-test=true\" `date`\n", base+20)
		on.On.Selector = "sealer-test=true"
		return []Plugin{
			shell("clusterfile_originally", "Originally", "hostname && echo \"$env: OriginallyShell was successfully run from Clusterfile\"\n", base),
			shell("clusterfile_prejoin", "PreJoin", "hostname && echo \"$env: PreJoin from Clusterfile was successfully run from Clusterfile\"\n", base+10),
			on,
			shell("clusterfile_postjoin", "PostJoin", "hostname && echo \"$env: PostJoin was successfully run from Clusterfile\"\n", base+31),
			shell("clusterfile_preclean", "PreClean", "hostname && echo \"$env: PreClean was successfully run from Clusterfile\"\n", base+41),
			shell("clusterfile_postclean", "PostClean", "hostname && echo \"$env: PostJoin was successfully run from Clusterfile\"\n", base+51),
			shell("clusterfile_postinstall", "PostInstall", "echo \"$env: PostInstallShell was successfully run from Clusterfile\"\n", base+61),
		}
	}
	twoConfigs := []protocol.ConfigFile{
		{Path: "etc/mysql.yaml", Data: "test\n", Strategy: StrategyOverwrite},
		{Path: "etc/redis.yaml", Data: "test\n", Strategy: StrategyOverwrite},
	}

	checks := map[string]func(t *testing.T, name string, data []byte){
		"pkg/cluster-runtime/test/test.yaml": func(t *testing.T, name string, data []byte) {
			f := mustParse(t, name, data)
			want := []Plugin{
				{Name: "pre-init-host2", Type: PluginShell, Phases: []string{HookPreInitHost}, On: Target{Roles: []string{"master"}},
					Data: "echo \"i am pre-init-host2 from rootfs\"\n", Line: 16},
				{Name: "post-init-host2", Type: PluginShell, Phases: []string{HookPostInitHost}, On: Target{Roles: []string{"master"}},
					Data: "echo \"i am post-init-host2 from rootfs\"\n", Line: 28},
			}
			if !reflect.DeepEqual(f.Plugins, want) {
				t.Errorf("plugins:\n got %+v\nwant %+v", f.Plugins, want)
			}
			if f.Cluster != nil || len(f.Configs) != 0 || len(f.Kubeadm) != 0 || len(f.Warnings) != 0 {
				t.Errorf("unexpected content: %+v", f)
			}
		},
		"test/suites/apply/fixtures/config_plugin_for_test.yaml": func(t *testing.T, name string, data []byte) {
			f := mustParse(t, name, data)
			if !reflect.DeepEqual(f.Configs, twoConfigs) {
				t.Errorf("configs:\n got %+v\nwant %+v", f.Configs, twoConfigs)
			}
			if want := legacyPlugins(33); !reflect.DeepEqual(f.Plugins, want) {
				t.Errorf("plugins:\n got %+v\nwant %+v", f.Plugins, want)
			}
			if f.Cluster != nil || len(f.Warnings) != 0 {
				t.Errorf("unexpected content: cluster %+v, warnings %v", f.Cluster, f.Warnings)
			}
		},
		"test/suites/apply/fixtures/cluster_file_for_test.yaml": func(t *testing.T, name string, data []byte) {
			// provider CONTAINER with machine counts: sealer's e2e cluster of
			// Docker containers.
			_, err := Parse(name, data)
			want := []string{name + ":42: spec.provider: not supported: cloud machines (provider CONTAINER): drove installs onto machines that already exist; list their IP addresses in the Clusterfile's hosts"}
			if !errors.Is(err, ErrUnsupported) || !reflect.DeepEqual(errorLines(err), want) {
				t.Errorf("got %v, want %q", err, want)
			}
			// The same Cluster on listed machines is read in full.
			edited := bytes.Replace(data, []byte("provider: CONTAINER"), []byte("provider: BAREMETAL"), 1)
			edited = bytes.Replace(edited, []byte("  nodes:\n"), []byte("  nodes:\n    ipList: [10.0.0.3]\n"), 1)
			edited = bytes.Replace(edited, []byte("  masters:\n"), []byte("  masters:\n    ipList: [10.0.0.2]\n"), 1)
			f := mustParse(t, name, edited)
			c := f.Cluster
			if c.Name != "my-test-cluster" || c.Image != "docker.io/sealerio/kubernetes:v1-22-15-sealerio-2" {
				t.Errorf("name %q image %q", c.Name, c.Image)
			}
			if got := c.Masters(); !reflect.DeepEqual(got, []string{"10.0.0.2"}) {
				t.Errorf("masters %v", got)
			}
			if got := c.Nodes(); !reflect.DeepEqual(got, []string{"10.0.0.3"}) {
				t.Errorf("nodes %v", got)
			}
			wantEnv := []string{"PodCIDR=100.64.0.0/10", "SvcCIDR=10.96.0.0/22", "CertSANs=aliyun-inc.com", "CertSANs=10.0.0.2"}
			if !reflect.DeepEqual(c.Env, wantEnv) {
				t.Errorf("env %q, want %q", c.Env, wantEnv)
			}
			if want := (SSH{User: "root", Passwd: "Sealer123", Port: 22}); c.SSH != want {
				t.Errorf("ssh %+v", c.SSH)
			}
		},
		"utils/test/file/Clusterfile": func(t *testing.T, name string, data []byte) {
			// Two Cluster documents, both on Aliyun machines.
			_, err := Parse(name, data)
			want := []string{
				name + ":47: spec.provider: not supported: cloud machines (provider ALI_CLOUD): drove installs onto machines that already exist; list their IP addresses in the Clusterfile's hosts",
				name + ":153: kind: a second Cluster document (the first starts at line 42): a Clusterfile describes one cluster",
			}
			if !errors.Is(err, ErrUnsupported) || !reflect.DeepEqual(errorLines(err), want) {
				t.Errorf("got %v\nwant %q", err, want)
			}
			// Every other document is read.
			f := mustParse(t, name, blankLines(blankLines(data, 42, 63), 151, 184))
			if f.Cluster != nil {
				t.Errorf("cluster %+v", f.Cluster)
			}
			if !reflect.DeepEqual(f.Configs, twoConfigs) {
				t.Errorf("configs %+v", f.Configs)
			}
			plugins := append(legacyPlugins(204),
				Plugin{Name: "LABEL", Type: PluginLabel, Phases: []string{PhasePreGuest}, Data: "172.17.102.186 ssd=true\n", Line: 275},
				Plugin{Name: "HOSTNAME", Type: PluginHostname, Phases: []string{PhasePreInit}, Data: "172.17.102.186 master-0", Line: 285},
			)
			if !reflect.DeepEqual(f.Plugins, plugins) {
				t.Errorf("plugins:\n got %+v\nwant %+v", f.Plugins, plugins)
			}
			var kinds []string
			for _, d := range f.Kubeadm {
				kinds = append(kinds, d.APIVersion+" "+d.Kind+" "+strconv.Itoa(d.Line))
			}
			wantKinds := []string{
				"sealer.io/v2 KubeadmConfig 16",
				"kubelet.config.k8s.io/v1beta1 KubeletConfiguration 65",
				"kubeadm.k8s.io/v1beta3 ClusterConfiguration 134",
				"kubeadm.k8s.io/v1beta3 InitConfiguration 143",
			}
			if !reflect.DeepEqual(kinds, wantKinds) {
				t.Errorf("kubeadm documents %q, want %q", kinds, wantKinds)
			}
			if d := f.Kubeadm[2].Data; !bytes.HasPrefix(d, []byte("apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\nnetworking:\n")) ||
				!bytes.HasSuffix(d, []byte("    - default.raw.config\n")) {
				t.Errorf("ClusterConfiguration text %q", d)
			}
			if !bytes.Contains(f.Kubeadm[0].Data, []byte("nodeStatusUpdateFrequency: 99s")) {
				t.Errorf("KubeadmConfig text %q", f.Kubeadm[0].Data)
			}
		},
		"utils/test/file/v1Clusterfile": func(t *testing.T, name string, data []byte) {
			_, err := Parse(name, data)
			want := []string{name + ":64: spec.provider: not supported: cloud machines (provider ALI_CLOUD): drove installs onto machines that already exist; list their IP addresses in the Clusterfile's hosts"}
			if !errors.Is(err, ErrUnsupported) || !reflect.DeepEqual(errorLines(err), want) {
				t.Errorf("got %v\nwant %q", err, want)
			}
			// On machines that exist the ipLists become hosts.
			f := mustParse(t, name, bytes.Replace(data, []byte("ALI_CLOUD"), []byte("BAREMETAL"), 1))
			c := f.Cluster
			wantHosts := []Host{
				{IPs: []string{"172.16.0.194", "172.16.0.196", "172.16.0.195"}, Roles: []string{RoleMaster}, Line: 43},
				{IPs: []string{"172.16.0.198", "172.16.0.199", "172.16.0.197"}, Roles: []string{RoleNode}, Line: 59},
			}
			if !reflect.DeepEqual(c.Hosts, wantHosts) {
				t.Errorf("hosts:\n got %+v\nwant %+v", c.Hosts, wantHosts)
			}
			wantEnv := []string{"PodCIDR=100.64.0.0/10", "SvcCIDR=10.96.0.0/22", "CertSANs=aliyun-inc.com", "CertSANs=10.0.0.2"}
			if c.Name != "my-cluster" || c.Image != "kubernetes:v1.19.9" || !reflect.DeepEqual(c.Env, wantEnv) {
				t.Errorf("name %q image %q env %q", c.Name, c.Image, c.Env)
			}
			if want := (SSH{User: "root", Passwd: "Seadent123", Pk: "xxx", PkPasswd: "xxx", Port: 22}); c.SSH != want {
				t.Errorf("ssh %+v", c.SSH)
			}
			// Its license header uses "//", which is not YAML.
			wantWarn := []string{name + `:1: "//" comment lines are not YAML; read as comments`}
			if got := warningLines(f); !reflect.DeepEqual(got, wantWarn) {
				t.Errorf("warnings %q, want %q", got, wantWarn)
			}
		},
		"pkg/env/test/template/kubeadm.yaml": func(t *testing.T, name string, data []byte) {
			f := mustParse(t, name, data)
			if len(f.Kubeadm) != 1 || f.Kubeadm[0].Kind != "ClusterConfiguration" || f.Kubeadm[0].Line != 15 ||
				!bytes.Contains(f.Kubeadm[0].Data, []byte("serviceSubnet: 10.96.0.0/16")) {
				t.Errorf("got %+v", f.Kubeadm)
			}
		},
		"pkg/env/test/template/kubeadm.yaml.tmpl": func(t *testing.T, name string, data []byte) {
			// Template actions parse as YAML flow mappings; the text is kept,
			// given the final newline it lacks.
			f := mustParse(t, name, data)
			if len(f.Kubeadm) != 1 || f.Kubeadm[0].Line != 1 || !bytes.Equal(f.Kubeadm[0].Data, append(data, '\n')) {
				t.Errorf("got %+v", f.Kubeadm)
			}
		},
	}
	// The build fixtures' app manifests are Kubernetes objects for the
	// cluster, not Clusterfile documents.
	manifests := map[string]string{
		"test/suites/build/fixtures/build_with_appcmds/yamlcontext/a.yaml":    "Namespace",
		"test/suites/build/fixtures/build_with_appcmds/yamlcontext/b.yaml":    "Namespace",
		"test/suites/build/fixtures/build_with_appcmds/yamlcontext/c.yaml":    "Namespace",
		"test/suites/build/fixtures/build_with_appcmds/mixedcontext/app.yaml": "Deployment",
		"test/suites/build/fixtures/build_with_launch/app.yaml":               "Deployment",
		"test/suites/build/fixtures/build_with_multi_arch/app.yaml":           "Deployment",
		"test/suites/build/fixtures/build_with_cmds/app.yaml":                 "Deployment",
	}
	for _, rel := range fixtureFiles(t) {
		t.Run(rel, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(fixtureDir, rel))
			if err != nil {
				t.Fatal(err)
			}
			if kind, ok := manifests[rel]; ok {
				_, err := Parse(rel, data)
				if !errors.Is(err, ErrUnknownKind) || !strings.Contains(err.Error(), `kind: "`+kind+`" is not a kind drove reads`) {
					t.Errorf("got %v", err)
				}
				return
			}
			check, ok := checks[rel]
			if !ok {
				t.Fatalf("no expectations for fixture %s", rel)
			}
			check(t, rel, data)
		})
	}
}

func mustParse(t *testing.T, name string, data []byte) *File {
	t.Helper()
	f, err := Parse(name, data)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return f
}

func warningLines(f *File) []string {
	var out []string
	for _, w := range f.Warnings {
		out = append(out, w.String())
	}
	return out
}
