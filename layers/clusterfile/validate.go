package clusterfile

import (
	"fmt"
	"slices"
	"strings"
)

// finish checks the decoded cluster and returns it, or nil when it is
// refused.
func (r *clusterReader) finish() *Cluster {
	c := r.c
	if r.cloud != "" {
		r.errorf(ErrUnsupported, r.cloudLine, r.cloudPath,
			"not supported: cloud machines (%s): drove installs onto machines that already exist; list their IP addresses in the Clusterfile's hosts", r.cloud)
		return nil
	}
	for i, h := range c.Hosts {
		if len(h.Roles) == 0 && len(h.IPs) > 0 {
			r.errorf(ErrInvalid, h.Line, index("spec.hosts", i)+".roles", "missing: give master, node or another role")
		}
	}
	checkHosts(r.diags, r.refs)
	if len(r.errs) == r.errsAtStart && len(c.Masters()) == 0 {
		r.errorf(ErrInvalid, r.hostsLine, r.hostsPath, "no host has role master: a cluster needs at least one")
	}
	return c
}

// checkHosts reports addresses given twice and a mix of IP families.
func checkHosts(d *diags, refs []ipRef) {
	seen := map[string]ipRef{}
	for _, ref := range refs {
		if first, dup := seen[ref.ip]; dup {
			d.errorf(ErrInvalid, ref.line, ref.field, "%s is listed twice (first %s)", ref.ip, where(first))
			continue
		}
		seen[ref.ip] = ref
	}
	if len(refs) == 0 {
		return
	}
	first := refs[0]
	v4 := !strings.Contains(first.ip, ":")
	if i := slices.IndexFunc(refs, func(x ipRef) bool { return !strings.Contains(x.ip, ":") != v4 }); i >= 0 {
		x := refs[i]
		d.errorf(ErrInvalid, x.line, x.field, "%s and %s (%s) are of different IP families: all hosts must be IPv4, or all IPv6", x.ip, first.ip, where(first))
	}
}

// where says where an address was given: "at line 12, spec.hosts[0].ips[0]"
// or "in --masters".
func where(r ipRef) string {
	if r.line > 0 {
		return fmt.Sprintf("at line %d, %s", r.line, r.field)
	}
	return "in " + r.field
}
