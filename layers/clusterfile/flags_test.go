package clusterfile

import (
	"errors"
	"reflect"
	"testing"
)

func TestFromFlags(t *testing.T) {
	tests := []struct {
		name    string
		masters []string
		nodes   []string
		ssh     SSH
		env     []string
		want    []Host
		wantSSH SSH
		wantErr string
	}{
		{
			name:    "masters and nodes",
			masters: []string{"10.0.0.1-10.0.0.3"},
			nodes:   []string{"10.0.0.4,10.0.0.5", "10.0.0.6"},
			ssh:     SSH{Passwd: "pw", Port: 2222},
			env:     []string{"A=1", "A=2"},
			want: []Host{
				{IPs: []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"}, Roles: []string{RoleMaster}},
				{IPs: []string{"10.0.0.4", "10.0.0.5", "10.0.0.6"}, Roles: []string{RoleNode}},
			},
			wantSSH: SSH{User: "root", Passwd: "pw", Port: 2222},
		},
		{
			name:    "masters only, key with passphrase",
			masters: []string{"fd00::1"},
			ssh:     SSH{User: "ops", Pk: "/k", PkPasswd: "pp"},
			want:    []Host{{IPs: []string{"fd00::1"}, Roles: []string{RoleMaster}}},
			wantSSH: SSH{User: "ops", Pk: "/k", PkPasswd: "pp", Port: 22},
		},
		{name: "no masters", nodes: []string{"10.0.0.1"}, wantErr: "--masters: missing: give the master addresses, e.g. -m 10.0.0.1,10.0.0.2"},
		{name: "bad master", masters: []string{"10.0.0.1-5"}, wantErr: `--masters: "10.0.0.1-5": the range end must be a full address, e.g. 10.0.0.5`},
		{name: "master is a node", masters: []string{"10.0.0.1"}, nodes: []string{"10.0.0.2,10.0.0.1"}, wantErr: "--nodes: 10.0.0.1 is listed twice (first in --masters)"},
		{name: "bad env", masters: []string{"10.0.0.1"}, env: []string{"A"}, wantErr: `--env: "A" is not KEY=VALUE`},
		{name: "bad port", masters: []string{"10.0.0.1"}, ssh: SSH{Port: 70000}, wantErr: "--port: 70000 is not a port number"},
		{name: "mixed families", masters: []string{"10.0.0.1"}, nodes: []string{"fd00::1"}, wantErr: "--nodes: fd00::1 and 10.0.0.1 (in --masters) are of different IP families: all hosts must be IPv4, or all IPv6"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := FromFlags("kubernetes:v1.22", tt.masters, tt.nodes, tt.ssh, tt.env)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr || !errors.Is(err, ErrInvalid) {
					t.Errorf("got %+v, %v; want %q", c, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(c.Hosts, tt.want) || c.SSH != tt.wantSSH || !reflect.DeepEqual(c.Env, tt.env) {
				t.Errorf("got hosts %+v ssh %+v env %q", c.Hosts, c.SSH, c.Env)
			}
			if c.Image != "kubernetes:v1.22" || c.Registry.Local == nil || c.Registry.Local.Domain != DefaultRegistryDomain {
				t.Errorf("image %q registry %+v", c.Image, c.Registry)
			}
			// What the flags build is also a valid Clusterfile.
			f := &File{Name: "flags", Cluster: c}
			data, err := f.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			back := mustParse(t, "flags", data)
			if !reflect.DeepEqual(clearLines(back).Cluster, c) {
				t.Errorf("round trip:\n got %+v\nwant %+v", back.Cluster, c)
			}
		})
	}
}

func TestOverride(t *testing.T) {
	base := `apiVersion: sealer.io/v2
kind: Cluster
spec:
  image: old:1
  env: [A=file, B=file, B=file2]
  cmd: [old cmd]
  appNames: [a, b]
  ssh: {user: ops, passwd: filepw}
  hosts:
  - ips: [10.0.0.1]
    roles: [master]
  - ips: [10.0.0.2]
    roles: [node, db]
    env: [B=host, C=host]
  - ips: [10.0.0.3]
    roles: [node]
`
	tests := []struct {
		name    string
		o       Overrides
		check   func(t *testing.T, c *Cluster)
		wantErr string
	}{
		{
			name: "nothing",
			check: func(t *testing.T, c *Cluster) {
				f := clearLines(mustParse(t, "c", []byte(base)))
				if !reflect.DeepEqual(c, f.Cluster) {
					t.Errorf("changed: %+v", c)
				}
			},
		},
		{
			name: "image, cmds, apps",
			o:    Overrides{Image: "new:2", Cmds: []string{"x", "y"}, SetCmds: true, SetApps: true},
			check: func(t *testing.T, c *Cluster) {
				if c.Image != "new:2" || !reflect.DeepEqual(c.Cmds, []string{"x", "y"}) || len(c.AppNames) != 0 {
					t.Errorf("image %q cmds %q apps %q", c.Image, c.Cmds, c.AppNames)
				}
			},
		},
		{
			name: "env wins over file and hosts",
			o:    Overrides{Env: []string{"B=cli", "D=cli"}},
			check: func(t *testing.T, c *Cluster) {
				if want := []string{"A=file", "B=cli", "D=cli"}; !reflect.DeepEqual(c.Env, want) {
					t.Errorf("env %q, want %q", c.Env, want)
				}
				if want := []string{"C=host"}; !reflect.DeepEqual(c.Hosts[1].Env, want) {
					t.Errorf("host env %q, want %q", c.Hosts[1].Env, want)
				}
				if env := c.EnvFor(c.Hosts[1]); !reflect.DeepEqual(env["B"], []string{"cli"}) {
					t.Errorf("EnvFor B = %q", env["B"])
				}
			},
		},
		{
			name: "ssh fields",
			o:    Overrides{SSH: SSH{Passwd: "clipw", Port: 2022}},
			check: func(t *testing.T, c *Cluster) {
				if c.SSH != (SSH{User: "ops", Passwd: "clipw", Port: 2022}) {
					t.Errorf("ssh %+v", c.SSH)
				}
			},
		},
		{
			name: "masters replace the master role only",
			o:    Overrides{Masters: []string{"10.0.1.1,10.0.1.2"}},
			check: func(t *testing.T, c *Cluster) {
				if got := c.Masters(); !reflect.DeepEqual(got, []string{"10.0.1.1", "10.0.1.2"}) {
					t.Errorf("masters %v", got)
				}
				if got := c.Nodes(); !reflect.DeepEqual(got, []string{"10.0.0.2", "10.0.0.3"}) {
					t.Errorf("nodes %v", got)
				}
				if c.Hosts[1].Env == nil {
					t.Errorf("kept host lost its env: %+v", c.Hosts[1])
				}
			},
		},
		{
			name: "nodes replace the node role; other roles stay",
			o:    Overrides{Nodes: []string{"10.0.2.1"}},
			check: func(t *testing.T, c *Cluster) {
				want := []Host{
					{IPs: []string{"10.0.0.1"}, Roles: []string{"master"}, Line: 10},
					{IPs: []string{"10.0.0.2"}, Roles: []string{"db"}, Env: []string{"B=host", "C=host"}, Line: 12},
					{IPs: []string{"10.0.2.1"}, Roles: []string{"node"}},
				}
				if !reflect.DeepEqual(c.Hosts, want) {
					t.Errorf("hosts:\n got %+v\nwant %+v", c.Hosts, want)
				}
			},
		},
		{
			name:    "new master clashes with a kept host",
			o:       Overrides{Masters: []string{"10.0.0.2"}},
			wantErr: "--masters: 10.0.0.2 is listed twice (first at line 12, spec.hosts[1])",
		},
		{
			name:    "bad node list",
			o:       Overrides{Nodes: []string{"10.0.0.300"}, Env: []string{"=x"}},
			wantErr: "--env: \"=x\" is not KEY=VALUE\n--nodes: \"10.0.0.300\" is not an IP address",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustParse(t, "c", []byte(base)).Cluster
			before := mustParse(t, "c", []byte(base)).Cluster
			err := c.Override(tt.o)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr || !errors.Is(err, ErrInvalid) {
					t.Errorf("got %v, want %q", err, tt.wantErr)
				}
				if !reflect.DeepEqual(c, before) {
					t.Errorf("cluster changed on error: %+v", c)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.name == "nothing" {
				c.Line = 0
				for i := range c.Hosts {
					c.Hosts[i].Line = 0
				}
			}
			tt.check(t, c)
		})
	}
}
