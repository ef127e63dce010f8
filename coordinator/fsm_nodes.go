package coordinator

import (
	"fmt"

	"github.com/drove-project/drove/protocol"
)

func init() {
	registerCommand(CmdRegisterNode, applyRegisterNode)
	registerCommand(CmdRemoveNode, applyRemoveNode)
}

// applyRegisterNode adds a node or replaces its facts; the first
// registration time is kept.
func applyRegisterNode(s *State, _ uint64, req *RegisterNode) (any, error) {
	id := req.Member.ID
	if !protocol.ValidID(id) {
		return nil, fmt.Errorf("register node: %w: ID %q", ErrInvalidNode, id)
	}
	n, ok := s.Nodes[id]
	if !ok {
		n = &Node{Registered: req.Now}
		s.Nodes[id] = n
	}
	n.Member = cloneMember(req.Member)
	n.Updated = req.Now
	return nil, nil
}

// applyRemoveNode drops a node from the registry. Its node-steps stay in
// their plans.
func applyRemoveNode(s *State, _ uint64, req *RemoveNode) (any, error) {
	if _, ok := s.Nodes[req.ID]; !ok {
		return nil, fmt.Errorf("remove node: %w %q", ErrUnknownNode, req.ID)
	}
	delete(s.Nodes, req.ID)
	return nil, nil
}
