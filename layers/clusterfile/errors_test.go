package clusterfile

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// v2 starts a sealer.io/v2 Cluster whose spec fields begin on line 4.
const v2 = "apiVersion: sealer.io/v2\nkind: Cluster\nspec:\n"

// master is a valid host entry for spec.hosts.
const master = "  - ips: [10.0.0.1]\n    roles: [master]\n"

// TestParseErrors checks the exact message, line, field and sentinel of
// each error Parse reports for bad input.
func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string // error lines, after "cluster.yaml:"
		is   error
	}{
		{
			name: "bad IP",
			in: `# A cluster with a typo in a node address.
apiVersion: sealer.io/v2
kind: Cluster
metadata:
  name: typo
spec:
  image: kubernetes:v1.22
  ssh:
    passwd: x
  hosts:
    - ips: [10.0.0.1]
      roles: [master]
    - ips:
        - 10.0.0.x
      roles: [node]
`,
			want: []string{`14: spec.hosts[1].ips[0]: "10.0.0.x" is not an IP address`},
			is:   ErrInvalid,
		},
		{
			name: "range end not a full address",
			in:   v2 + "  hosts:\n  - ips: [10.0.0.1-9]\n    roles: [master]\n",
			want: []string{`5: spec.hosts[0].ips[0]: "10.0.0.1-9": the range end must be a full address, e.g. 10.0.0.9`},
			is:   ErrInvalid,
		},
		{
			name: "range too large",
			in:   v2 + "  hosts:\n  - ips: [10.0.0.0-10.1.0.0]\n    roles: [master]\n",
			want: []string{`5: spec.hosts[0].ips[0]: "10.0.0.0-10.1.0.0": the range has 65537 addresses; at most 65536`},
			is:   ErrInvalid,
		},
		{
			name: "same host in two entries",
			in:   v2 + "  hosts:\n" + master + "  - ips:\n    - 10.0.0.2\n    - 10.0.0.1\n    roles: [node]\n",
			want: []string{`9: spec.hosts[1].ips[1]: 10.0.0.1 is listed twice (first at line 5, spec.hosts[0].ips[0])`},
			is:   ErrInvalid,
		},
		{
			name: "same host inside a range",
			in:   v2 + "  hosts:\n  - ips: [10.0.0.1, 10.0.0.0-10.0.0.2]\n    roles: [master]\n",
			want: []string{`5: spec.hosts[0].ips[1]: 10.0.0.1 is listed twice (first at line 5, spec.hosts[0].ips[0])`},
			is:   ErrInvalid,
		},
		{
			name: "v1 master also a node",
			in: "apiVersion: sealer.aliyun.com/v1alpha1\nkind: Cluster\nspec:\n  masters:\n    ipList: [10.0.0.1]\n" +
				"  nodes:\n    ipList:\n    - 10.0.0.1\n",
			want: []string{`8: spec.nodes.ipList[0]: 10.0.0.1 is listed twice (first at line 5, spec.masters.ipList[0])`},
			is:   ErrInvalid,
		},
		{
			name: "no master",
			in:   v2 + "  image: k8s\n  hosts:\n  - ips: [10.0.0.1]\n    roles: [node]\n",
			want: []string{`6: spec.hosts: no host has role master: a cluster needs at least one`},
			is:   ErrInvalid,
		},
		{
			name: "no hosts at all",
			in:   v2 + "  image: k8s\n",
			want: []string{`4: spec.hosts: no host has role master: a cluster needs at least one`},
			is:   ErrInvalid,
		},
		{
			name: "v1 without masters",
			in:   "apiVersion: sealer.io/v1\nkind: Cluster\nspec:\n  image: k8s\n",
			want: []string{`4: spec.masters.ipList: no host has role master: a cluster needs at least one`},
			is:   ErrInvalid,
		},
		{
			name: "two clusters",
			in:   v2 + "  hosts:\n" + master + "---\n" + v2 + "  hosts:\n" + master,
			want: []string{`9: kind: a second Cluster document (the first starts at line 1): a Clusterfile describes one cluster`},
			is:   ErrInvalid,
		},
		{
			name: "mixed IP families",
			in:   v2 + "  hosts:\n" + master + "  - ips: [fd00::2]\n    roles: [node]\n",
			want: []string{`7: spec.hosts[1].ips[0]: fd00::2 and 10.0.0.1 (at line 5, spec.hosts[0].ips[0]) are of different IP families: all hosts must be IPv4, or all IPv6`},
			is:   ErrInvalid,
		},
		{
			name: "host without roles",
			in:   v2 + "  hosts:\n" + master + "  - ips: [10.0.0.2]\n",
			want: []string{`7: spec.hosts[1].roles: missing: give master, node or another role`},
			is:   ErrInvalid,
		},
		{
			name: "host without ips",
			in:   v2 + "  hosts:\n" + master + "  - roles: [node]\n",
			want: []string{`7: spec.hosts[1].ips: missing: list the host's IP addresses`},
			is:   ErrInvalid,
		},
		{
			name: "bad role name",
			in:   v2 + "  hosts:\n  - ips: [10.0.0.1]\n    roles: [master, 'a b']\n",
			want: []string{`6: spec.hosts[0].roles[1]: "a b" is not a role name`},
			is:   ErrInvalid,
		},
		{
			name: "unknown kind",
			in:   "apiVersion: apps/v1\nkind: Deployment\n",
			want: []string{`2: kind: "Deployment" is not a kind drove reads: want Cluster, Config, Plugin, Application, KubeadmConfig, or a kubeadm.k8s.io, kubelet.config.k8s.io or kubeproxy.config.k8s.io document`},
			is:   ErrUnknownKind,
		},
		{
			name: "unknown Cluster apiVersion",
			in:   "apiVersion: sealer.io/v3\nkind: Cluster\n",
			want: []string{`1: apiVersion: "sealer.io/v3" is not an apiVersion of kind Cluster: want sealer.io/v2, sealer.cloud/v2, sealer.aliyun.com/v1alpha1, zlink.aliyun.com/v1alpha1, sealer.io/v1, sealer.io/v1alpha1`},
			is:   ErrUnknownKind,
		},
		{
			name: "unknown Config group",
			in:   "kind: Config\napiVersion: example.com/v1\nspec: {path: a, data: b}\n",
			want: []string{`2: apiVersion: "example.com/v1" is not an apiVersion of kind Config: want sealer.io/v1 (or another version of sealer.io, sealer.cloud, sealer.aliyun.com, zlink.aliyun.com, sealer.com)`},
			is:   ErrUnknownKind,
		},
		{
			name: "Application outside sealer.io/v2",
			in:   "apiVersion: sealer.io/v1\nkind: Application\n",
			want: []string{`1: apiVersion: "sealer.io/v1" is not an apiVersion of kind Application: want sealer.io/v2`},
			is:   ErrUnknownKind,
		},
		{
			name: "missing apiVersion",
			in:   "\n\nkind: Cluster\n",
			want: []string{`3: apiVersion: missing`},
			is:   ErrInvalid,
		},
		{
			name: "missing kind",
			in:   "apiVersion: sealer.io/v2\nspec: {}\n",
			want: []string{`1: kind: missing`},
			is:   ErrInvalid,
		},
		{
			name: "metadata is a list",
			in:   v2 + "  hosts:\n" + master + "metadata: [a]\n",
			want: []string{`7: metadata: want a mapping, got a list`},
			is:   ErrInvalid,
		},
		{
			name: "document is a list",
			in:   "---\n- a\n- b\n",
			want: []string{`2: want a mapping with apiVersion and kind, got a list`},
			is:   ErrInvalid,
		},
		{
			name: "yaml syntax",
			in:   v2 + "  image: a\n   hosts: b\n",
			want: []string{`5: mapping values are not allowed in this context`},
			is:   ErrSyntax,
		},
		{
			name: "yaml syntax in a later document",
			in:   "# x\n---\n" + v2 + "  hosts:\n" + master + "---\napiVersion: sealer.io/v1\nkind: Config\nspec:\n  path: [a\n",
			// yaml.v3 names the line before the unclosed list.
			want: []string{`12: did not find expected ',' or ']'`},
			is:   ErrSyntax,
		},
		{
			name: "duplicate key",
			in:   v2 + "  image: a\n  image: b\n",
			want: []string{`5: spec.image: duplicate key (first at line 4)`},
			is:   ErrInvalid,
		},
		{
			name: "env is a mapping",
			in:   v2 + "  hosts:\n" + master + "  env:\n    A: b\n",
			want: []string{`8: spec.env: want a list, got a mapping`},
			is:   ErrInvalid,
		},
		{
			name: "env entry without =",
			in:   v2 + "  hosts:\n" + master + "  env: [A=1, JUSTAKEY]\n",
			want: []string{`7: spec.env[1]: "JUSTAKEY" is not KEY=VALUE`},
			is:   ErrInvalid,
		},
		{
			name: "image is a list",
			in:   v2 + "  hosts:\n" + master + "  image: [a]\n",
			want: []string{`7: spec.image: want a string, got a list`},
			is:   ErrInvalid,
		},
		{
			name: "ssh port",
			in:   v2 + "  hosts:\n" + master + "    ssh: {port: 70000}\n",
			want: []string{`7: spec.hosts[0].ssh.port: "70000" is not a number from 1 to 65535`},
			is:   ErrInvalid,
		},
		{
			name: "ssh encrypted",
			in:   v2 + "  hosts:\n" + master + "  ssh:\n    encrypted: maybe\n",
			want: []string{`8: spec.ssh.encrypted: "maybe" is not true or false`},
			is:   ErrInvalid,
		},
		{
			name: "runtime",
			in:   v2 + "  runtime: rke2\n  hosts:\n" + master,
			want: []string{`4: spec.runtime: "rke2" is not a runtime: want kubernetes, k3s, k0s or plain (or nothing, to take the image's)`},
			is:   ErrInvalid,
		},
		{
			name: "container runtime",
			in:   v2 + "  hosts:\n" + master + "  containerRuntime:\n    type: ../docker\n",
			want: []string{`8: spec.containerRuntime.type: "../docker" is not a container runtime name (docker, containerd, or the name of a custom one)`},
			is:   ErrInvalid,
		},
		{
			name: "dataRoot relative",
			in:   v2 + "  hosts:\n" + master + "  dataRoot: var/lib\n",
			want: []string{`7: spec.dataRoot: "var/lib" is not an absolute path`},
			is:   ErrInvalid,
		},
		{
			name: "v2 cloud provider",
			in:   v2 + "  provider: ALI_CLOUD\n  hosts:\n  - count: 3\n    role: [master]\n",
			want: []string{`4: spec.provider: not supported: cloud machines (provider ALI_CLOUD): drove installs onto machines that already exist; list their IP addresses in the Clusterfile's hosts`},
			is:   ErrUnsupported,
		},
		{
			name: "v2 host count",
			in:   v2 + "  hosts:\n" + master + "  - count: 2\n    roles: [node]\n",
			want: []string{`7: spec.hosts[1].count: not supported: cloud machines (spec.hosts[1].count 2 without ips): drove installs onto machines that already exist; list their IP addresses in the Clusterfile's hosts`},
			is:   ErrUnsupported,
		},
		{
			name: "v1 counts",
			in:   "apiVersion: sealer.io/v1\nkind: Cluster\nspec:\n  provider: BAREMETAL\n  masters:\n    count: \"3\"\n    cpu: 4\n",
			want: []string{`6: spec.masters.count: not supported: cloud machines (spec.masters.count 3 without ipList): drove installs onto machines that already exist; list their IP addresses in the Clusterfile's hosts`},
			is:   ErrUnsupported,
		},
		{
			name: "unknown provider",
			in:   "apiVersion: sealer.io/v1\nkind: Cluster\nspec:\n  provider: AWS\n  masters:\n    ipList: [10.0.0.1]\n",
			want: []string{`4: spec.provider: "AWS" is not a provider: want BAREMETAL (ALI_CLOUD and CONTAINER are sealer's cloud providers)`},
			is:   ErrInvalid,
		},
		{
			name: "v1 podCIDR",
			in:   "apiVersion: sealer.io/v1\nkind: Cluster\nspec:\n  network:\n    podCIDR: 100.64.0.0\n  masters:\n    ipList: [10.0.0.1]\n",
			want: []string{`5: spec.network.podCIDR: "100.64.0.0" is not a CIDR such as 100.64.0.0/10`},
			is:   ErrInvalid,
		},
		{
			name: "host alias",
			in:   v2 + "  hosts:\n" + master + "  hostAliases:\n  - ip: gitlab\n    hostnames: [gitlab]\n  - ip: 10.0.0.9\n",
			want: []string{
				`8: spec.hostAliases[0].ip: "gitlab" is not an IP address`,
				`10: spec.hostAliases[1].hostnames: missing: give at least one host name`,
			},
			is: ErrInvalid,
		},
		{
			name: "labels and taints",
			in: v2 + "  hosts:\n" + master + "    labels:\n      'bad key!': x\n" +
				"    taints: [a=b:Sometimes]\n",
			want: []string{
				`8: spec.hosts[0].labels.bad key!: "bad key!" is not a label key: the name must be at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit`,
				`9: spec.hosts[0].taints[0]: "a=b:Sometimes" is not a taint (want key=value:Effect, key:Effect, or key:Effect- or key- to remove): the effect "Sometimes" is not NoSchedule, PreferNoSchedule or NoExecute`,
			},
			is: ErrInvalid,
		},
		{
			name: "external registry without domain",
			in:   v2 + "  hosts:\n" + master + "  registry:\n    externalRegistry:\n      port: 443\n",
			want: []string{`9: spec.registry.externalRegistry.domain: missing: an external registry needs a domain`},
			is:   ErrInvalid,
		},
		{
			name: "registry domain with scheme",
			in:   v2 + "  hosts:\n" + master + "  registry:\n    localRegistry:\n      domain: https://hub\n",
			want: []string{`9: spec.registry.localRegistry.domain: "https://hub" is not a domain name or address (no scheme, port or path)`},
			is:   ErrInvalid,
		},
		{
			name: "merge key of a scalar",
			in:   v2 + "  hosts:\n" + master + "  ssh:\n    <<: root\n",
			want: []string{`8: spec.ssh.<<: want a mapping or a list of mappings to merge, got a string`},
			is:   ErrInvalid,
		},
		{
			name: "config without path and data",
			in:   "apiVersion: sealer.io/v1\nkind: Config\nmetadata:\n  name: c\nspec:\n  strategy: merge\n",
			want: []string{`1: spec.path: missing: the file to write, relative to the image root`, `1: spec.data: missing: the file's content`},
			is:   ErrInvalid,
		},
		{
			name: "config path out of the root",
			in:   "apiVersion: sealer.io/v1\nkind: Config\nspec:\n  path: etc/../../x\n  data: y\n",
			want: []string{`4: spec.path: "etc/../../x" leads out of the image root`},
			is:   ErrInvalid,
		},
		{
			name: "config strategy and process",
			in:   "apiVersion: sealer.io/v1\nkind: Config\nspec:\n  path: a\n  data: b\n  strategy: replace\n  process: value|toYaml\n",
			want: []string{
				`6: spec.strategy: "replace" is not a strategy: want overwrite or merge`,
				`7: spec.process: "toYaml" is not a processor: want value, toJson, toBase64 or toSecret, joined with |`,
			},
			is: ErrInvalid,
		},
		{
			name: "plugin phase",
			in:   "apiVersion: sealer.io/v1\nkind: Plugin\nspec:\n  type: SHELL\n  action: PreInit|post-install|PostInit\n",
			want: []string{`5: spec.action: "PostInit" is not a phase: want one of Originally, PreInit, PreInstall, PreGuest, PostInstall, PreJoin, PostJoin, PreClean, PostClean (plugins) or pre-install, post-install, pre-uninstall, post-uninstall, pre-scaleup, post-scaleup, upgrade, rollback, pre-init-host, post-init-host, pre-clean-host, post-clean-host, upgrade-host (hooks), joined with |`},
			is:   ErrInvalid,
		},
		{
			name: "plugin type",
			in:   "apiVersion: sealer.io/v1\nkind: Plugin\nspec:\n  type: GO\n  action: PreInit\n",
			want: []string{`4: spec.type: "GO" is not a plugin type: want SHELL, HOSTNAME, LABEL, TAINT, CLUSTERCHECK or ETCD`},
			is:   ErrInvalid,
		},
		{
			name: "plugin without type and action",
			in:   "apiVersion: sealer.io/v1\nkind: Plugin\nspec:\n  data: echo\n",
			want: []string{`1: spec.type: missing: want SHELL, HOSTNAME, LABEL, TAINT, CLUSTERCHECK or ETCD`, `1: spec.action: missing: the phase(s) to run in, e.g. PreInit or pre-install`},
			is:   ErrInvalid,
		},
		{
			name: "Gen-1 type in a hook phase",
			in:   "apiVersion: sealer.io/v1\nkind: Plugin\nspec:\n  type: HOSTNAME\n  action: pre-init-host\n",
			want: []string{`5: spec.action: HOSTNAME plugins run in the plugin phases (Originally, PreInit, PreInstall, PreGuest, PostInstall, PreJoin, PostJoin, PreClean, PostClean); hook phases such as pre-init-host take type SHELL`},
			is:   ErrInvalid,
		},
		{
			name: "on and scope",
			in:   "apiVersion: sealer.io/v1\nkind: Plugin\nspec:\n  type: SHELL\n  action: PreInit\n  on: master\n  scope: node\n",
			want: []string{`7: spec.scope: give on (plugins) or scope (hooks), not both`},
			is:   ErrInvalid,
		},
		{
			name: "bad on",
			in:   "apiVersion: sealer.io/v1\nkind: Plugin\nspec:\n  type: SHELL\n  action: PreInit\n  'on': masters\n",
			want: []string{`6: spec.on: "masters" is not a role (master, node, master0), an IP list or range, or a label selector ("masters" is not an IP address)`},
			is:   ErrInvalid,
		},
		{
			name: "bad scope",
			in:   "apiVersion: sealer.io/v1\nkind: Plugin\nspec:\n  type: SHELL\n  action: pre-init-host\n  scope: master||node\n",
			want: []string{`6: spec.scope: "" is not a role: want role names joined with |, e.g. master|node`},
			is:   ErrInvalid,
		},
		{
			name: "second application",
			in:   "apiVersion: sealer.io/v2\nkind: Application\n---\napiVersion: sealer.io/v2\nkind: Application\n",
			want: []string{`5: kind: a second Application document (the first starts at line 1)`},
			is:   ErrInvalid,
		},
		{
			name: "application config without name",
			in:   "apiVersion: sealer.io/v2\nkind: Application\nspec:\n  configs:\n  - files:\n    - data: x\n",
			want: []string{`5: spec.configs[0].name: missing: the app to configure`, `6: spec.configs[0].files[0].path: missing: the file to change, relative to the app's directory`},
			is:   ErrInvalid,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse("cluster.yaml", []byte(tt.in))
			if err == nil {
				t.Fatalf("no error; got %+v", f)
			}
			var want []string
			for _, w := range tt.want {
				want = append(want, "cluster.yaml:"+w)
			}
			if got := errorLines(err); !reflect.DeepEqual(got, want) {
				t.Errorf("error:\n got %q\nwant %q", got, want)
			}
			if !errors.Is(err, tt.is) {
				t.Errorf("errors.Is(%v, %v) is false", err, tt.is)
			}
			var e *Error
			if !errors.As(err, &e) || e.File != "cluster.yaml" || e.Line == 0 {
				t.Errorf("not an *Error with file and line: %#v", err)
			}
			if f != nil {
				t.Errorf("File %+v returned with an error", f)
			}
		})
	}
}

