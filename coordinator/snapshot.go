package coordinator

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/hashicorp/raft"

	"github.com/drove-project/drove/protocol"
)

// SnapshotFormat is the version of the snapshot stream this package writes
// and reads.
const SnapshotFormat = 1

// maxRecord bounds one snapshot record (one plan with all its node-steps).
const maxRecord = 64 << 20

// recordType names a snapshot record. Append-only, like CommandType: a
// type that is no longer written keeps its number and its case in
// ReadSnapshot.
type recordType uint8

const (
	_           recordType = iota
	recHeader              // snapshotHeader, always first
	recNode                // Node
	recPlan                // Plan, in submit order
	recEnd                 // snapshotEnd, always last
	recRevision            // protocol.ClusterRevision, after the plans; only when one was applied
)

type snapshotHeader struct {
	Format int `json:"format"`
}

type snapshotEnd struct {
	Nodes int `json:"nodes"`
	Plans int `json:"plans"`
}

// ErrSnapshot is returned for a snapshot stream that cannot be restored.
var ErrSnapshot = errors.New("bad snapshot")

// Snapshot copies the state (under the read lock, so readers go on); the
// copy is written out later by Persist while Apply goes on.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return &fsmSnapshot{state: f.state.Clone()}, nil
}

// Restore replaces the whole state with the one in a snapshot stream.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	st, err := ReadSnapshot(rc)
	if err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	f.mu.Lock()
	f.state = st
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
	f.log.Info("restored state from snapshot", "nodes", len(st.Nodes), "plans", len(st.Plans))
	return nil
}

type fsmSnapshot struct {
	state *State
}

// Persist streams the copied state to sink; on error it cancels the sink.
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := WriteSnapshot(sink, s.state); err != nil {
		sink.Cancel()
		return fmt.Errorf("persist snapshot %s: %w", sink.ID(), err)
	}
	if err := sink.Close(); err != nil {
		return fmt.Errorf("close snapshot %s: %w", sink.ID(), err)
	}
	return nil
}

func (s *fsmSnapshot) Release() {}

// WriteSnapshot writes s as a stream of typed records: a header with the
// format version, one record per node (in ID order) and per plan (in
// submit order), the applied cluster revision (when there is one), then an
// end record with the counts. Each record is a type
// byte, a big-endian uint32 length and that many bytes of JSON. The same
// state always gives the same bytes.
func WriteSnapshot(w io.Writer, s *State) error {
	bw := bufio.NewWriter(w)
	put := func(t recordType, v any) error {
		body, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("encode record %d: %w", t, err)
		}
		if len(body) > maxRecord {
			return fmt.Errorf("record %d is %d bytes, more than %d", t, len(body), maxRecord)
		}
		var hdr [5]byte
		hdr[0] = byte(t)
		binary.BigEndian.PutUint32(hdr[1:], uint32(len(body)))
		if _, err := bw.Write(hdr[:]); err != nil {
			return err
		}
		_, err = bw.Write(body)
		return err
	}
	if err := put(recHeader, snapshotHeader{Format: SnapshotFormat}); err != nil {
		return err
	}
	for _, n := range s.SortedNodes() {
		if err := put(recNode, n); err != nil {
			return fmt.Errorf("node %s: %w", n.Member.ID, err)
		}
	}
	for _, p := range s.OrderedPlans() {
		if err := put(recPlan, p); err != nil {
			return fmt.Errorf("plan %s: %w", p.ID, err)
		}
	}
	if s.Revision.Serial > 0 {
		if err := put(recRevision, s.Revision); err != nil {
			return fmt.Errorf("cluster revision %d: %w", s.Revision.Serial, err)
		}
	}
	if err := put(recEnd, snapshotEnd{Nodes: len(s.Nodes), Plans: len(s.Order)}); err != nil {
		return err
	}
	return bw.Flush()
}

