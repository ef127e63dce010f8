package clusterauth

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"

	"golang.org/x/crypto/hkdf"
)

// hkdfSalt is a fixed, public salt: it separates drove's derivations from
// any other use of the same token string.
const hkdfSalt = "drove cluster token v1"

// Info strings, one per derived secret. Never change one: every node of a
// cluster must derive the same bytes from the same token.
const (
	infoGossip          = "drove/v1 memberlist aes-256 key"
	infoHandshake       = "drove/v1 transport handshake hmac key"
	infoNATSCoordinator = "drove/v1 nats coordinator password"
	infoNATSAgent       = "drove/v1 nats agent password"
	infoNATSRoute       = "drove/v1 nats route password"
	infoNATSData        = "drove nats data v1"
)

// NATS user names. They are not secret; the passwords are.
const (
	NATSCoordinatorUser = "drove-coordinator"
	NATSAgentUser       = "drove-agent"
	NATSRouteUser       = "drove-route"
	NATSDataUser        = "drove-data"
)

// GossipKeySize is the length of GossipKey's result: an AES-256 key.
const GossipKeySize = 32

// derive returns n bytes of HKDF-SHA256(token, salt, info).
func derive(token, info string, n int) []byte {
	out := make([]byte, n)
	r := hkdf.New(sha256.New, []byte(token), []byte(hkdfSalt), []byte(info))
	if _, err := io.ReadFull(r, out); err != nil {
		// HKDF-SHA256 yields up to 255*32 bytes; asking for fewer cannot fail.
		panic(fmt.Sprintf("clusterauth: hkdf read %d bytes: %v", n, err))
	}
	return out
}

// password derives a printable, URL-safe password (43 characters).
func password(token, info string) string {
	return base64.RawURLEncoding.EncodeToString(derive(token, info, 32))
}

// GossipKey returns the 32-byte key for memberlist's AES-256 keyring
// (memberlist.Config.SecretKey).
func GossipKey(token string) []byte { return derive(token, infoGossip, GossipKeySize) }

// handshakeKey is the HMAC key Handshake proves knowledge of.
func handshakeKey(token string) []byte { return derive(token, infoHandshake, sha256.Size) }

// NATSCoordinator returns the NATS credentials of coordinators, which may
// publish and subscribe on every subject.
func NATSCoordinator(token string) (user, pass string) {
	return NATSCoordinatorUser, password(token, infoNATSCoordinator)
}

// NATSAgent returns the NATS credentials agents use on the coordinators'
// servers; the servers restrict what this user may publish.
func NATSAgent(token string) (user, pass string) {
	return NATSAgentUser, password(token, infoNATSAgent)
}

// NATSRoute returns the credentials coordinators' NATS servers use on the
// routes between them.
func NATSRoute(token string) (user, pass string) {
	return NATSRouteUser, password(token, infoNATSRoute)
}

// NATSData returns the credentials every agent uses on the other agents'
// data endpoints (their small NATS servers that serve image pieces). All
// agents share this user; it may touch only swarm subjects and inboxes.
func NATSData(token string) (user, pass string) {
	return NATSDataUser, password(token, infoNATSData)
}
