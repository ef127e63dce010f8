package coordinator

import (
	"bytes"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/drove-project/drove/protocol"
)

// fsmHarness applies commands to a real FSM the way raft does: encoded log
// entries with increasing indexes. It keeps the entries so a test can
// replay them elsewhere.
type fsmHarness struct {
	t       testing.TB
	f       *FSM
	index   uint64
	entries [][]byte
}

func newFSMHarness(t testing.TB) *fsmHarness {
	return &fsmHarness{t: t, f: NewFSM(slog.New(slog.DiscardHandler))}
}

// apply encodes c, applies it, and returns the response.
func (h *fsmHarness) apply(c Command) any {
	h.t.Helper()
	b, err := EncodeCommand(c)
	if err != nil {
		h.t.Fatalf("encode %T: %v", c, err)
	}
	h.index++
	h.entries = append(h.entries, b)
	return h.f.Apply(&raft.Log{Index: h.index, Term: 1, Type: raft.LogCommand, Data: b})
}

// must applies c and fails the test if Apply refused it.
func (h *fsmHarness) must(c Command) any {
	h.t.Helper()
	resp := h.apply(c)
	if err, ok := resp.(error); ok {
		h.t.Fatalf("apply %T: %v", c, err)
	}
	return resp
}

// refused applies c and returns the error Apply returned; the test fails
// if it was accepted or if state changed.
func (h *fsmHarness) refused(c Command) error {
	h.t.Helper()
	before := snapshotBytes(h.t, h.f.StateCopy())
	resp := h.apply(c)
	err, ok := resp.(error)
	if !ok {
		h.t.Fatalf("apply %T was accepted (%v), want an error", c, resp)
	}
	if after := snapshotBytes(h.t, h.f.StateCopy()); !bytes.Equal(before, after) {
		h.t.Fatalf("refused %T changed the state", c)
	}
	return err
}

func (h *fsmHarness) batch(c Command) *BatchResponse {
	h.t.Helper()
	r, ok := h.must(c).(*BatchResponse)
	if !ok {
		h.t.Fatalf("apply %T: response is not a *BatchResponse", c)
	}
	return r
}

func (h *fsmHarness) plan(id string) *Plan {
	h.t.Helper()
	p, ok := h.f.Plan(id)
	if !ok {
		h.t.Fatalf("no plan %s", id)
	}
	return p
}

func (h *fsmHarness) nodeStep(stepID string) *NodeStep {
	h.t.Helper()
	planID, _, _, _, err := ParseStepID(stepID)
	if err != nil {
		h.t.Fatal(err)
	}
	ns, _, err := h.plan(planID).NodeStep(stepID)
	if err != nil {
		h.t.Fatal(err)
	}
	return ns
}

func snapshotBytes(t testing.TB, s *State) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := WriteSnapshot(&b, s); err != nil {
		t.Fatalf("write snapshot: %v", err)
	}
	return b.Bytes()
}

func testMember(id string, roles []string, labels map[string]string) protocol.Member {
	return protocol.Member{ID: id, Name: "host-" + id, Address: "127.0.0.1", Roles: roles, Labels: labels, State: "alive"}
}

// registerTestNodes registers m1 (master), n1 and n2 (node, zone a) and
// n3 (node, zone b).
func registerTestNodes(h *fsmHarness) {
	h.must(RegisterNode{Member: testMember("m1", []string{"master"}, map[string]string{"zone": "a"}), Now: 1})
	h.must(RegisterNode{Member: testMember("n1", []string{"node"}, map[string]string{"zone": "a", "disk": "ssd"}), Now: 1})
	h.must(RegisterNode{Member: testMember("n2", []string{"node"}, map[string]string{"zone": "a"}), Now: 1})
	h.must(RegisterNode{Member: testMember("n3", []string{"node"}, map[string]string{"zone": "b"}), Now: 1})
}

func shellAction(cmd string) protocol.Action { return protocol.Action{Kind: "shell", Command: cmd} }

func mkStep(name string, sel protocol.Selector) protocol.StepSpec {
	return protocol.StepSpec{Name: name, Target: sel, Action: shellAction("echo " + name)}
}

func roleSel(r ...string) protocol.Selector { return protocol.Selector{Roles: r} }

func mkResult(stepID string, attempt int, state string) protocol.StepResult {
	_, _, _, node, _ := ParseStepID(stepID)
	return protocol.StepResult{StepID: stepID, Node: node, Attempt: attempt, State: state}
}

