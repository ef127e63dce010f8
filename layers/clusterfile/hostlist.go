package clusterfile

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// MaxRange is the most addresses one IP range may stand for.
const MaxRange = 65536

// MaxHosts is the most host addresses one cluster may list.
const MaxHosts = 65536

// ParseHostList reads a host list as given to --masters and --nodes or in a
// Clusterfile's ips: IP addresses and IPv4 ranges, separated by commas.
//
//	10.0.0.1
//	10.0.0.1,10.0.0.2,fd00::5
//	10.0.0.1-10.0.0.9          (both ends included)
//	10.0.0.1-10.0.0.3,10.0.1.7
//
// As in sealer, both ends of a range are full addresses ("10.0.0.1-9" is
// refused); ranges are IPv4 only and at most MaxRange long. IPv6 addresses
// are accepted one by one; IPv4-mapped IPv6 addresses become IPv4. Empty
// entries (a trailing comma) are skipped. Addresses come back in canonical
// form, in the order given, duplicates kept. Errors wrap ErrInvalid.
func ParseHostList(s string) ([]string, error) {
	ips, msg := parseHostList(s, MaxHosts)
	if msg != "" {
		return nil, &Error{Msg: msg, Err: ErrInvalid}
	}
	return ips, nil
}

// parseHostList returns the addresses of s, or a message saying what is
// wrong. It refuses to produce more than limit addresses.
func parseHostList(s string, limit int) ([]string, string) {
	var out []string
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		from, to, isRange := strings.Cut(item, "-")
		if !isRange {
			ip, msg := parseIP(item)
			if msg != "" {
				return nil, msg
			}
			if len(out) >= limit {
				return nil, fmt.Sprintf("more than %d hosts", MaxHosts)
			}
			out = append(out, ip.String())
			continue
		}
		ips, msg := expandRange(item, strings.TrimSpace(from), strings.TrimSpace(to), limit-len(out))
		if msg != "" {
			return nil, msg
		}
		out = append(out, ips...)
	}
	return out, ""
}

// parseIP reads one address; zones are refused.
func parseIP(s string) (netip.Addr, string) {
	ip, err := netip.ParseAddr(s)
	if err != nil || ip.Zone() != "" {
		return netip.Addr{}, fmt.Sprintf("%q is not an IP address", s)
	}
	return ip.Unmap(), ""
}

func expandRange(item, from, to string, limit int) ([]string, string) {
	if strings.Contains(to, "-") {
		return nil, fmt.Sprintf("%q is not an IP range: want FIRST-LAST, e.g. 10.0.0.1-10.0.0.9", item)
	}
	first, msg := parseIP(from)
	if msg != "" {
		return nil, fmt.Sprintf("%q: range start %s", item, msg)
	}
	last, msg := parseIP(to)
	if msg != "" {
		if _, err := strconv.Atoi(to); err == nil && first.Is4() {
			p := first.As4()
			return nil, fmt.Sprintf("%q: the range end must be a full address, e.g. %d.%d.%d.%s", item, p[0], p[1], p[2], to)
		}
		return nil, fmt.Sprintf("%q: range end %s", item, msg)
	}
	if !first.Is4() || !last.Is4() {
		return nil, fmt.Sprintf("%q: IP ranges must be IPv4; list IPv6 addresses one by one", item)
	}
	a, b := first.As4(), last.As4()
	lo, hi := binary.BigEndian.Uint32(a[:]), binary.BigEndian.Uint32(b[:])
	if lo > hi {
		return nil, fmt.Sprintf("%q: the range runs backwards", item)
	}
	n := uint64(hi) - uint64(lo) + 1
	if n > MaxRange {
		return nil, fmt.Sprintf("%q: the range has %d addresses; at most %d", item, n, MaxRange)
	}
	if n > uint64(max(limit, 0)) {
		return nil, fmt.Sprintf("more than %d hosts", MaxHosts)
	}
	out := make([]string, 0, n)
	for v := uint64(lo); v <= uint64(hi); v++ {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], uint32(v))
		out = append(out, netip.AddrFrom4(b).String())
	}
	return out, ""
}
