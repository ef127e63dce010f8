// Package sshpush puts a drove agent onto a host that has none, over SSH.
//
// It is the only place where drove speaks SSH: `drove run` uses it with
// sealer's flags (-u, -p, --pk, --pk-passwd, --port) to upload the drove
// binary and a token, and to start the agent under systemd or, where there
// is no systemd, as a detached process. Everything after that goes through
// the agents.
//
// Host keys are trusted on first use and recorded in a known_hosts file; a
// changed key is refused. A user other than root runs every command through
// sudo, fed the SSH password when there is one.
package sshpush
