// Package agent will hold the node daemon: gossip membership, the chunk swarm
// peer, the step executor with its durable journal, and the node-local mirror.
// It talks to the coordinator only through protocol messages over NATS.
package agent
