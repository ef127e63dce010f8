// Package coordinator will hold the raft-replicated state machine (desired
// state, plans, step results), the leader's dispatcher and the runtimes' plan
// builders. It talks to agents only through protocol messages over NATS.
package coordinator