func TestErrorFormat(t *testing.T) {
	tests := []struct {
		e    Error
		want string
	}{
		{Error{File: "c.yaml", Line: 3, Field: "spec.image", Msg: "bad"}, "c.yaml:3: spec.image: bad"},
		{Error{File: "c.yaml", Line: 3, Msg: "bad"}, "c.yaml:3: bad"},
		{Error{File: "c.yaml", Msg: "bad"}, "c.yaml: bad"},
		{Error{Field: "--masters", Msg: "bad"}, "--masters: bad"},
		{Error{Msg: "bad"}, "bad"},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("%#v: got %q, want %q", tt.e, got, tt.want)
		}
	}
}

func TestTooLarge(t *testing.T) {
	_, err := Parse("big.yaml", make([]byte, MaxSize+1))
	if !errors.Is(err, ErrTooLarge) || err.Error() != "big.yaml: larger than 8388608 bytes" {
		t.Errorf("got %v", err)
	}
}

// TestAliasBomb checks that documents expanding aliases without bound are
// refused instead of walked.
func TestAliasBomb(t *testing.T) {
	// 2000 uses of a host whose labels are 1000 entries: 4 million nodes.
	var b strings.Builder
	b.WriteString(v2 + "  x: &l\n")
	for i := range 1000 {
		fmt.Fprintf(&b, "    k%d: v\n", i)
	}
	b.WriteString("  y: &h {ips: [10.0.0.1], roles: [master], labels: *l}\n  hosts:\n")
	for range 2000 {
		b.WriteString("  - *h\n")
	}
	_, err := Parse("bomb.yaml", []byte(b.String()))
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "document too complex: more than 1048576 YAML nodes after expanding aliases") {
		t.Errorf("got %v", err)
	}

	// Merge keys nested through 20 anchors.
	b.Reset()
	b.WriteString(v2 + "  hosts:\n" + master + "  x0: &m0 {user: root}\n")
	for i := 1; i < 20; i++ {
		fmt.Fprintf(&b, "  x%d: &m%d {<<: [*m%d, *m%d]}\n", i, i, i-1, i-1)
	}
	b.WriteString("  ssh: {<<: *m19}\n")
	_, err = Parse("merge.yaml", []byte(b.String()))
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "spec.ssh: merge keys nested too deeply") {
		t.Errorf("got %v", err)
	}
}
