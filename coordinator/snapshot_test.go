package coordinator

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/drove-project/drove/protocol"
)

var writeSeeds = flag.Bool("write-seeds", false, "rewrite the committed fuzz seed corpora of this package")

// richState builds a state that holds every kind of thing the FSM stores:
// nodes, plans in every plan state, node-steps in every node-step state,
// outputs, errors, backoff times.
func richState(t testing.TB) *fsmHarness {
	h := newFSMHarness(t)
	registerTestNodes(h)
	two := protocol.PlanSpec{Name: "two", Phases: []protocol.PhaseSpec{
		{Name: "first", Parallel: 2, Steps: []protocol.StepSpec{{Name: "init", Target: roleSel("node"),
			Action: protocol.Action{Kind: "write-file", Path: "/etc/x", Content: "{{.Node}}", Mode: 0o600, Env: map[string]string{"K": "v"}},
			Retry:  protocol.RetryPolicy{Attempts: 3, BackoffMs: 50}, TimeoutMs: 1000, Idempotent: true}}},
		{Name: "second", Steps: []protocol.StepSpec{{Name: "use", Target: protocol.Selector{Nodes: []string{"host-m1"}, Labels: map[string]string{"zone": "a"}},
			Action: shellAction(`echo {{output "init" "token"}}`)}}},
	}}
	h.must(SubmitPlan{PlanID: "pending", Now: 10, Spec: two, Revision: testRevision("demo:2")})

	h.must(SubmitPlan{PlanID: "running", Now: 11, Spec: two})
	h.must(MarkDispatched{Now: 20, Entries: []DispatchEntry{{StepID: "running/0/0/n1", Attempt: 1, Term: 2},
		{StepID: "running/0/0/n2", Attempt: 1, Term: 2}, {StepID: "running/0/0/n3", Attempt: 1, Term: 2}}})
	ok := mkResult("running/0/0/n1", 1, protocol.StateSucceeded)
	ok.Output, ok.OutputDigest, ok.Outputs, ok.DurationMs = "token printed\n", "sha256:0a", map[string]string{"token": "abc.def", "hash": "sha256:1"}, 30
	h.must(RecordResults{Now: 30, Term: 2, Results: []protocol.StepResult{ok, mkResult("running/0/0/n2", 1, protocol.StateRunning),
		{StepID: "running/0/0/n3", Node: "n3", Attempt: 1, State: protocol.StateFailed, ExitCode: 7, Error: "exit 7", Code: protocol.CodeInternal}}})

	h.must(SubmitPlan{PlanID: "succeeded", Now: 12, Revision: testRevision("demo:1"), Spec: protocol.PlanSpec{Name: "one", Phases: []protocol.PhaseSpec{
		{Name: "only", Steps: []protocol.StepSpec{mkStep("s", roleSel("master"))}}}}})
	h.play("succeeded/0/0/m1", evMark(1, 40), evResult(1, protocol.StateSucceeded, 41))

	h.must(SubmitPlan{PlanID: "failed", Now: 13, Spec: protocol.PlanSpec{Name: "once", Phases: []protocol.PhaseSpec{
		{Name: "only", Steps: []protocol.StepSpec{mkStep("s", roleSel("node")), mkStep("t", roleSel("master"))}}}}})
	h.must(MarkDispatched{Now: 50, Entries: []DispatchEntry{{StepID: "failed/0/0/n1", Attempt: 1, Term: 3}, {StepID: "failed/0/0/n2", Attempt: 1, Term: 3}}})
	h.must(RecordResults{Now: 60, Term: 3, Results: []protocol.StepResult{
		{StepID: "failed/0/0/n1", Node: "n1", Attempt: 1, State: protocol.StateInterrupted, ExitCode: -1, Code: protocol.CodeNodeUnreachable, Error: "node unreachable"}}})
	h.must(SubmitPlan{PlanID: "failed2", Now: 14, Spec: two})
	h.play("failed2/0/0/n1", evMark(1, 70), evResult(1, protocol.StateFailed, 71), evMark(2, 200), evResult(2, protocol.StateFailed, 201), evMark(3, 400), evResult(3, protocol.StateFailed, 401))
	h.must(RemoveNode{ID: "n3"})
	return h
}

