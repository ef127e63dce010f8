package sshpush

import (
	"errors"
	"strings"
)

// Sentinel errors; match them with errors.Is.
var (
	// ErrAuthRejected: the server accepted none of the credentials given.
	// The error is an *AuthError that names the methods tried.
	ErrAuthRejected = errors.New("ssh authentication rejected")
	// ErrHostKeyChanged: the host presents a key other than the one
	// recorded in the known_hosts file.
	ErrHostKeyChanged = errors.New("ssh host key changed")
	// ErrNoCredentials: the Target has neither a password nor a key file.
	ErrNoCredentials = errors.New("no ssh password or private key given")
	// ErrSudo: a user other than root could not become root with sudo.
	ErrSudo = errors.New("sudo failed")
	// ErrChecksumMismatch: an uploaded file's remote sha256 differs from
	// the bytes sent.
	ErrChecksumMismatch = errors.New("remote checksum mismatch")
	// ErrAgentNotRunning: the pushed agent was started but is not alive.
	ErrAgentNotRunning = errors.New("agent is not running")
)

// AuthError says which authentication methods a server rejected, e.g.
// "ssh root@10.0.0.5:22: password rejected". It matches ErrAuthRejected.
type AuthError struct {
	// Dest is user@host:port.
	Dest string
	// Methods are the methods that were tried, in order: "public key
	// FILE", "password", "keyboard-interactive".
	Methods []string
}

func (e *AuthError) Error() string {
	if len(e.Methods) == 0 {
		return "ssh " + e.Dest + ": the server accepts none of the offered authentication methods"
	}
	return "ssh " + e.Dest + ": " + strings.Join(e.Methods, " and ") + " rejected"
}

// Is makes errors.Is(err, ErrAuthRejected) true.
func (e *AuthError) Is(target error) bool { return target == ErrAuthRejected }
