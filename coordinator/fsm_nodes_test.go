package coordinator

import (
	"errors"
	"testing"

	"github.com/drove-project/drove/protocol"
)

func TestRegisterNodeAddsThenUpdates(t *testing.T) {
	h := newFSMHarness(t)
	h.must(RegisterNode{Member: testMember("n1", []string{"node"}, nil), Now: 100})
	m := testMember("n1", []string{"node", "master"}, map[string]string{"zone": "b"})
	m.State = "suspect"
	h.must(RegisterNode{Member: m, Now: 200})
	n, ok := h.f.Node("n1")
	if !ok {
		t.Fatal("n1 not registered")
	}
	if n.Registered != 100 || n.Updated != 200 {
		t.Errorf("times: registered %d updated %d, want 100 and 200", n.Registered, n.Updated)
	}
	if n.Member.State != "suspect" || len(n.Member.Roles) != 2 || n.Member.Labels["zone"] != "b" {
		t.Errorf("member not updated: %+v", n.Member)
	}
	// The FSM keeps its own copy of what was proposed.
	m.Roles[0] = "changed"
	if n, _ := h.f.Node("n1"); n.Member.Roles[0] != "node" {
		t.Error("registry shares memory with the request")
	}
	if len(h.f.Nodes()) != 1 {
		t.Errorf("%d nodes", len(h.f.Nodes()))
	}
}

func TestRegisterNodeRefusesBadIDs(t *testing.T) {
	h := newFSMHarness(t)
	for _, id := range []string{"", "a.b", "a b", "a*", "a>"} {
		if err := h.refused(RegisterNode{Member: protocol.Member{ID: id}, Now: 1}); !errors.Is(err, ErrInvalidNode) {
			t.Errorf("ID %q: %v", id, err)
		}
	}
}

func TestRemoveNode(t *testing.T) {
	h := newFSMHarness(t)
	registerTestNodes(h)
	h.must(RemoveNode{ID: "n2"})
	if _, ok := h.f.Node("n2"); ok {
		t.Fatal("n2 still registered")
	}
	if err := h.refused(RemoveNode{ID: "n2"}); !errors.Is(err, ErrUnknownNode) {
		t.Fatalf("second removal: %v", err)
	}
	if len(h.f.Nodes()) != 3 {
		t.Fatalf("%d nodes left", len(h.f.Nodes()))
	}
}