func TestRichStateCoversEveryState(t *testing.T) {
	st := richState(t).f.StateCopy()
	plans, steps := map[string]bool{}, map[string]bool{}
	var outputs, notBefore bool
	for _, p := range st.Plans {
		plans[p.State] = true
		p.eachNodeStep(func(ns *NodeStep, _ *Step) {
			steps[ns.State] = true
			outputs = outputs || len(ns.Outputs) > 0
			notBefore = notBefore || ns.NotBefore > 0
		})
	}
	for _, s := range []string{PlanPending, PlanRunning, PlanSucceeded, PlanFailed} {
		if !plans[s] {
			t.Errorf("no plan %s", s)
		}
	}
	for _, s := range []string{protocol.StatePending, protocol.StateDispatched, protocol.StateRunning, protocol.StateSucceeded,
		protocol.StateFailed, protocol.StateInterrupted, protocol.StateSkipped} {
		if !steps[s] {
			t.Errorf("no node-step %s", s)
		}
	}
	if !outputs || !notBefore {
		t.Errorf("outputs %v, backoff %v", outputs, notBefore)
	}
	if st.Revision.Serial == 0 || st.Plans["pending"].Revision == nil {
		t.Errorf("no applied revision (%+v) or no plan revision", st.Revision)
	}
}

