package clusterauth

import (
	"bytes"
	"encoding/hex"
	"testing"
)

const pinnedToken = "drove-pinned-test-token-0001"

// TestDerivePinned pins the derivations: a change here splits every
// existing cluster in two, so it must be deliberate. The gossip key was
// checked against an independent HKDF-SHA256 (RFC 5869) implementation.
func TestDerivePinned(t *testing.T) {
	if got, want := hex.EncodeToString(GossipKey(pinnedToken)),
		"8f94c0177a60a8b6c4d4b71b2a0d40392d6a3757710299922afd94ccea6f0ad4"; got != want {
		t.Errorf("GossipKey = %s, want %s", got, want)
	}
	if got, want := hex.EncodeToString(handshakeKey(pinnedToken)),
		"4303bf03844e0b275928078f5ef765ae6e52a6ac0e366ac511594c851602ee23"; got != want {
		t.Errorf("handshakeKey = %s, want %s", got, want)
	}
	tests := []struct {
		name       string
		fn         func(string) (string, string)
		user, pass string
	}{
		{"coordinator", NATSCoordinator, "drove-coordinator", "rFl7r6RBT93S4y_GM6S1NkTwSkj_PPpNSqU1j4318ZI"},
		{"agent", NATSAgent, "drove-agent", "ai27n6aJSSvNjTJXahhLvjTSXcs0DWPSnGXmK_BwnSs"},
		{"route", NATSRoute, "drove-route", "2t41RI1Qn2B2HtyfB459LSaQc-swJQwSOJVcK6kw6V8"},
		// Checked against an independent HKDF-SHA256 (Python hmac/hashlib).
		{"data", NATSData, "drove-data", "gaXlQbP7qeq_vOwXzzL_rjlpXAybOZMkUW292jJDlYc"},
	}
	for _, tt := range tests {
		user, pass := tt.fn(pinnedToken)
		if user != tt.user || pass != tt.pass {
			t.Errorf("%s = (%q, %q), want (%q, %q)", tt.name, user, pass, tt.user, tt.pass)
		}
	}
}

func TestDeriveStableAndDistinct(t *testing.T) {
	other := pinnedToken + "x"
	if !bytes.Equal(GossipKey(pinnedToken), GossipKey(pinnedToken)) {
		t.Error("GossipKey is not stable")
	}
	if len(GossipKey(pinnedToken)) != GossipKeySize {
		t.Errorf("GossipKey has %d bytes, want %d", len(GossipKey(pinnedToken)), GossipKeySize)
	}
	if bytes.Equal(GossipKey(pinnedToken), GossipKey(other)) {
		t.Error("different tokens give the same gossip key")
	}
	secrets := map[string]string{}
	add := func(name, v string) {
		for n, s := range secrets {
			if s == v {
				t.Errorf("%s and %s derive the same secret", n, name)
			}
		}
		secrets[name] = v
	}
	for _, tok := range []string{pinnedToken, other} {
		add(tok+" gossip", string(GossipKey(tok)))
		add(tok+" handshake", string(handshakeKey(tok)))
		_, p := NATSCoordinator(tok)
		add(tok+" coordinator", p)
		_, p = NATSAgent(tok)
		add(tok+" agent", p)
		_, p = NATSRoute(tok)
		add(tok+" route", p)
		_, p = NATSData(tok)
		add(tok+" data", p)
	}
	users := map[string]bool{}
	for _, fn := range []func(string) (string, string){NATSCoordinator, NATSAgent, NATSRoute, NATSData} {
		u, _ := fn(pinnedToken)
		if users[u] {
			t.Errorf("user name %q used twice", u)
		}
		users[u] = true
	}
}
