package coordinator

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/drove-project/drove/protocol"
)

// testRevision is what a client submits; the serial, plan and time it
// puts there are the coordinator's to set and must be ignored.
func testRevision(image string) *protocol.ClusterRevision {
	return &protocol.ClusterRevision{Serial: 99, PlanID: "forged", Applied: 5,
		Clusterfile: "apiVersion: sealer.io/v2\nkind: Cluster\nspec:\n  image: " + image + "\n",
		Image:       image, ImageDigest: "sha256:" + strings.Repeat("a", 64), Runtime: "plain"}
}

// submitOne submits plan id: one step on m1, carrying rev.
func submitOne(h *fsmHarness, id string, now int64, rev *protocol.ClusterRevision) {
	h.t.Helper()
	h.must(SubmitPlan{PlanID: id, Now: now, Revision: rev, Spec: protocol.PlanSpec{Name: "apply", Phases: []protocol.PhaseSpec{
		{Name: "a", Steps: []protocol.StepSpec{mkStep("s", protocol.Selector{Nodes: []string{"m1"}})}}}}})
}

func TestRevisionRecordedWhenPlanSucceeds(t *testing.T) {
	h := newFSMHarness(t)
	registerTestNodes(h)
	if rev := h.f.Revision(); rev != (protocol.ClusterRevision{}) {
		t.Fatalf("a new FSM has revision %+v", rev)
	}

	submitOne(h, "p1", 10, testRevision("demo:1"))
	if p := h.plan("p1"); p.Revision == nil || p.Revision.Image != "demo:1" {
		t.Fatalf("plan keeps revision %+v", p.Revision)
	}
	h.play("p1/0/0/m1", evMark(1, 20), evResult(1, protocol.StateRunning, 30))
	if rev := h.f.Revision(); rev.Serial != 0 {
		t.Fatalf("revision recorded before the plan succeeded: %+v", rev)
	}
	h.play("p1/0/0/m1", evResult(1, protocol.StateSucceeded, 40))
	want := *testRevision("demo:1")
	want.Serial, want.PlanID, want.Applied = 1, "p1", 40
	if rev := h.f.Revision(); rev != want {
		t.Fatalf("revision %+v, want %+v", rev, want)
	}

	// A failed plan leaves the previous revision.
	submitOne(h, "p2", 50, testRevision("demo:2"))
	h.play("p2/0/0/m1", evMark(1, 60), evResult(1, protocol.StateFailed, 70))
	if h.plan("p2").State != PlanFailed {
		t.Fatal("p2 did not fail")
	}
	if rev := h.f.Revision(); rev != want {
		t.Fatalf("after a failed plan: %+v, want %+v", rev, want)
	}

	// A plan without a revision changes nothing when it succeeds.
	submitOne(h, "p3", 80, nil)
	h.play("p3/0/0/m1", evMark(1, 90), evResult(1, protocol.StateSucceeded, 100))
	if rev := h.f.Revision(); rev != want {
		t.Fatalf("after a plan without revision: %+v, want %+v", rev, want)
	}

	// The failed plan retried to success records its revision, next serial.
	h.must(RetrySteps{PlanID: "p2", Now: 110})
	h.play("p2/0/0/m1", evMark(2, 120), evResult(2, protocol.StateSucceeded, 130))
	want2 := *testRevision("demo:2")
	want2.Serial, want2.PlanID, want2.Applied = 2, "p2", 130
	if rev := h.f.Revision(); rev != want2 {
		t.Fatalf("after the retry: %+v, want %+v", rev, want2)
	}
	// A late duplicate of the success does not bump the serial.
	r := mkResult("p2/0/0/m1", 2, protocol.StateSucceeded)
	h.must(RecordResults{Now: 140, Results: []protocol.StepResult{r}})
	if rev := h.f.Revision(); rev != want2 {
		t.Fatalf("after a duplicate result: %+v, want %+v", rev, want2)
	}

	// The same log gives the same revision: nothing but the log decides.
	replay := newFSMHarness(t)
	for _, e := range h.entries {
		replay.index++
		replay.f.Apply(&raft.Log{Index: replay.index, Term: 1, Type: raft.LogCommand, Data: e})
	}
	if rev := replay.f.Revision(); rev != want2 {
		t.Fatalf("replayed log: %+v, want %+v", rev, want2)
	}
}

