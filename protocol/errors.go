package protocol

import "fmt"

// ErrorCode is a stable, machine-readable reason carried on the wire. Go
// error strings never cross the wire as the thing callers match on.
type ErrorCode string

// Error codes. Append; never change the meaning of one.
const (
	CodeInternal        ErrorCode = "internal"
	CodeBadRequest      ErrorCode = "bad_request"
	CodeNotLeader       ErrorCode = "not_leader"
	CodeNoLeader        ErrorCode = "no_leader"
	CodeStaleTerm       ErrorCode = "stale_term"
	CodeNotFound        ErrorCode = "not_found"
	CodeNoNodes         ErrorCode = "no_nodes"
	CodeNodeUnreachable ErrorCode = "node_unreachable"
	CodeInterrupted     ErrorCode = "interrupted"
	CodeTimeout         ErrorCode = "timeout"
	CodeUnknownAction   ErrorCode = "unknown_action"
	CodeUnauthorized    ErrorCode = "unauthorized"
	CodeWrongNode       ErrorCode = "wrong_node"
	CodeBusy            ErrorCode = "busy" // a swarm peer is at its upload slots: ask again shortly, or elsewhere
)

// Error is a failed reply. It is also a Go error.
type Error struct {
	Code    ErrorCode `json:"code"`
	Message string    `json:"message"`
	Leader  string    `json:"leader,omitempty"` // with not_leader: who is
}

func (*Error) Type() MessageType { return TypeError }

func (e *Error) Error() string {
	if e.Message == "" {
		return string(e.Code)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// Is makes errors.Is(err, &Error{Code: c}) match by code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Errorf builds an Error with a code.
func Errorf(code ErrorCode, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}