func TestApplyPanicsOnUndecodableEntry(t *testing.T) {
	good, _ := EncodeCommand(RemoveNode{ID: "x"})
	for name, data := range map[string][]byte{
		"empty":        nil,
		"zero type":    {0, '{', '}'},
		"unknown type": {250, '{', '}'},
		"bad json":     append([]byte{byte(CmdSubmitPlan)}, `{"planID":`...),
		"wrong shape":  append([]byte{byte(CmdRecordResults)}, `{"results":{"a":1}}`...),
		"trailing":     append(good, []byte(" x")...),
	} {
		t.Run(name, func(t *testing.T) {
			f := NewFSM(nil)
			defer func() {
				r := recover()
				if r == nil {
					t.Fatal("Apply did not panic")
				}
				if msg := fmt.Sprint(r); !strings.Contains(msg, "entry 7 ") {
					t.Fatalf("panic does not name the index: %s", msg)
				}
			}()
			f.Apply(&raft.Log{Index: 7, Term: 2, Type: raft.LogCommand, Data: data})
		})
	}
}

func TestApplyIgnoresNonCommandEntries(t *testing.T) {
	f := NewFSM(nil)
	if r := f.Apply(&raft.Log{Index: 1, Type: raft.LogNoop}); r != nil {
		t.Fatalf("noop entry: %v", r)
	}
}

func TestRegisterCommandPanics(t *testing.T) {
	for name, fn := range map[string]func(){
		"duplicate":     func() { registerCommand(CmdRegisterNode, applyRegisterNode) },
		"wrong request": func() { registerCommand(CommandType(250), applyRegisterNode) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			fn()
		})
	}
	if _, ok := handlers[CommandType(250)]; ok {
		t.Fatal("a refused registration was installed")
	}
}

func TestEveryCommandHasAHandler(t *testing.T) {
	for ct := range commandTypes {
		if handlers[ct] == nil {
			t.Errorf("%s has no handler", ct)
		}
	}
	if len(handlers) != len(commandTypes) {
		t.Errorf("%d handlers for %d command types", len(handlers), len(commandTypes))
	}
}

// buildLog drives an FSM through every command, including refused ones,
// retries and a removal, and returns its entries.
func buildTestLog(t testing.TB) [][]byte {
	h := newFSMHarness(t)
	registerTestNodes(h)
	h.must(SubmitPlan{PlanID: "p1", Now: 10, Spec: protocol.PlanSpec{Name: "install", Phases: []protocol.PhaseSpec{
		{Name: "prepare", Parallel: 2, Steps: []protocol.StepSpec{
			{Name: "init", Target: roleSel("master"), Action: shellAction("kubeadm init"), Retry: protocol.RetryPolicy{Attempts: 2, BackoffMs: 100}},
			{Name: "join", Target: roleSel("node"), Action: shellAction(`kubeadm join {{output "init" "token"}}`)},
		}},
	}}})
	h.must(SubmitPlan{PlanID: "p2", Now: 11, Spec: protocol.PlanSpec{Name: "other", Phases: []protocol.PhaseSpec{
		{Name: "x", Steps: []protocol.StepSpec{mkStep("x", protocol.Selector{Labels: map[string]string{"zone": "a"}})}},
	}}})
	h.refused(SubmitPlan{PlanID: "p3", Now: 12, Spec: protocol.PlanSpec{Name: "none", Phases: []protocol.PhaseSpec{
		{Name: "x", Steps: []protocol.StepSpec{mkStep("x", roleSel("gpu"))}}}}})
	h.must(MarkDispatched{Now: 20, Entries: []DispatchEntry{{StepID: "p1/0/0/m1", Attempt: 1, Term: 1},
		{StepID: "p2/0/0/m1", Attempt: 1, Term: 1}, {StepID: "p2/0/0/n1", Attempt: 1, Term: 1}, {StepID: "p2/0/0/n2", Attempt: 1, Term: 1}}})
	h.must(RecordResults{Now: 30, Term: 1, Results: []protocol.StepResult{mkResult("p1/0/0/m1", 1, protocol.StateFailed),
		mkResult("p2/0/0/n1", 1, protocol.StateSucceeded), mkResult("p2/0/0/n2", 1, protocol.StateFailed)}})
	h.must(MarkDispatched{Now: 200, Entries: []DispatchEntry{{StepID: "p1/0/0/m1", Attempt: 2, Term: 2}}})
	ok := mkResult("p1/0/0/m1", 2, protocol.StateSucceeded)
	ok.Outputs, ok.Output = map[string]string{"token": "abc", "hash": "sha256:1"}, "done"
	h.must(RecordResults{Now: 300, Term: 2, Results: []protocol.StepResult{ok, mkResult("p2/0/0/m1", 1, protocol.StateSucceeded)}})
	h.must(RetrySteps{PlanID: "p2", Now: 310})
	h.must(MarkDispatched{Now: 320, Entries: []DispatchEntry{{StepID: "p1/0/1/n1", Attempt: 1, Term: 2}, {StepID: "p1/0/1/n2", Attempt: 1, Term: 2}}})
	h.must(RemoveNode{ID: "n3"})
	h.must(RegisterNode{Member: testMember("n4", []string{"node"}, nil), Now: 400})
	return h.entries
}

