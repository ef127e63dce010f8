package clusterauth

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

func TestGenerateToken(t *testing.T) {
	a, err := GenerateToken()
	if err != nil {
		t.Fatal(err)
	}
	b, err := GenerateToken()
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Fatalf("two generated tokens are equal: %q", a)
	}
	for _, tok := range []string{a, b} {
		if !strings.HasPrefix(tok, TokenPrefix) {
			t.Errorf("token %q lacks prefix %q", tok, TokenPrefix)
		}
		raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(tok, TokenPrefix))
		if err != nil {
			t.Errorf("token %q is not unpadded base64url after the prefix: %v", tok, err)
		}
		if len(raw) != 32 {
			t.Errorf("token %q holds %d random bytes, want 32", tok, len(raw))
		}
		if err := ValidateToken(tok); err != nil {
			t.Errorf("generated token rejected: %v", err)
		}
	}
}

func TestValidateToken(t *testing.T) {
	tests := []struct {
		token string
		ok    bool
	}{
		{"", false},
		{"short", false},
		{"fifteen-chars-x", false},
		{"sixteen-chars-xx", true},
		{"drove-a-much-longer-hand-written-token", true},
	}
	for _, tt := range tests {
		err := ValidateToken(tt.token)
		if (err == nil) != tt.ok {
			t.Errorf("ValidateToken(%q) = %v, want ok=%v", tt.token, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrTokenTooShort) {
			t.Errorf("ValidateToken(%q) = %v, want ErrTokenTooShort", tt.token, err)
		}
	}
}

func TestCheckToken(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"drove-abcdefghijklmnop\n", "drove-abcdefghijklmnop", true},
		{"  sixteen-chars-xx\t", "sixteen-chars-xx", true},
		{"  fifteen-chars-x  ", "", false},
		{"\n", "", false},
	}
	for _, tt := range tests {
		got, err := CheckToken(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("CheckToken(%q) = %q, %v; want %q, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrTokenTooShort) {
			t.Errorf("CheckToken(%q) = %v, want ErrTokenTooShort", tt.in, err)
		}
	}
}
