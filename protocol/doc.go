// Package protocol will hold drove's wire messages, NATS subjects, versioning
// and stable error codes. It imports no other package of drove and none of
// raft, memberlist, NATS or cobra, so every part can depend on it.
package protocol
