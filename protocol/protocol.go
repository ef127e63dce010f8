// Package protocol is drove's wire format: the messages agents, coordinators
// and the CLI exchange over NATS, the subjects they use, and stable error
// codes. It imports no other package of drove and no network library, so
// every part can depend on it.
//
// A frame is one version byte, one MessageType byte, then the message as
// JSON. The MessageType enum is append-only: a number, once used, keeps its
// meaning forever, so mixed-version clusters can talk during upgrades.
package protocol

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
)

// Version is the frame format version this package writes and reads.
const Version byte = 1

// MaxFrame bounds a frame; control messages are small (bulk bytes never
// travel as protocol messages).
const MaxFrame = 1 << 20

// MessageType names the message in a frame. Append new types at the end;
// never renumber or reuse one.
type MessageType uint8

const (
	_                             MessageType = iota
	TypeStepDispatch                          // leader → agent: run a step
	TypeStepResult                            // agent → leader: what a step did
	TypePlanSubmit                            // CLI → coordinator: run a plan
	TypePlanSubmitted                         // coordinator → CLI: the plan's ID
	TypeStatusRequest                         // CLI → coordinator
	TypeStatus                                // coordinator → CLI
	TypePlanListRequest                       // CLI → coordinator
	TypePlanList                              // coordinator → CLI
	TypePlanGetRequest                        // CLI → coordinator
	TypePlanDetail                            // coordinator → CLI
	TypeRetryRequest                          // CLI → coordinator: re-run failed steps
	TypeAck                                   // generic success reply
	TypeError                                 // any reply that failed
	TypeNodeHello                             // agent → coordinator: I am up, here are my facts
	TypeSwarmAnnounce                         // peer → tracker: progress, and who are my peers?
	TypeSwarmPeers                            // tracker → peer
	TypeDistributionStatusRequest             // CLI → tracker
	TypeDistributionStatus                    // tracker → CLI
	TypeBitfields                             // peer → peer (data endpoint): the pieces I hold
	TypeHave                                  // peer → peers (data endpoint): one more piece verified
	TypeClusterGetRequest                     // CLI → coordinator: the applied cluster revision
	TypeClusterRevision                       // coordinator → CLI
)

var typeNames = map[MessageType]string{
	TypeStepDispatch: "StepDispatch", TypeStepResult: "StepResult", TypePlanSubmit: "PlanSubmit",
	TypePlanSubmitted: "PlanSubmitted", TypeStatusRequest: "StatusRequest", TypeStatus: "Status",
	TypePlanListRequest: "PlanListRequest", TypePlanList: "PlanList", TypePlanGetRequest: "PlanGetRequest",
	TypePlanDetail: "PlanDetail", TypeRetryRequest: "RetryRequest", TypeAck: "Ack", TypeError: "Error",
	TypeNodeHello: "NodeHello", TypeSwarmAnnounce: "SwarmAnnounce", TypeSwarmPeers: "SwarmPeers",
	TypeDistributionStatusRequest: "DistributionStatusRequest", TypeDistributionStatus: "DistributionStatus",
	TypeBitfields: "Bitfields", TypeHave: "Have",
	TypeClusterGetRequest: "ClusterGetRequest", TypeClusterRevision: "ClusterRevision",
}

func (t MessageType) String() string {
	if n, ok := typeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("MessageType(%d)", uint8(t))
}

// Message is implemented by every wire message.
type Message interface {
	Type() MessageType
}

// messageOf returns a new zero message of type t.
func messageOf(t MessageType) (Message, bool) {
	switch t {
	case TypeStepDispatch:
		return &StepDispatch{}, true
	case TypeStepResult:
		return &StepResult{}, true
	case TypePlanSubmit:
		return &PlanSubmit{}, true
	case TypePlanSubmitted:
		return &PlanSubmitted{}, true
	case TypeStatusRequest:
		return &StatusRequest{}, true
	case TypeStatus:
		return &Status{}, true
	case TypePlanListRequest:
		return &PlanListRequest{}, true
	case TypePlanList:
		return &PlanList{}, true
	case TypePlanGetRequest:
		return &PlanGetRequest{}, true
	case TypePlanDetail:
		return &PlanDetail{}, true
	case TypeRetryRequest:
		return &RetryRequest{}, true
	case TypeAck:
		return &Ack{}, true
	case TypeError:
		return &Error{}, true
	case TypeNodeHello:
		return &NodeHello{}, true
	case TypeSwarmAnnounce:
		return &SwarmAnnounce{}, true
	case TypeSwarmPeers:
		return &SwarmPeers{}, true
	case TypeDistributionStatusRequest:
		return &DistributionStatusRequest{}, true
	case TypeDistributionStatus:
		return &DistributionStatus{}, true
	case TypeBitfields:
		return &Bitfields{}, true
	case TypeHave:
		return &Have{}, true
	case TypeClusterGetRequest:
		return &ClusterGetRequest{}, true
	case TypeClusterRevision:
		return &ClusterRevision{}, true
	}
	return nil, false
}

// Decoding errors, matched with errors.Is.
var (
	ErrShortFrame  = errors.New("frame too short")
	ErrFrameSize   = errors.New("frame too large")
	ErrVersion     = errors.New("unsupported protocol version")
	ErrUnknownType = errors.New("unknown message type")
)

// Encode frames m.
func Encode(m Message) ([]byte, error) {
	body, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", m.Type(), err)
	}
	if len(body)+2 > MaxFrame {
		return nil, fmt.Errorf("encode %s: %d bytes: %w", m.Type(), len(body)+2, ErrFrameSize)
	}
	return append([]byte{Version, byte(m.Type())}, body...), nil
}

// Decode reads one frame. An Error message decodes to *Error, which callers
// usually turn into a Go error with AsError.
func Decode(b []byte) (Message, error) {
	if len(b) < 2 {
		return nil, ErrShortFrame
	}
	if len(b) > MaxFrame {
		return nil, ErrFrameSize
	}
	if b[0] != Version {
		return nil, fmt.Errorf("%w %d (this drove speaks %d)", ErrVersion, b[0], Version)
	}
	t := MessageType(b[1])
	m, ok := messageOf(t)
	if !ok {
		return nil, fmt.Errorf("%w %d", ErrUnknownType, b[1])
	}
	if err := json.Unmarshal(b[2:], m); err != nil {
		return nil, fmt.Errorf("decode %s: %w", t, err)
	}
	return m, nil
}

// DecodeAs decodes a frame that must hold a message of the same type as
// into (a pointer to a message struct), or an Error, which is returned as a
// Go error.
func DecodeAs(b []byte, into Message) error {
	m, err := Decode(b)
	if err != nil {
		return err
	}
	if e, ok := m.(*Error); ok && into.Type() != TypeError {
		return e
	}
	if m.Type() != into.Type() {
		return fmt.Errorf("got %s, want %s", m.Type(), into.Type())
	}
	reflect.ValueOf(into).Elem().Set(reflect.ValueOf(m).Elem())
	return nil
}
