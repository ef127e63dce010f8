package cli

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/drove-project/drove/internal/testnats"
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

// statusServer is a control server whose coordinator answers Status with
// members(n), n counting the requests from 1.
func statusServer(t *testing.T, members func(n int) []protocol.Member) (*nats.Conn, *atomic.Int32) {
	t.Helper()
	nc := connectPlain(t, testnats.Start(t))
	var asked atomic.Int32
	if _, err := nc.Subscribe(protocol.APISubject, func(m *nats.Msg) {
		b, _ := protocol.Encode(&protocol.Status{Members: members(int(asked.Add(1)))})
		m.Respond(b)
	}); err != nil {
		t.Fatal(err)
	}
	return nc, &asked
}

// A coordinator whose gossip view lags behind an agent that just started
// must not make that host look agentless: ensureAgents looks again.
func TestEnsureAgentsLooksAgainAtALaggingView(t *testing.T) {
	t.Setenv("HOME", t.TempDir()) // no ~/.ssh/id_rsa to fall back to
	c := &clusterfile.Cluster{Hosts: []clusterfile.Host{
		{IPs: []string{"10.0.0.1"}, Roles: []string{"master"}},
		{IPs: []string{"10.0.0.2"}, Roles: []string{"node"}},
	}}
	m1 := protocol.Member{ID: "m1", Address: "10.0.0.1", State: "alive", Coord: true, Registered: true}
	n2 := protocol.Member{ID: "n2", Address: "10.0.0.2", State: "alive", Registered: true}
	g := &Globals{Streams: Streams{Out: &bytes.Buffer{}, Err: &bytes.Buffer{}}}
	cf := &clientFlags{Timeout: 5 * time.Second}

	nc, asked := statusServer(t, func(n int) []protocol.Member {
		if n < 3 {
			return []protocol.Member{m1} // n2 not yet seen
		}
		return []protocol.Member{m1, n2}
	})
	ids, err := ensureAgents(t.Context(), g, cf, nc, c, hostOptions{})
	if err != nil {
		t.Fatalf("host seen on the third look: %v", err)
	}
	if ids["10.0.0.1"] != "m1" || ids["10.0.0.2"] != "n2" {
		t.Errorf("ids %v", ids)
	}
	if n := asked.Load(); n != 3 {
		t.Errorf("asked %d times, want 3 (stop looking once every host is there)", n)
	}

	nc, asked = statusServer(t, func(int) []protocol.Member { return []protocol.Member{m1} })
	if _, err := ensureAgents(t.Context(), g, cf, nc, c, hostOptions{}); !errors.Is(err, errNoSSH) || !strings.Contains(err.Error(), "10.0.0.2") {
		t.Fatalf("host never seen, no SSH: %v", err)
	}
	if n := asked.Load(); n < 2 {
		t.Errorf("asked %d times: a host missing from the first answer was not looked for again", n)
	}
}
