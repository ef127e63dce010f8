package clusterfile

import (
	"strings"

	"go.yaml.in/yaml/v3"
)

// specV1 decodes the spec of a v1 Cluster (sealer.aliyun.com/v1alpha1 and
// its aliases) into the v2 form: masters.ipList and nodes.ipList become
// hosts with roles master and node; network and certSANS become the env
// keys PodCIDR, SvcCIDR and CertSANs.
func (r *clusterReader) specV1(spec *yaml.Node, field string) {
	c := r.c
	var podCIDR, svcCIDR string
	var sans []string
	var podLine, svcLine, sansLine int
	r.hostsLine, r.hostsPath = r.line(spec), join(field, "masters.ipList")
	var masters, nodes *yaml.Node
	r.fields(spec, field, map[string]handler{
		"image":    r.setStr(&c.Image),
		"runtime":  r.runtime,
		"env":      func(v *yaml.Node, p string) { c.Env = r.env(v, p) },
		"provider": r.provider,
		"ssh":      func(v *yaml.Node, p string) { r.ssh(v, p, &c.SSH) },
		"network": func(v *yaml.Node, p string) {
			r.fields(v, p, map[string]handler{
				"podCIDR":   func(v *yaml.Node, p string) { podCIDR, podLine = r.cidr(v, p), r.line(v) },
				"svcCIDR":   func(v *yaml.Node, p string) { svcCIDR, svcLine = r.cidr(v, p), r.line(v) },
				"interface": nil, "cniName": nil, "withoutCNI": nil,
			})
		},
		"certSANS": func(v *yaml.Node, p string) {
			sansLine = r.line(r.resolve(v))
			sans, _ = r.strList(v, p)
		},
		"containerRuntime": func(v *yaml.Node, p string) {
			r.fields(v, p, map[string]handler{"type": r.criType})
		},
		"masters": func(v *yaml.Node, p string) { masters = v },
		"nodes":   func(v *yaml.Node, p string) { nodes = v },
	})
	r.machinesV1(masters, join(field, "masters"), RoleMaster)
	r.machinesV1(nodes, join(field, "nodes"), RoleNode)
	r.registry(nil, "")

	keys := EnvMap(c.Env)
	add := func(key, value string, line int, from string) {
		if value == "" {
			return
		}
		if _, set := keys[key]; set {
			r.warnf(line, from, "ignored: spec.env sets %s", key)
			return
		}
		c.Env = append(c.Env, key+"="+value)
	}
	add("PodCIDR", podCIDR, podLine, join(field, "network.podCIDR"))
	add("SvcCIDR", svcCIDR, svcLine, join(field, "network.svcCIDR"))
	if _, set := keys["CertSANs"]; set && len(sans) > 0 {
		r.warnf(sansLine, join(field, "certSANS"), "ignored: spec.env sets CertSANs")
	} else {
		for _, s := range sans {
			c.Env = append(c.Env, "CertSANs="+strings.TrimSpace(s))
		}
	}
}

// machinesV1 reads spec.masters or spec.nodes of a v1 Cluster.
func (r *clusterReader) machinesV1(v *yaml.Node, p, role string) {
	if v == nil {
		return
	}
	var count string
	var countNode, ipsNode *yaml.Node
	h := Host{Roles: []string{role}}
	r.fields(v, p, map[string]handler{
		"ipList": func(v *yaml.Node, p string) {
			ipsNode = r.resolve(v)
			h.IPs = r.ips(v, p)
		},
		"count": func(v *yaml.Node, p string) {
			countNode = v
			count, _ = r.str(v, p)
		},
		// sealer's cloud machine sizes.
		"cpu": nil, "memory": nil, "systemDisk": nil, "dataDisks": nil,
	})
	count = strings.TrimSpace(count)
	if len(h.IPs) == 0 {
		if count != "" && count != "0" {
			r.markCloud(join(p, "count")+" "+count+" without ipList", r.line(countNode), join(p, "count"))
		}
		return
	}
	h.Line = r.line(ipsNode)
	if role == RoleMaster {
		r.hostsLine, r.hostsPath = h.Line, join(p, "ipList")
	}
	r.c.Hosts = append(r.c.Hosts, h)
}

// cidr reads one CIDR or a "v6,v4" pair (dual stack).
func (r *clusterReader) cidr(v *yaml.Node, p string) string {
	s, ok := r.str(v, p)
	if !ok {
		return ""
	}
	s = strings.TrimSpace(s)
	if msg := checkCIDRs(s); msg != "" {
		r.errorf(ErrInvalid, r.line(v), p, "%s", msg)
		return ""
	}
	return s
}