// TestSnapshotRoundTrip persists through raft's own file snapshot store in
// a temporary directory and restores into an FSM that held other state.
func TestSnapshotRoundTrip(t *testing.T) {
	h := richState(t)
	want := h.f.StateCopy()

	store, err := raft.NewFileSnapshotStore(t.TempDir(), 2, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := h.f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	// Apply goes on while the snapshot is persisted; the snapshot holds
	// the state at the time it was taken.
	h.must(RegisterNode{Member: testMember("late", nil, nil), Now: 999})
	sink, err := store.Create(raft.SnapshotVersionMax, 10, 1, raft.Configuration{}, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	snap.Release()

	other := newFSMHarness(t)
	other.must(RegisterNode{Member: testMember("stale", nil, nil), Now: 1})
	other.must(SubmitPlan{PlanID: "stale", Now: 1, Spec: protocol.PlanSpec{Name: "x", Phases: []protocol.PhaseSpec{
		{Name: "a", Steps: []protocol.StepSpec{mkStep("s", protocol.Selector{})}}}}})
	changed := other.f.Changes()

	metas, err := store.List()
	if err != nil || len(metas) != 1 {
		t.Fatalf("list snapshots: %v %d", err, len(metas))
	}
	_, rc, err := store.Open(metas[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := other.f.Restore(rc); err != nil {
		t.Fatal(err)
	}
	got := other.f.StateCopy()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("restored state differs:\n got %+v\nwant %+v", got, want)
	}
	if !bytes.Equal(snapshotBytes(t, got), snapshotBytes(t, want)) {
		t.Fatal("restored state snapshots to other bytes")
	}
	if _, ok := other.f.Node("stale"); ok {
		t.Fatal("restore kept old state")
	}
	select {
	case <-changed:
	default:
		t.Fatal("restore did not signal a change")
	}
	// The restored FSM goes on like the original.
	next := RecordResults{Now: 500, Results: []protocol.StepResult{mkResult("running/0/0/n2", 1, protocol.StateSucceeded)}}
	h2 := newFSMHarness(t)
	h2.f = NewFSM(nil)
	if err := h2.f.Restore(io.NopCloser(bytes.NewReader(snapshotBytes(t, want)))); err != nil {
		t.Fatal(err)
	}
	other.must(next)
	h2.must(next)
	if !bytes.Equal(snapshotBytes(t, other.f.StateCopy()), snapshotBytes(t, h2.f.StateCopy())) {
		t.Fatal("two restored FSMs diverge on the same command")
	}
}

// failingSnapshotSink is a snapshot sink whose writes fail after limit bytes.
type failingSnapshotSink struct {
	limit             int
	written           int
	closed, cancelled bool
}

func (s *failingSnapshotSink) Write(p []byte) (int, error) {
	if s.written+len(p) > s.limit {
		return 0, errors.New("disk full")
	}
	s.written += len(p)
	return len(p), nil
}
func (s *failingSnapshotSink) Close() error  { s.closed = true; return nil }
func (s *failingSnapshotSink) Cancel() error { s.cancelled = true; return nil }
func (s *failingSnapshotSink) ID() string    { return "test" }

func TestPersistCancelsOnError(t *testing.T) {
	snap, err := richState(t).f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &failingSnapshotSink{limit: 100}
	err = snap.Persist(sink)
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("persist: %v", err)
	}
	if !sink.cancelled || sink.closed {
		t.Fatalf("cancelled %v closed %v", sink.cancelled, sink.closed)
	}
}

// record frames one snapshot record.
func snapRecord(t recordType, body string) []byte {
	b := []byte{byte(t), 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[1:], uint32(len(body)))
	return append(b, body...)
}

func joinBytes(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestReadSnapshotRejects(t *testing.T) {
	header := snapRecord(recHeader, `{"format":1}`)
	end0 := snapRecord(recEnd, `{"nodes":0,"plans":0}`)
	node := snapRecord(recNode, `{"member":{"id":"n1","address":"x","state":"alive"},"registered":1,"updated":1}`)
	goodPlan := snapshotBytes(t, richState(t).f.StateCopy())
	if _, err := ReadSnapshot(bytes.NewReader(goodPlan)); err != nil {
		t.Fatalf("a good snapshot: %v", err)
	}
	if st, err := ReadSnapshot(bytes.NewReader(joinBytes(header, end0))); err != nil || len(st.Nodes)+len(st.Plans) != 0 {
		t.Fatalf("an empty snapshot: %v", err)
	}
	for _, c := range []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "truncated"},
		{"header only", header, "truncated"},
		{"cut in a record", joinBytes(header, node[:10]), "truncated record"},
		{"no header", joinBytes(node, end0), "not a header"},
		{"newer format", joinBytes(snapRecord(recHeader, `{"format":2}`), end0), "format 2"},
		{"bad header", joinBytes(snapRecord(recHeader, `[]`), end0), "header"},
		{"unknown record", joinBytes(header, snapRecord(99, `{}`), end0), "unknown record type 99"},
		{"counts differ", joinBytes(header, node, end0), "end record counts 0 nodes"},
		{"data after end", joinBytes(header, end0, []byte{0}), "data after the end record"},
		{"repeated node", joinBytes(header, node, node, snapRecord(recEnd, `{"nodes":2}`)), "repeated"},
		{"invalid node ID", joinBytes(header, snapRecord(recNode, `{"member":{"id":"a.b"}}`), end0), "invalid"},
		{"huge record", joinBytes(header, []byte{byte(recNode), 0xff, 0xff, 0xff, 0xff}), "record of"},
		{"plan without runs", joinBytes(header, snapRecord(recPlan, `{"id":"p","state":"running","phases":[{"name":"a","steps":[{"nodes":["n1"]}]}]}`), end0), "0 runs for 1 nodes"},
		{"plan with a misnamed run", joinBytes(header, snapRecord(recPlan, `{"id":"p","state":"running","phases":[{"name":"a","steps":[{"nodes":["n1"],"runs":{"n1":{"stepID":"p/0/1/n1","node":"n1"}}}]}]}`), end0), "bad run"},
		{"plan with unsorted nodes", joinBytes(header, snapRecord(recPlan, `{"id":"p","state":"running","phases":[{"name":"a","steps":[{"nodes":["n2","n1"]}]}]}`), end0), "not sorted"},
		{"plan in no state", joinBytes(header, snapRecord(recPlan, `{"id":"p","state":"odd"}`), end0), "state"},
		{"plan with a bad ID", joinBytes(header, snapRecord(recPlan, `{"id":"a/b","state":"running"}`), end0), "invalid ID"},
		{"revision with serial 0", joinBytes(header, snapRecord(recRevision, `{"serial":0}`), end0), "serial 0"},
		{"revision twice", joinBytes(header, snapRecord(recRevision, `{"serial":1}`), snapRecord(recRevision, `{"serial":2}`), end0), "repeated"},
		{"bad revision", joinBytes(header, snapRecord(recRevision, `[]`), end0), "cluster revision"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ReadSnapshot(bytes.NewReader(c.in))
			if !errors.Is(err, ErrSnapshot) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want ErrSnapshot with %q", err, c.want)
			}
		})
	}
}

