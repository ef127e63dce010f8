package coordinator

import (
	"fmt"

	"github.com/drove-project/drove/protocol"
)

// MaxRevisionSize bounds a submitted cluster revision (its Clusterfile and
// names, in bytes): raft holds small metadata, and every plan keeps the
// revision it carried.
const MaxRevisionSize = 1 << 20

// ValidateRevision checks a revision submitted with a plan (nil is fine).
// Serial, PlanID and Applied are the coordinator's to set, so whatever
// the client put there is ignored.
func ValidateRevision(rev *protocol.ClusterRevision) error {
	if rev == nil {
		return nil
	}
	size := len(rev.Clusterfile) + len(rev.Image) + len(rev.ImageDigest) + len(rev.Runtime)
	if size > MaxRevisionSize {
		return fmt.Errorf("%w: the cluster revision is %d bytes, more than the %d allowed (keep large files out of the Clusterfile's Config documents)",
			ErrInvalidPlan, size, MaxRevisionSize)
	}
	return nil
}

// recordRevision makes the revision p carries (if any) the applied one:
// the next serial, p's ID, and now (the time of the command that made p
// succeed, stamped by its proposer) as the time it was applied.
func (s *State) recordRevision(p *Plan, now int64) {
	if p.Revision == nil {
		return
	}
	rev := *p.Revision
	rev.Serial = s.Revision.Serial + 1
	rev.PlanID = p.ID
	rev.Applied = now
	s.Revision = rev
}

// Revision returns the applied cluster revision (Serial 0: none yet).
func (f *FSM) Revision() protocol.ClusterRevision {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.state.Revision
}
