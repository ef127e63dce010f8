package render

import (
	"fmt"
	"net/netip"
	"strings"
)

// Derive returns a copy of env with sealer's computed keys:
//
//   - PodCIDR and SvcCIDR default to DefaultPodCIDR and DefaultSvcCIDR;
//   - KubeSvcIP and DNSSvcIP are always computed as the 1st and 10th
//     address of SvcCIDR (sealer strips values the user set, so a changed
//     SvcCIDR cannot leave them stale); a dual-stack SvcCIDR ("v6,v4")
//     uses its first family;
//   - IPvsVIPv4 defaults to DefaultIPvsVIPv4, and IPvsVIPv6 to
//     DefaultIPvsVIPv6 when HostIPFamily is IPv6.
//
// A SvcCIDR that does not parse, or is too small to hold a 10th address, is
// an error naming it.
func Derive(env Env) (Env, error) {
	out := Merge(env)
	setDefault(out, KeyPodCIDR, DefaultPodCIDR)
	setDefault(out, KeySvcCIDR, DefaultSvcCIDR)
	setDefault(out, KeyIPvsVIPv4, DefaultIPvsVIPv4)
	if out.Get(KeyHostIPFamily) == "IPv6" {
		setDefault(out, KeyIPvsVIPv6, DefaultIPvsVIPv6)
	}

	svc := strings.Join(out[KeySvcCIDR], ",")
	first, _, _ := strings.Cut(svc, ",")
	prefix, err := netip.ParsePrefix(strings.TrimSpace(first))
	if err != nil {
		return nil, fmt.Errorf("derive %s and %s from %s=%q: %w", KeyKubeSvcIP, KeyDNSSvcIP, KeySvcCIDR, svc, err)
	}
	kube, err := indexAddr(prefix, 1)
	if err != nil {
		return nil, fmt.Errorf("derive %s from %s=%q: %w", KeyKubeSvcIP, KeySvcCIDR, svc, err)
	}
	dns, err := indexAddr(prefix, 10)
	if err != nil {
		return nil, fmt.Errorf("derive %s from %s=%q: %w", KeyDNSSvcIP, KeySvcCIDR, svc, err)
	}
	out[KeyKubeSvcIP] = []string{kube.String()}
	out[KeyDNSSvcIP] = []string{dns.String()}
	return out, nil
}

// setDefault sets key to value when env has no non-empty value for it.
func setDefault(env Env, key, value string) {
	if strings.TrimSpace(env.Get(key)) == "" {
		env[key] = []string{value}
	}
}

// indexAddr is the n-th address after the network address of p.
func indexAddr(p netip.Prefix, n int) (netip.Addr, error) {
	p = p.Masked()
	a := p.Addr()
	for range n {
		a = a.Next()
		if !a.IsValid() || !p.Contains(a) {
			return netip.Addr{}, fmt.Errorf("subnet %s has no address number %d", p, n)
		}
	}
	return a, nil
}