// ReadSnapshot reads a stream written by WriteSnapshot into a new State,
// checking that it is whole and consistent.
func ReadSnapshot(r io.Reader) (*State, error) {
	br := bufio.NewReader(r)
	s := NewState()
	next := func() (recordType, []byte, error) {
		var hdr [5]byte
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return 0, nil, fmt.Errorf("%w: truncated (no end record)", ErrSnapshot)
			}
			return 0, nil, err
		}
		n := binary.BigEndian.Uint32(hdr[1:])
		if n > maxRecord {
			return 0, nil, fmt.Errorf("%w: record of %d bytes", ErrSnapshot, n)
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(br, body); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return 0, nil, fmt.Errorf("%w: truncated record", ErrSnapshot)
			}
			return 0, nil, err
		}
		return recordType(hdr[0]), body, nil
	}
	t, body, err := next()
	if err != nil {
		return nil, err
	}
	var h snapshotHeader
	if t != recHeader {
		return nil, fmt.Errorf("%w: starts with record type %d, not a header", ErrSnapshot, t)
	}
	if err := json.Unmarshal(body, &h); err != nil {
		return nil, fmt.Errorf("%w: header: %w", ErrSnapshot, err)
	}
	if h.Format != SnapshotFormat {
		return nil, fmt.Errorf("%w: format %d (this drove reads %d)", ErrSnapshot, h.Format, SnapshotFormat)
	}
	for {
		t, body, err := next()
		if err != nil {
			return nil, err
		}
		switch t {
		case recNode:
			var n Node
			if err := json.Unmarshal(body, &n); err != nil {
				return nil, fmt.Errorf("%w: node: %w", ErrSnapshot, err)
			}
			if !protocol.ValidID(n.Member.ID) || s.Nodes[n.Member.ID] != nil {
				return nil, fmt.Errorf("%w: node ID %q is invalid or repeated", ErrSnapshot, n.Member.ID)
			}
			s.Nodes[n.Member.ID] = &n
		case recPlan:
			var p Plan
			if err := json.Unmarshal(body, &p); err != nil {
				return nil, fmt.Errorf("%w: plan: %w", ErrSnapshot, err)
			}
			if err := p.check(); err != nil {
				return nil, fmt.Errorf("%w: plan %q: %w", ErrSnapshot, p.ID, err)
			}
			if s.Plans[p.ID] != nil {
				return nil, fmt.Errorf("%w: plan %q repeated", ErrSnapshot, p.ID)
			}
			s.Plans[p.ID] = &p
			s.Order = append(s.Order, p.ID)
		case recRevision:
			var rev protocol.ClusterRevision
			if err := json.Unmarshal(body, &rev); err != nil {
				return nil, fmt.Errorf("%w: cluster revision: %w", ErrSnapshot, err)
			}
			if rev.Serial == 0 || s.Revision.Serial != 0 {
				return nil, fmt.Errorf("%w: cluster revision with serial %d (repeated, or 0)", ErrSnapshot, rev.Serial)
			}
			s.Revision = rev
		case recEnd:
			var e snapshotEnd
			if err := json.Unmarshal(body, &e); err != nil {
				return nil, fmt.Errorf("%w: end: %w", ErrSnapshot, err)
			}
			if e.Nodes != len(s.Nodes) || e.Plans != len(s.Order) {
				return nil, fmt.Errorf("%w: end record counts %d nodes and %d plans, read %d and %d",
					ErrSnapshot, e.Nodes, e.Plans, len(s.Nodes), len(s.Order))
			}
			if _, err := br.ReadByte(); err != io.EOF {
				return nil, fmt.Errorf("%w: data after the end record", ErrSnapshot)
			}
			return s, nil
		default:
			return nil, fmt.Errorf("%w: unknown record type %d (written by a newer drove?)", ErrSnapshot, t)
		}
	}
}

// check verifies the invariants the rest of the package relies on: every
// resolved node has exactly one node-step, named by its position.
func (p *Plan) check() error {
	if !protocol.ValidID(p.ID) || strings.Contains(p.ID, "/") {
		return errors.New("invalid ID")
	}
	switch p.State {
	case PlanPending, PlanRunning, PlanSucceeded, PlanFailed:
	default:
		return fmt.Errorf("state %q", p.State)
	}
	for i := range p.Phases {
		for j := range p.Phases[i].Steps {
			st := &p.Phases[i].Steps[j]
			if !slices.IsSorted(st.Nodes) || len(slices.Compact(slices.Clone(st.Nodes))) != len(st.Nodes) {
				return fmt.Errorf("step %q: nodes not sorted and unique", st.Spec.Name)
			}
			if len(st.Runs) != len(st.Nodes) {
				return fmt.Errorf("step %q: %d runs for %d nodes", st.Spec.Name, len(st.Runs), len(st.Nodes))
			}
			for _, node := range st.Nodes {
				ns := st.Runs[node]
				if ns == nil || ns.Node != node || ns.StepID != MakeStepID(p.ID, i, j, node) {
					return fmt.Errorf("step %q: bad run for node %q", st.Spec.Name, node)
				}
			}
		}
	}
	return nil
}
