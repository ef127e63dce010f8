// Package clusterauth turns the cluster join token — the one secret an
// operator hands to every drove node — into the keys and credentials the
// parts of drove use: memberlist's gossip encryption key, NATS user and
// route passwords, and a mutual challenge–response handshake that guards
// raft's TCP transport.
//
// Every secret is derived from the token with HKDF-SHA256 under a distinct
// info string, so learning one derived secret (a NATS agent password read
// from a node's config, say) reveals neither the token nor any other secret.
package clusterauth

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// TokenPrefix starts every token GenerateToken makes. Tokens an operator
// writes by hand need not carry it.
const TokenPrefix = "drove-"

// MinTokenLen is the shortest token ValidateToken accepts, in bytes.
const MinTokenLen = 16

// tokenEntropy is how many random bytes GenerateToken draws.
const tokenEntropy = 32

// ErrTokenTooShort is returned for a token shorter than MinTokenLen.
var ErrTokenTooShort = errors.New("cluster token too short")

// GenerateToken returns a new random cluster token: TokenPrefix followed by
// 32 random bytes in unpadded base64url.
func GenerateToken() (string, error) {
	b := make([]byte, tokenEntropy)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate cluster token: %w", err)
	}
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(b), nil
}

// ValidateToken reports whether token may be used as a cluster token. The
// derivation functions do not check; everything that starts a network
// service with a token (Handshake, the gossip layer, the NATS servers)
// calls ValidateToken first.
func ValidateToken(token string) error {
	if len(token) < MinTokenLen {
		return fmt.Errorf("%w: %d characters, need at least %d; use a generated token",
			ErrTokenTooShort, len(token), MinTokenLen)
	}
	return nil
}

// CheckToken normalises a token as an operator supplies it (from a flag, an
// environment variable or a file with a trailing newline: surrounding white
// space is removed) and validates it. Use the returned token everywhere.
func CheckToken(token string) (string, error) {
	token = strings.TrimSpace(token)
	if err := ValidateToken(token); err != nil {
		return "", err
	}
	return token, nil
}
