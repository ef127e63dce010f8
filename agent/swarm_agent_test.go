package agent

import (
	"testing"

	"github.com/drove-project/drove/protocol"
)

// An agent starts its data endpoint with the rest of it, gossips the port,
// and can run distribute steps.
func TestAgentHasDataEndpoint(t *testing.T) {
	a := newTestAgent(t, Config{DataDir: t.TempDir()})
	if p := a.Data().Port(); p <= 0 || a.member().DataPort != p {
		t.Errorf("data port %d, gossiped %d", p, a.member().DataPort)
	}
	if _, ok := a.exec.actions.Lookup(protocol.ActionDistribute); !ok {
		t.Errorf("no %q action registered", protocol.ActionDistribute)
	}
	if _, err := connectData(t, a.Data().ClientURL(), swarmToken); err != nil {
		t.Errorf("connect to the data endpoint with the cluster's data credentials: %v", err)
	}
}

// newTestAgent makes an agent named n1 on loopback with the test token
// (cfg sets the rest) without running it, and stops what New started
// when the test ends.
func newTestAgent(t *testing.T, cfg Config) *Agent {
	t.Helper()
	cfg.Name, cfg.BindAddr, cfg.Token = "n1", "127.0.0.1", swarmToken
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		a.gossip.Shutdown()
		a.data.Shutdown()
		a.exec.Close()
	})
	return a
}