func TestApplyIsDeterministic(t *testing.T) {
	entries := buildTestLog(t)
	var want []byte
	// Map iteration order changes from one range to the next; a leak of it
	// into state would make some of these differ.
	for i := range 20 {
		f := NewFSM(nil)
		for j, e := range entries {
			f.Apply(&raft.Log{Index: uint64(j + 1), Term: 1, Type: raft.LogCommand, Data: e})
		}
		got := snapshotBytes(t, f.StateCopy())
		if i == 0 {
			want = got
			continue
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("FSM %d differs from FSM 0 after the same log", i)
		}
	}
}

// TestApplyPathHasNoClockOrRandomness is a lint: the files Apply runs
// must not read the clock or use randomness.
func TestApplyPathHasNoClockOrRandomness(t *testing.T) {
	fset := token.NewFileSet()
	for _, file := range []string{"state.go", "commands.go", "fsm.go", "fsm_nodes.go", "fsm_plans.go", "fsm_revision.go", "snapshot.go", "render.go"} {
		f, err := parser.ParseFile(fset, file, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			switch strings.Trim(imp.Path.Value, `"`) {
			case "time", "math/rand", "math/rand/v2", "crypto/rand", "os":
				t.Errorf("%s imports %s", file, imp.Path.Value)
			}
		}
		full, err := parser.ParseFile(fset, file, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(full, func(n ast.Node) bool {
			if sel, ok := n.(*ast.SelectorExpr); ok && sel.Sel.Name == "Now" {
				if id, ok := sel.X.(*ast.Ident); ok && id.Name == "time" {
					t.Errorf("%s: time.Now at %s", file, fset.Position(sel.Pos()))
				}
			}
			return true
		})
	}
}

func TestReadersGetCopies(t *testing.T) {
	h := newFSMHarness(t)
	registerTestNodes(h)
	h.must(SubmitPlan{PlanID: "p1", Now: 1, Spec: protocol.PlanSpec{Name: "p", Phases: []protocol.PhaseSpec{
		{Name: "a", Steps: []protocol.StepSpec{mkStep("s", roleSel("node"))}}}}})
	before := snapshotBytes(t, h.f.StateCopy())

	nodes := h.f.Nodes()
	nodes[0].Roles[0] = "changed"
	nodes[0].Labels["zone"] = "changed"
	p, _ := h.f.Plan("p1")
	p.Phases[0].Steps[0].Runs["n1"].State = protocol.StateSucceeded
	p.Phases[0].Steps[0].Nodes[0] = "zz"
	p.Phases[0].Steps[0].Spec.Target.Roles[0] = "zz"
	d, _ := h.f.PlanDetail("p1")
	d.Phases[0].Steps[0].State = "zz"
	n, _ := h.f.Node("n1")
	n.Member.Labels["disk"] = "zz"
	st := h.f.StateCopy()
	st.Plans["p1"].State = PlanFailed
	st.Order[0] = "zz"

	if after := snapshotBytes(t, h.f.StateCopy()); !bytes.Equal(before, after) {
		t.Fatal("changing what a reader got changed the FSM")
	}
}

func TestReadAccessors(t *testing.T) {
	h := newFSMHarness(t)
	registerTestNodes(h)
	spec := protocol.PlanSpec{Name: "p", Phases: []protocol.PhaseSpec{{Name: "a", Steps: []protocol.StepSpec{mkStep("s", roleSel("node"))}}}}
	h.must(SubmitPlan{PlanID: "zz", Now: 5, Spec: spec})
	h.must(SubmitPlan{PlanID: "aa", Now: 6, Spec: spec})

	var ids []string
	for _, m := range h.f.Nodes() {
		ids = append(ids, m.ID)
	}
	if got := strings.Join(ids, ","); got != "m1,n1,n2,n3" {
		t.Errorf("Nodes() order: %s", got)
	}
	sums := h.f.Plans()
	if len(sums) != 2 || sums[0].ID != "zz" || sums[1].ID != "aa" {
		t.Fatalf("Plans() not in submit order: %+v", sums)
	}
	if sums[0].Steps != 3 || sums[0].State != PlanPending || sums[0].Created != 5 {
		t.Errorf("summary: %+v", sums[0])
	}
	if _, ok := h.f.PlanDetail("nope"); ok {
		t.Error("PlanDetail of an unknown plan")
	}
	out := mkResult("zz/0/0/n2", 1, protocol.StateSucceeded)
	out.Outputs = map[string]string{"k": "from-n2", "only2": "x"}
	out1 := mkResult("zz/0/0/n1", 1, protocol.StateSucceeded)
	out1.Outputs = map[string]string{"k": "from-n1"}
	h.must(MarkDispatched{Now: 7, Entries: []DispatchEntry{{StepID: "zz/0/0/n1", Attempt: 1}, {StepID: "zz/0/0/n2", Attempt: 1}}})
	h.must(RecordResults{Now: 8, Results: []protocol.StepResult{out, out1}})
	got, err := h.f.Outputs("zz", "s")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, map[string]string{"k": "from-n1", "only2": "x"}) {
		t.Errorf("Outputs: %v", got)
	}
	if _, err := h.f.Outputs("zz", "nope"); !errors.Is(err, ErrUnknownStep) {
		t.Errorf("Outputs of an unknown step: %v", err)
	}
	if _, err := h.f.Outputs("nope", "s"); !errors.Is(err, ErrUnknownPlan) {
		t.Errorf("Outputs of an unknown plan: %v", err)
	}
}

