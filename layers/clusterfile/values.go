package clusterfile

import (
	"fmt"
	"net/netip"
	"strings"
)

// reservedEnv are env keys drove (like sealer) computes from the registry
// and container runtime settings; a Cluster's own values for them are
// dropped.
var reservedEnv = []string{
	"LocalRegistryDomain", "LocalRegistryPort", "LocalRegistryURL",
	"ExternalRegistryDomain", "ExternalRegistryPort", "ExternalRegistryURL",
	"RegistryDomain", "RegistryPort", "RegistryURL",
	"ContainerRuntime",
}

// checkEnv returns what is wrong with a KEY=VALUE entry, or "".
func checkEnv(s string) string {
	k, _, ok := strings.Cut(s, "=")
	if !ok || k == "" || strings.ContainsAny(k, " \t\r\n") {
		return fmt.Sprintf("%q is not KEY=VALUE", s)
	}
	return ""
}

// checkCIDRs returns what is wrong with a CIDR or a "v6,v4" pair, or "".
func checkCIDRs(s string) string {
	parts := strings.Split(s, ",")
	if s == "" || len(parts) > 2 {
		return fmt.Sprintf("%q is not a CIDR such as 100.64.0.0/10 (or two, comma-separated, for dual stack)", s)
	}
	for _, p := range parts {
		if _, err := netip.ParsePrefix(strings.TrimSpace(p)); err != nil {
			return fmt.Sprintf("%q is not a CIDR such as 100.64.0.0/10", strings.TrimSpace(p))
		}
	}
	return ""
}

// isName reports whether s is a plain name: letters, digits, '.', '_',
// '-', starting with a letter or digit.
func isName(s string) bool {
	if s == "" || len(s) > 253 || !isAlnum(s[0]) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && c != '.' && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// isHostname reports whether s is a DNS name (leniently: letters, digits,
// '-', '_', dot-separated) or an IP address.
func isHostname(s string) bool {
	if _, err := netip.ParseAddr(s); err == nil {
		return true
	}
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			if c := label[i]; !isAlnum(c) && c != '-' && c != '_' {
				return false
			}
		}
	}
	return true
}

// checkLabel returns what is wrong with a Kubernetes node label, or "".
func checkLabel(key, value string) string {
	if msg := checkLabelKey(key); msg != "" {
		return msg
	}
	if value != "" && !isLabelName(value) {
		return fmt.Sprintf("%q is not a label value: at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit", value)
	}
	return ""
}

func checkLabelKey(key string) string {
	name := key
	if prefix, n, ok := strings.Cut(key, "/"); ok {
		if prefix == "" || !isHostname(prefix) {
			return fmt.Sprintf("%q is not a label key: the prefix before '/' must be a DNS name", key)
		}
		name = n
	}
	if !isLabelName(name) {
		return fmt.Sprintf("%q is not a label key: the name must be at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit", key)
	}
	return ""
}

func isLabelName(s string) bool {
	return len(s) <= 63 && isName(s) && isAlnum(s[len(s)-1])
}

// Taint is a node taint from a host's taints, in sealer's notation.
type Taint struct {
	Key    string
	Value  string
	Effect string // NoSchedule, PreferNoSchedule or NoExecute; empty with Remove: every effect
	Remove bool   // written with a trailing '-': remove the taint
}

// ParseTaint reads one taint: "key=value:Effect", "key:Effect",
// "key=:Effect" add a taint; "key:Effect-" and "key-" remove taints.
// Errors wrap ErrInvalid.
func ParseTaint(s string) (Taint, error) {
	s = strings.TrimSpace(s)
	t := Taint{}
	body, remove := strings.CutSuffix(s, "-")
	t.Remove = remove
	keyValue, effect, hasEffect := strings.Cut(body, ":")
	bad := func(why string) (Taint, error) {
		return Taint{}, &Error{Msg: fmt.Sprintf("%q is not a taint (want key=value:Effect, key:Effect, or key:Effect- or key- to remove): %s", s, why), Err: ErrInvalid}
	}
	switch {
	case hasEffect:
		switch effect {
		case "NoSchedule", "PreferNoSchedule", "NoExecute":
			t.Effect = effect
		default:
			return bad(fmt.Sprintf("the effect %q is not NoSchedule, PreferNoSchedule or NoExecute", effect))
		}
	case !remove:
		return bad("no effect")
	}
	key, value, hasValue := strings.Cut(keyValue, "=")
	if hasValue && !hasEffect {
		return bad("no effect")
	}
	if msg := checkLabelKey(key); msg != "" {
		return bad("bad key")
	}
	if value != "" && !isLabelName(value) {
		return bad("bad value")
	}
	t.Key, t.Value = key, value
	return t, nil
}
