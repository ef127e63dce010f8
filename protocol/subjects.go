package protocol

import "strings"

// NATS subjects. All start with Prefix so one permission covers drove.
const (
	Prefix = "drove.v1."
	// APISubject takes CLI requests; every coordinator listens in the queue
	// group APIQueue and forwards to the leader when it is not the leader.
	APISubject = Prefix + "api"
	APIQueue   = "coordinators"
	// HelloSubject takes agents' NodeHello announcements.
	HelloSubject = Prefix + "hello"
)

// NodeStepSubject is where the leader sends StepDispatch to node id; the
// agent replies with StepResult.
func NodeStepSubject(id string) string { return Prefix + "node." + id + ".step" }

// CoordinatorSubject is where a coordinator takes requests forwarded to it.
func CoordinatorSubject(id string) string { return Prefix + "coord." + id + ".api" }

// ValidID reports whether id can be used in a subject: no dots, spaces or
// wildcards.
func ValidID(id string) bool {
	return id != "" && len(id) <= 128 && !strings.ContainsAny(id, ". *>\t\r\n")
}