func TestRestoreFailureKeepsState(t *testing.T) {
	h := richState(t)
	before := snapshotBytes(t, h.f.StateCopy())
	good := snapshotBytes(t, h.f.StateCopy())
	if err := h.f.Restore(io.NopCloser(bytes.NewReader(good[:len(good)-3]))); err == nil {
		t.Fatal("restored a truncated snapshot")
	}
	if !bytes.Equal(before, snapshotBytes(t, h.f.StateCopy())) {
		t.Fatal("a failed restore changed the state")
	}
}

// FuzzReadSnapshot: a snapshot that reads writes back to bytes that read
// to the same state, and the rest of the package can work on it.
func FuzzReadSnapshot(f *testing.F) {
	f.Add(snapshotBytes(f, richState(f).f.StateCopy()))
	f.Add(snapshotBytes(f, NewState()))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := ReadSnapshot(bytes.NewReader(b))
		if err != nil {
			return
		}
		again := snapshotBytes(t, st)
		st2, err := ReadSnapshot(bytes.NewReader(again))
		if err != nil {
			t.Fatalf("re-read: %v", err)
		}
		if !bytes.Equal(again, snapshotBytes(t, st2)) {
			t.Fatal("snapshot does not write back stably")
		}
		for _, p := range st.OrderedPlans() {
			p.Summary()
			p.Detail()
		}
		down := func(node string) bool { return len(node)%2 == 0 }
		Scheduler{}.Next(st, 1<<40, nil, down)
		for _, id := range st.Order {
			applyRetrySteps(st, 0, &RetrySteps{PlanID: id})
		}
	})
}

// TestWriteFuzzSeeds rewrites testdata/fuzz/<Fuzz>/ when run with
// -write-seeds: the seeds of both fuzz targets, in "go test fuzz v1" form.
func TestWriteFuzzSeeds(t *testing.T) {
	if !*writeSeeds {
		t.Skip("run with -write-seeds to rewrite the seed corpora")
	}
	write := func(target, name string, b []byte) {
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range commandSamples() {
		b, _ := EncodeCommand(c)
		write("FuzzDecodeCommand", c.CommandType().String(), b)
	}
	for i, e := range buildTestLog(t) {
		write("FuzzDecodeCommand", fmt.Sprintf("log-%02d", i), e)
	}
	write("FuzzDecodeCommand", "truncated", []byte{byte(CmdSubmitPlan), '{', '"'})
	write("FuzzReadSnapshot", "rich", snapshotBytes(t, richState(t).f.StateCopy()))
	write("FuzzReadSnapshot", "empty", snapshotBytes(t, NewState()))
	write("FuzzReadSnapshot", "truncated", snapshotBytes(t, richState(t).f.StateCopy())[:200])
}
