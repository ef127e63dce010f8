package registry

import (
	"net"
	"strings"
)

// IsLoopback reports whether a registry host ("host", "host:port",
// "[v6]:port") is on a loopback address: 127.0.0.0/8, ::1, or localhost
// (including *.localhost). Such registries are reached over plain HTTP, and
// without TLS verification, with no flag, as docker does.
func IsLoopback(host string) bool {
	h := host
	if hp, _, err := net.SplitHostPort(host); err == nil {
		h = hp
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	h = strings.ToLower(h)
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