func TestChangesWakesOnApply(t *testing.T) {
	h := newFSMHarness(t)
	ch := h.f.Changes()
	select {
	case <-ch:
		t.Fatal("closed before any change")
	default:
	}
	h.must(RegisterNode{Member: testMember("n1", nil, nil), Now: 1})
	select {
	case <-ch:
	default:
		t.Fatal("not closed after an applied command")
	}
	ch = h.f.Changes()
	h.refused(RemoveNode{ID: "nope"})
	select {
	case <-ch:
		t.Fatal("closed by a refused command")
	default:
	}
}

// TestConcurrentReaders runs readers against Apply; it proves itself
// under -race.
func TestConcurrentReaders(t *testing.T) {
	h := newFSMHarness(t)
	registerTestNodes(h)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				h.f.Nodes()
				h.f.Plans()
				h.f.PlanDetail("p0")
				h.f.Schedule(Scheduler{}, time.Now().UnixMilli(), nil, nil)
				if snap, err := h.f.Snapshot(); err == nil {
					snap.Release()
				}
			}
		}()
	}
	spec := protocol.PlanSpec{Name: "p", Phases: []protocol.PhaseSpec{{Name: "a", Steps: []protocol.StepSpec{mkStep("s", roleSel("node"))}}}}
	for i := range 50 {
		id := fmt.Sprintf("p%d", i)
		h.must(SubmitPlan{PlanID: id, Now: int64(i), Spec: spec})
		h.must(MarkDispatched{Now: int64(i), Entries: []DispatchEntry{{StepID: id + "/0/0/n1", Attempt: 1}}})
		h.must(RecordResults{Now: int64(i), Results: []protocol.StepResult{mkResult(id+"/0/0/n1", 1, protocol.StateSucceeded)}})
	}
	close(stop)
	wg.Wait()
	if got := len(h.f.Plans()); got != 50 {
		t.Fatalf("%d plans", got)
	}
}

func TestErrorCode(t *testing.T) {
	for _, c := range []struct {
		err  error
		want protocol.ErrorCode
	}{
		{nil, ""},
		{fmt.Errorf("submit: %w", ErrNoNodes), protocol.CodeNoNodes},
		{fmt.Errorf("x: %w", ErrInvalidPlan), protocol.CodeBadRequest},
		{fmt.Errorf("x: %w", ErrPlanExists), protocol.CodeBadRequest},
		{fmt.Errorf("x: %w", ErrUnknownPlan), protocol.CodeNotFound},
		{fmt.Errorf("x: %w", ErrUnknownStep), protocol.CodeNotFound},
		{fmt.Errorf("x: %w", ErrNothingToRetry), protocol.CodeBadRequest},
		{fmt.Errorf("x: %w", protocol.Errorf(protocol.CodeTimeout, "slow")), protocol.CodeTimeout},
		{errors.New("disk on fire"), protocol.CodeInternal},
	} {
		if got := ErrorCode(c.err); got != c.want {
			t.Errorf("ErrorCode(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}
