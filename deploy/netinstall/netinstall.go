// Package netinstall holds the network install script coordinators serve
// at GET /install.sh (install.sh beside this file, embedded) and fills in
// the cluster it installs into: the cluster CA the script pins for its
// downloads, the coordinators to download the drove binary from, and the
// gossip addresses the new agent joins.
//
// install.sh is a working script as it stands: its parameter block is
// empty, and it says so and stops. Render replaces that block.
package netinstall

import (
	_ "embed"
	"errors"
	"fmt"
	"io"
	"strings"
)

//go:embed install.sh
var script string

// The lines around the parameter block in install.sh.
const (
	beginParams = "# BEGIN drove-params"
	endParams   = "# END drove-params\n"
)

// ErrBadAddress: an address to bake into the script has characters no
// host:port has (they could break the script's word lists).
var ErrBadAddress = errors.New("not a host or host:port")

// Params are what a coordinator fills in.
type Params struct {
	// CAPEM is the cluster CA certificate (clusterauth.CACertPEM): the
	// script trusts only it for every download.
	CAPEM string
	// Servers are the coordinators' install API addresses (host:port,
	// IPv6 hosts in brackets), tried in order for the binary.
	Servers []string
	// Join are the gossip addresses the new agent joins (drove agent
	// --join).
	Join []string
	// Source names who served the script, for a comment in it.
	Source string
}

// Script returns install.sh as committed, parameters empty.
func Script() string { return script }

// Render writes install.sh with p filled in.
func Render(w io.Writer, p Params) error {
	if strings.TrimSpace(p.CAPEM) == "" {
		return errors.New("render install.sh: no CA certificate")
	}
	if len(p.Servers) == 0 {
		return errors.New("render install.sh: no coordinator to download from")
	}
	for _, list := range [][]string{p.Servers, p.Join} {
		for _, a := range list {
			if !validAddress(a) {
				return fmt.Errorf("render install.sh: address %q: %w", a, ErrBadAddress)
			}
		}
	}
	head, rest, ok := strings.Cut(script, beginParams)
	if !ok {
		return errors.New("render install.sh: the embedded script has no " + beginParams + " line")
	}
	_, tail, ok := strings.Cut(rest, endParams)
	if !ok {
		return errors.New("render install.sh: the embedded script has no " + strings.TrimSpace(endParams) + " line")
	}
	var b strings.Builder
	b.WriteString(head)
	fmt.Fprintf(&b, "%s (served by %s)\n", beginParams, oneLine(p.Source))
	fmt.Fprintf(&b, "DROVE_CA=%s\n", Quote(strings.TrimSpace(p.CAPEM)))
	fmt.Fprintf(&b, "DROVE_JOIN=%s\n", Quote(strings.Join(p.Join, ",")))
	fmt.Fprintf(&b, "DROVE_SERVERS=%s\n", Quote(strings.Join(p.Servers, " ")))
	b.WriteString(endParams)
	b.WriteString(tail)
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("render install.sh: %w", err)
	}
	return nil
}

// Quote makes s one single-quoted sh word that expands to exactly s.
func Quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// validAddress: a host or host:port of letters, digits and . - _ : [ ].
func validAddress(a string) bool {
	if a == "" || len(a) > 300 {
		return false
	}
	for i := 0; i < len(a); i++ {
		c := a[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(".-_:[]", c) >= 0) {
			return false
		}
	}
	return true
}

// oneLine keeps a comment on one line.
func oneLine(s string) string {
	if s == "" {
		return "a drove coordinator"
	}
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, s)
}
