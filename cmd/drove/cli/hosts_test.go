package cli

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/drove-project/drove/layers/clusterfile"
	"github.com/drove-project/drove/protocol"
)

func TestMemberFor(t *testing.T) {
	members := []protocol.Member{
		{ID: "m1", Address: "10.0.0.1", State: "alive"},
		{ID: "node-10-0-0-2", Address: "192.168.1.2", State: "alive"}, // installed by drove, advertising another address
		{ID: "old", Address: "10.0.0.3", State: "dead"},
		{ID: "x", Name: "node-10-0-0-4", Address: "172.16.0.4", State: "alive"},
	}
	ids, missing := nodeIDs(members, []string{"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"})
	want := map[string]string{"10.0.0.1": "m1", "10.0.0.2": "node-10-0-0-2", "10.0.0.4": "x"}
	if len(ids) != len(want) || ids["10.0.0.1"] != "m1" || ids["10.0.0.2"] != "node-10-0-0-2" || ids["10.0.0.4"] != "x" {
		t.Errorf("ids %v, want %v", ids, want)
	}
	if !slices.Equal(missing, []string{"10.0.0.3"}) {
		t.Errorf("missing %v: a dead member does not count", missing)
	}
	if got := nodeName("fd00::5"); !protocol.ValidID(got) {
		t.Errorf("node name %q is not a valid node ID", got)
	}
}

func TestAgentArgs(t *testing.T) {
	got := strings.Join(agentArgs("10.0.0.7", []string{"master", "etcd"}, "10.0.0.1:7946"), " ")
	want := "--data-dir /var/lib/drove agent --join 10.0.0.1:7946 --token-file /var/lib/drove/token --roles master,etcd --bind 10.0.0.7 --name node-10-0-0-7"
	if got != want {
		t.Errorf("args\n got %s\nwant %s", got, want)
	}
	if _, err := gossipJoin([]protocol.Member{{ID: "n1", State: "alive"}}); !errors.Is(err, errNoCoordinator) {
		t.Errorf("no coordinator: %v", err)
	}
}

func TestSSHTargets(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	c := &clusterfile.Cluster{
		SSH: clusterfile.SSH{User: "root", Port: 22, Passwd: "cluster"},
		Hosts: []clusterfile.Host{
			{IPs: []string{"10.0.0.1"}, Roles: []string{"master"}},
			{IPs: []string{"10.0.0.2"}, Roles: []string{"node"}, SSH: clusterfile.SSH{User: "ops", Port: 2222, Pk: "/k"}},
		},
	}
	ts, err := sshTargets(c, []string{"10.0.0.1", "10.0.0.2"})
	if err != nil {
		t.Fatal(err)
	}
	if a := ts["10.0.0.1"]; a.User != "root" || a.Password != "cluster" || a.Port != 22 {
		t.Errorf("10.0.0.1: %+v", a)
	}
	if b := ts["10.0.0.2"]; b.User != "ops" || b.Port != 2222 || b.KeyFile != "/k" || b.Password != "cluster" {
		t.Errorf("10.0.0.2: per-host settings over the cluster's: %+v", b)
	}
	// No password and no key: ~/.ssh/id_rsa if there is one, else an error
	// naming the host and what to pass.
	c.SSH.Passwd = ""
	if _, err := sshTargets(c, []string{"10.0.0.1"}); !errors.Is(err, errNoSSH) || !strings.Contains(err.Error(), "10.0.0.1") {
		t.Errorf("no credentials: %v", err)
	}
	key := filepath.Join(home, ".ssh", "id_rsa")
	os.MkdirAll(filepath.Dir(key), 0o700)
	os.WriteFile(key, []byte("key"), 0o600)
	ts, err = sshTargets(c, []string{"10.0.0.1"})
	if err != nil || ts["10.0.0.1"].KeyFile != key {
		t.Errorf("default key: %+v, %v", ts, err)
	}
	c.SSH.Encrypted = true
	if _, err := sshTargets(c, []string{"10.0.0.1"}); err == nil || !strings.Contains(err.Error(), "encrypted") {
		t.Errorf("encrypted password: %v", err)
	}
}

func TestUnregistered(t *testing.T) {
	members := []protocol.Member{
		{ID: "m1", Address: "10.0.0.1", State: "alive", Registered: true},
		{ID: "n1", Address: "10.0.0.2", State: "alive"}, // in gossip, not yet in raft
	}
	ids := map[string]string{"10.0.0.1": "m1", "10.0.0.2": "n1"}
	if got := unregistered(members, ids); !slices.Equal(got, []string{"10.0.0.2"}) {
		t.Errorf("unregistered = %v, want [10.0.0.2]", got)
	}
}