func TestRevisionAfterLateSuccess(t *testing.T) {
	// A plan fails on one node, then a late success replaces the failure
	// and the plan succeeds after all: its revision is applied then.
	h := newFSMHarness(t)
	registerTestNodes(h)
	submitOne(h, "p1", 1, testRevision("demo:1"))
	h.play("p1/0/0/m1", evMark(1, 2))
	failed := mkResult("p1/0/0/m1", 1, protocol.StateFailed)
	h.must(RecordResults{Now: 3, Results: []protocol.StepResult{failed}})
	if h.plan("p1").State != PlanFailed || h.f.Revision().Serial != 0 {
		t.Fatalf("plan %s, revision %+v", h.plan("p1").State, h.f.Revision())
	}
	h.must(RecordResults{Now: 4, Results: []protocol.StepResult{mkResult("p1/0/0/m1", 1, protocol.StateSucceeded)}})
	if h.plan("p1").State != PlanSucceeded {
		t.Fatalf("plan %s after the late success", h.plan("p1").State)
	}
	if rev := h.f.Revision(); rev.Serial != 1 || rev.PlanID != "p1" || rev.Applied != 4 {
		t.Fatalf("revision %+v", rev)
	}
}

func TestRevisionTooLargeRefused(t *testing.T) {
	h := newFSMHarness(t)
	registerTestNodes(h)
	rev := testRevision("demo:1")
	rev.Clusterfile = strings.Repeat("x", MaxRevisionSize+1)
	err := h.refused(SubmitPlan{PlanID: "p1", Now: 1, Revision: rev, Spec: mkValidSpec()})
	if !errors.Is(err, ErrInvalidPlan) || !strings.Contains(err.Error(), "cluster revision") {
		t.Fatalf("error %v", err)
	}
	if ErrorCode(err) != protocol.CodeBadRequest {
		t.Fatalf("code %s", ErrorCode(err))
	}
}

func TestRevisionSnapshotRestore(t *testing.T) {
	h := newFSMHarness(t)
	registerTestNodes(h)
	// Without an applied revision the snapshot has no revision record, so
	// it is what older versions wrote.
	if b := snapshotBytes(t, h.f.StateCopy()); bytes.Contains(b, []byte("clusterfile")) {
		t.Fatal("a state without revision writes one")
	}
	submitOne(h, "p1", 1, testRevision("demo:1"))
	h.play("p1/0/0/m1", evMark(1, 2), evResult(1, protocol.StateSucceeded, 3))
	submitOne(h, "p2", 4, testRevision("demo:2")) // pending, with its own revision
	want := h.f.Revision()

	snap, err := h.f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	sink := &bufferSink{Buffer: &buf}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	other := newFSMHarness(t)
	if err := other.f.Restore(io.NopCloser(bytes.NewReader(buf.Bytes()))); err != nil {
		t.Fatal(err)
	}
	if rev := other.f.Revision(); rev != want || rev.Serial != 1 {
		t.Fatalf("restored revision %+v, want %+v", rev, want)
	}
	if p := other.plan("p2"); p.Revision == nil || p.Revision.Image != "demo:2" {
		t.Fatalf("restored pending plan revision %+v", p.Revision)
	}
	if !reflect.DeepEqual(other.f.StateCopy(), h.f.StateCopy()) {
		t.Fatal("restored state differs")
	}
	// The restored FSM records the next revision with the next serial.
	h.play("p2/0/0/m1", evMark(1, 5), evResult(1, protocol.StateSucceeded, 6))
	other.play("p2/0/0/m1", evMark(1, 5), evResult(1, protocol.StateSucceeded, 6))
	if a, b := h.f.Revision(), other.f.Revision(); a != b || a.Serial != 2 {
		t.Fatalf("after restore: %+v vs %+v", a, b)
	}
}

// bufferSink is a raft.SnapshotSink into memory.
type bufferSink struct{ *bytes.Buffer }

func (bufferSink) ID() string    { return "mem" }
func (bufferSink) Cancel() error { return nil }
func (bufferSink) Close() error  { return nil }
