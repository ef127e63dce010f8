package coordinator

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"

	"github.com/drove-project/drove/protocol"
)

// CommandType names a raft log entry. The enum is append-only: never
// renumber or reuse a value, because logs and snapshots written by older
// versions must still decode to the same command.
type CommandType uint8

const (
	_                 CommandType = iota // 0: never used, so a zeroed entry does not decode
	CmdRegisterNode                      // RegisterNode: add or update a node
	CmdRemoveNode                        // RemoveNode: drop a node from the registry
	CmdSubmitPlan                        // SubmitPlan: add a plan, targets resolved
	CmdMarkDispatched                    // MarkDispatched: record dispatches before they are sent
	CmdRecordResults                     // RecordResults: record what agents reported
	CmdRetrySteps                        // RetrySteps: run failed steps again
)

// Command is implemented by every request struct.
type Command interface {
	CommandType() CommandType
}

// RegisterNode adds a node to the registry or updates it.
type RegisterNode struct {
	Member protocol.Member `json:"member"`
	Now    int64           `json:"now"` // unix ms, stamped by the proposer
}

// RemoveNode drops a node from the registry. Plans that target it keep
// their node-steps; the scheduler fails them as unreachable.
type RemoveNode struct {
	ID string `json:"id"`
}

// SubmitPlan adds a plan. Apply validates the spec and resolves every
// step's target against the registry.
type SubmitPlan struct {
	PlanID string            `json:"planID"`
	Spec   protocol.PlanSpec `json:"spec"`
	Now    int64             `json:"now"`
	// Revision becomes the applied cluster revision when the plan
	// succeeds (protocol.PlanSubmit.Revision).
	Revision *protocol.ClusterRevision `json:"revision,omitempty"`
}

// DispatchEntry says one node-step is about to be sent with this attempt
// by the leader of this term.
type DispatchEntry struct {
	StepID  string `json:"stepID"`
	Attempt int    `json:"attempt"`
	Term    uint64 `json:"term"`
}

// MarkDispatched records a batch of dispatches. The leader commits it
// before it sends any of them.
type MarkDispatched struct {
	Entries []DispatchEntry `json:"entries"`
	Now     int64           `json:"now"`
}

// RecordResults records a batch of step results.
type RecordResults struct {
	Results []protocol.StepResult `json:"results"`
	Term    uint64                `json:"term"` // the proposing leader's term, for the log
	Now     int64                 `json:"now"`
}

// RetrySteps puts failed, interrupted or skipped node-steps of a plan back
// to pending. StepID is empty (all of them), a node-step ID, or a step name
// (all of that step's).
type RetrySteps struct {
	PlanID string `json:"planID"`
	StepID string `json:"stepID,omitempty"`
	Now    int64  `json:"now"`
}

func (RegisterNode) CommandType() CommandType   { return CmdRegisterNode }
func (RemoveNode) CommandType() CommandType     { return CmdRemoveNode }
func (SubmitPlan) CommandType() CommandType     { return CmdSubmitPlan }
func (MarkDispatched) CommandType() CommandType { return CmdMarkDispatched }
func (RecordResults) CommandType() CommandType  { return CmdRecordResults }
func (RetrySteps) CommandType() CommandType     { return CmdRetrySteps }

// commandTypes maps each CommandType to its request struct.
var commandTypes = map[CommandType]reflect.Type{
	CmdRegisterNode:   reflect.TypeFor[RegisterNode](),
	CmdRemoveNode:     reflect.TypeFor[RemoveNode](),
	CmdSubmitPlan:     reflect.TypeFor[SubmitPlan](),
	CmdMarkDispatched: reflect.TypeFor[MarkDispatched](),
	CmdRecordResults:  reflect.TypeFor[RecordResults](),
	CmdRetrySteps:     reflect.TypeFor[RetrySteps](),
}

func (t CommandType) String() string {
	if rt, ok := commandTypes[t]; ok {
		return rt.Name()
	}
	return fmt.Sprintf("CommandType(%d)", uint8(t))
}

// Command decoding errors, matched with errors.Is.
var (
	ErrEmptyCommand   = errors.New("empty command")
	ErrUnknownCommand = errors.New("unknown command type")
	ErrCommandType    = errors.New("request does not match command type")
)

// Encode makes a raft log entry: the type byte, then req as JSON. req is
// the request struct of t, or a pointer to one.
func Encode(t CommandType, req any) ([]byte, error) {
	want, ok := commandTypes[t]
	if !ok {
		return nil, fmt.Errorf("encode command: %w %d", ErrUnknownCommand, uint8(t))
	}
	got := reflect.TypeOf(req)
	if got != nil && got.Kind() == reflect.Pointer {
		got = got.Elem()
	}
	if got != want {
		return nil, fmt.Errorf("encode %s: %w: got %v", t, ErrCommandType, reflect.TypeOf(req))
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", t, err)
	}
	return append([]byte{byte(t)}, body...), nil
}

// EncodeCommand is Encode for a request struct that names its own type.
func EncodeCommand(c Command) ([]byte, error) {
	return Encode(c.CommandType(), c)
}

// DecodeCommand reads a raft log entry made by Encode. The request is
// returned as a pointer to its struct (*RegisterNode, ...).
func DecodeCommand(b []byte) (CommandType, any, error) {
	if len(b) == 0 {
		return 0, nil, ErrEmptyCommand
	}
	t := CommandType(b[0])
	rt, ok := commandTypes[t]
	if !ok {
		return t, nil, fmt.Errorf("%w %d (written by a newer drove?)", ErrUnknownCommand, b[0])
	}
	req := reflect.New(rt).Interface()
	if err := json.Unmarshal(b[1:], req); err != nil {
		return t, nil, fmt.Errorf("decode %s: %w", t, err)
	}
	return t, req, nil
}
