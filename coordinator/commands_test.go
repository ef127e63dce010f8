package coordinator

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/drove-project/drove/protocol"
)

// commandSamples holds one filled-in request of every command type.
func commandSamples() []Command {
	return []Command{
		RegisterNode{Member: protocol.Member{ID: "n1", Name: "host1", Address: "127.0.0.2", Roles: []string{"master"},
			Labels: map[string]string{"zone": "a"}, Arch: "amd64", State: "alive", Coord: true}, Now: 1700000000000},
		RemoveNode{ID: "n1"},
		SubmitPlan{PlanID: "p1", Now: 1700000000001, Spec: protocol.PlanSpec{Name: "install", Phases: []protocol.PhaseSpec{{
			Name: "init", Parallel: 1, Steps: []protocol.StepSpec{{Name: "kubeadm", Target: protocol.Selector{Roles: []string{"master"}},
				Action: protocol.Action{Kind: "shell", Command: "kubeadm init", Env: map[string]string{"A": "1"}},
				Retry:  protocol.RetryPolicy{Attempts: 3, BackoffMs: 100}, TimeoutMs: 60000, Idempotent: true}}}}}},
		MarkDispatched{Now: 5, Entries: []DispatchEntry{{StepID: "p1/0/0/n1", Attempt: 1, Term: 2}}},
		RecordResults{Now: 6, Term: 2, Results: []protocol.StepResult{{StepID: "p1/0/0/n1", Node: "n1", Attempt: 1,
			State: protocol.StateSucceeded, Output: "ok", Outputs: map[string]string{"token": "t"}}}},
		RetrySteps{PlanID: "p1", StepID: "p1/0/0/n1", Now: 7},
	}
}

// TestCommandNumbers pins the enum: a renumbered command would make old
// logs decode as something else.
func TestCommandNumbers(t *testing.T) {
	want := map[CommandType]uint8{CmdRegisterNode: 1, CmdRemoveNode: 2, CmdSubmitPlan: 3,
		CmdMarkDispatched: 4, CmdRecordResults: 5, CmdRetrySteps: 6}
	for ct, n := range want {
		if uint8(ct) != n {
			t.Errorf("%s is %d, was %d", ct, uint8(ct), n)
		}
	}
	if len(commandTypes) != len(want) {
		t.Errorf("%d command types; add the new one to this test with its number", len(commandTypes))
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	seen := map[CommandType]bool{}
	for _, c := range commandSamples() {
		b, err := EncodeCommand(c)
		if err != nil {
			t.Fatalf("encode %T: %v", c, err)
		}
		if b[0] != byte(c.CommandType()) {
			t.Errorf("%T: type byte %d", c, b[0])
		}
		ct, req, err := DecodeCommand(b)
		if err != nil {
			t.Fatalf("decode %T: %v", c, err)
		}
		seen[ct] = true
		if got := reflect.ValueOf(req).Elem().Interface(); !reflect.DeepEqual(got, c) {
			t.Errorf("%s round trip:\n got %#v\nwant %#v", ct, got, c)
		}
		// A pointer encodes the same as the value.
		pv := reflect.New(reflect.TypeOf(c))
		pv.Elem().Set(reflect.ValueOf(c))
		b2, err := Encode(ct, pv.Interface())
		if err != nil || !bytes.Equal(b, b2) {
			t.Errorf("%s: pointer encodes differently: %v", ct, err)
		}
	}
	for ct := range commandTypes {
		if !seen[ct] {
			t.Errorf("no sample for %s", ct)
		}
	}
}

func TestEncodeRefusesMismatch(t *testing.T) {
	if _, err := Encode(CmdRemoveNode, RegisterNode{}); !errors.Is(err, ErrCommandType) {
		t.Errorf("mismatched request: %v", err)
	}
	if _, err := Encode(CmdRemoveNode, nil); !errors.Is(err, ErrCommandType) {
		t.Errorf("nil request: %v", err)
	}
	if _, err := Encode(CommandType(99), RemoveNode{}); !errors.Is(err, ErrUnknownCommand) {
		t.Errorf("unknown type: %v", err)
	}
}

func TestDecodeCommandErrors(t *testing.T) {
	for _, c := range []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrEmptyCommand},
		{"zero type", []byte{0, '{', '}'}, ErrUnknownCommand},
		{"newer type", []byte{200, '{', '}'}, ErrUnknownCommand},
		{"truncated", []byte{byte(CmdRemoveNode), '{'}, nil},
		{"no payload", []byte{byte(CmdRemoveNode)}, nil},
		{"wrong shape", append([]byte{byte(CmdMarkDispatched)}, `{"entries":"x"}`...), nil},
		{"trailing data", append([]byte{byte(CmdRemoveNode)}, `{"id":"a"}{}`...), nil},
	} {
		_, _, err := DecodeCommand(c.in)
		if err == nil {
			t.Errorf("%s: decoded", c.name)
			continue
		}
		if c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

// FuzzDecodeCommand: whatever decodes re-encodes stably, and applying it
// to a populated FSM returns a value or an error but never panics (only an
// entry that does not decode may stop a node).
func FuzzDecodeCommand(f *testing.F) {
	for _, c := range commandSamples() {
		b, _ := EncodeCommand(c)
		f.Add(b)
	}
	f.Add([]byte{byte(CmdRecordResults), '{', '}'})
	f.Fuzz(func(t *testing.T, b []byte) {
		ct, req, err := DecodeCommand(b)
		if err != nil {
			return
		}
		again, err := Encode(ct, req)
		if err != nil {
			t.Fatalf("re-encode %s: %v", ct, err)
		}
		ct2, req2, err := DecodeCommand(again)
		if err != nil || ct2 != ct {
			t.Fatalf("decode re-encoded %s: %v", ct, err)
		}
		third, _ := Encode(ct2, req2)
		if !bytes.Equal(again, third) {
			t.Fatalf("%s does not re-encode stably:\n%q\n%q", ct, again, third)
		}
		h := newFSMHarness(t)
		registerTestNodes(h)
		h.must(SubmitPlan{PlanID: "p1", Now: 1, Spec: protocol.PlanSpec{Name: "p", Phases: []protocol.PhaseSpec{
			{Name: "a", Parallel: 1, Steps: []protocol.StepSpec{mkStep("init", roleSel("master")), {Name: "use", Target: roleSel("node"),
				Action: shellAction(`x {{output "init" "t"}}`), Retry: protocol.RetryPolicy{Attempts: 2, BackoffMs: 1}}}}}}})
		h.must(MarkDispatched{Now: 2, Entries: []DispatchEntry{{StepID: "p1/0/0/m1", Attempt: 1, Term: 1}}})
		h.f.Apply(&raft.Log{Index: 100, Term: 1, Type: raft.LogCommand, Data: b})
		st := h.f.StateCopy()
		for _, p := range st.Plans {
			if err := p.check(); err != nil {
				t.Fatalf("plan %s broken after %s: %v", p.ID, ct, err)
			}
		}
		// The state must still snapshot and restore.
		if _, err := ReadSnapshot(bytes.NewReader(snapshotBytes(t, st))); err != nil {
			t.Fatalf("snapshot after %s does not restore: %v", ct, err)
		}
	})
}
