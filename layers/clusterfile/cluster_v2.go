package clusterfile

import (
	"path"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// clusterReader decodes the spec of one Cluster document.
type clusterReader struct {
	*walker
	c *Cluster
	// refs records where each host address was given, for validation.
	refs []ipRef
	// cloud is set when the document asks for cloud machines.
	cloud     string
	cloudLine int
	cloudPath string
	// hostsLine and hostsPath locate the host list for "no master".
	hostsLine int
	hostsPath string
	// errsAtStart counts the errors reported before this document.
	errsAtStart int
}

// ipRef is one host address and where it was written.
type ipRef struct {
	ip    string
	line  int
	field string
}

func newClusterReader(w *walker, line int) *clusterReader {
	return &clusterReader{
		walker:      w,
		c:           &Cluster{Line: line, SSH: SSH{User: DefaultSSHUser, Port: DefaultSSHPort}},
		errsAtStart: len(w.errs),
	}
}

// specV2 decodes the spec of a sealer.io/v2 (or sealer.cloud/v2) Cluster.
func (r *clusterReader) specV2(spec *yaml.Node, field string) {
	c := r.c
	r.hostsLine, r.hostsPath = r.line(spec), join(field, "hosts")
	var registry *yaml.Node
	var registryPath string
	r.fields(spec, field, map[string]handler{
		"image":    r.setStr(&c.Image),
		"runtime":  r.runtime,
		"env":      func(v *yaml.Node, p string) { c.Env = r.env(v, p) },
		"cmd_args": r.setList(&c.CmdArgs),
		"cmd":      r.setList(&c.Cmds),
		"appNames": r.setList(&c.AppNames),
		"hosts":    r.hosts,
		"ssh":      func(v *yaml.Node, p string) { r.ssh(v, p, &c.SSH) },
		"containerRuntime": func(v *yaml.Node, p string) {
			r.fields(v, p, map[string]handler{"type": r.criType})
		},
		"hostAliases": r.hostAliases,
		"registry":    func(v *yaml.Node, p string) { registry, registryPath = v, p },
		"dataRoot":    r.dataRoot,
		"provider":    r.provider,
	})
	r.registry(registry, registryPath)
}

func (r *clusterReader) runtime(v *yaml.Node, p string) {
	s, ok := r.str(v, p)
	if !ok {
		return
	}
	switch s {
	case "", RuntimeKubernetes, RuntimeK3s, RuntimeK0s, RuntimePlain:
		r.c.Runtime = s
	default:
		r.errorf(ErrInvalid, r.line(v), p, "%q is not a runtime: want kubernetes, k3s, k0s or plain (or nothing, to take the image's)", s)
	}
}

func (r *clusterReader) criType(v *yaml.Node, p string) {
	s, ok := r.str(v, p)
	if !ok {
		return
	}
	if s != "" && !isName(s) {
		r.errorf(ErrInvalid, r.line(v), p, "%q is not a container runtime name (docker, containerd, or the name of a custom one)", s)
		return
	}
	r.c.ContainerRuntime = s
}

func (r *clusterReader) dataRoot(v *yaml.Node, p string) {
	s, ok := r.str(v, p)
	if !ok {
		return
	}
	if s != "" && !path.IsAbs(s) {
		r.errorf(ErrInvalid, r.line(v), p, "%q is not an absolute path", s)
		return
	}
	r.c.DataRoot = s
}

// provider records a cloud provider; BAREMETAL (or nothing) is the only
// kind drove installs onto.
func (r *clusterReader) provider(v *yaml.Node, p string) {
	s, ok := r.str(v, p)
	if !ok {
		return
	}
	switch strings.ToUpper(s) {
	case "", "BAREMETAL":
	case "ALI_CLOUD", "CONTAINER":
		r.markCloud("provider "+s, r.line(v), p)
	default:
		r.errorf(ErrInvalid, r.line(v), p, "%q is not a provider: want BAREMETAL (ALI_CLOUD and CONTAINER are sealer's cloud providers)", s)
	}
}

func (r *clusterReader) markCloud(what string, line int, field string) {
	if r.cloud == "" {
		r.cloud, r.cloudLine, r.cloudPath = what, line, field
	}
}

// env reads the cluster's list of KEY=VALUE entries, dropping the keys
// drove computes itself, as sealer does.
func (r *clusterReader) env(v *yaml.Node, p string) []string {
	return readEnv(r.walker, v, p, true)
}

// hostEnv reads a host's env.
func (r *clusterReader) hostEnv(v *yaml.Node, p string) []string {
	return readEnv(r.walker, v, p, false)
}

// readEnv reads a list of KEY=VALUE entries. With dropReserved it leaves
// out (with a warning) the keys in reservedEnv.
func readEnv(w *walker, v *yaml.Node, p string, dropReserved bool) []string {
	items, ok := w.list(v, p)
	if !ok {
		return nil
	}
	var out []string
	for i, it := range items {
		s, ok := w.str(it, index(p, i))
		if !ok {
			return nil
		}
		if msg := checkEnv(s); msg != "" {
			w.errorf(ErrInvalid, w.line(it), index(p, i), "%s", msg)
			continue
		}
		if k := envKey(s); dropReserved && slices.Contains(reservedEnv, k) {
			w.warnf(w.line(it), index(p, i), "%s is set by drove; this value is ignored", k)
			continue
		}
		out = append(out, s)
	}
	return out
}

func (r *clusterReader) hosts(v *yaml.Node, p string) {
	items, ok := r.list(v, p)
	if !ok {
		return
	}
	r.hostsLine = r.line(v)
	for i, it := range items {
		hp := index(p, i)
		it = r.resolve(it)
		if it == nil {
			return
		}
		h := Host{Line: r.line(it)}
		var ipsNode, countNode *yaml.Node
		var count string
		ipsOK := true
		_, ok := r.fields(it, hp, map[string]handler{
			"ips": func(v *yaml.Node, p string) {
				ipsNode = v
				before := len(r.errs)
				h.IPs = r.ips(v, p)
				ipsOK = len(r.errs) == before
			},
			"roles": func(v *yaml.Node, p string) { h.Roles = r.roles(v, p) },
			"role": func(v *yaml.Node, p string) {
				r.warnf(r.line(v), p, "use roles")
				if h.Roles == nil {
					h.Roles = r.roles(v, p)
				}
			},
			"ssh":    func(v *yaml.Node, p string) { h.SSH = SSH{}; r.ssh(v, p, &h.SSH) },
			"env":    func(v *yaml.Node, p string) { h.Env = r.hostEnv(v, p) },
			"labels": func(v *yaml.Node, p string) { h.Labels = r.labels(v, p) },
			"taints": func(v *yaml.Node, p string) { h.Taints = r.taints(v, p) },
			"count": func(v *yaml.Node, p string) {
				countNode = v
				count, _ = r.str(v, p)
			},
			// sealer's cloud machine sizes.
			"cpu": nil, "memory": nil, "systemDisk": nil, "dataDisk": nil, "dataDisks": nil,
		})
		if !ok {
			return
		}
		if len(h.IPs) == 0 {
			if count != "" && count != "0" {
				r.markCloud(join(hp, "count")+" "+count+" without ips", r.line(countNode), join(hp, "count"))
			} else if ipsNode == nil {
				r.errorf(ErrInvalid, h.Line, join(hp, "ips"), "missing: list the host's IP addresses")
			} else if ipsOK {
				r.errorf(ErrInvalid, r.line(ipsNode), join(hp, "ips"), "empty: list the host's IP addresses")
			}
		}
		r.c.Hosts = append(r.c.Hosts, h)
	}
}

// eachString reads the list of strings at p, calling each with every
// item, its node and field path, in order; each returns false to stop.
// It reports false when v is not a list, an item is not a string (both
// reported), or each stopped.
func (r *clusterReader) eachString(v *yaml.Node, p string, each func(s string, it *yaml.Node, field string) bool) bool {
	items, ok := r.list(v, p)
	if !ok {
		return false
	}
	for i, it := range items {
		s, ok := r.str(it, index(p, i))
		if !ok || !each(s, it, index(p, i)) {
			return false
		}
	}
	return true
}

// ips reads a list of addresses and ranges.
func (r *clusterReader) ips(v *yaml.Node, p string) []string {
	var out []string
	ok := r.eachString(v, p, func(s string, it *yaml.Node, field string) bool {
		ips, msg := parseHostList(s, MaxHosts-len(r.refs))
		if msg != "" {
			sentinel := ErrInvalid
			if strings.HasPrefix(msg, "more than") {
				sentinel = ErrTooLarge
			}
			r.errorf(sentinel, r.line(it), field, "%s", msg)
			return false
		}
		for _, ip := range ips {
			r.refs = append(r.refs, ipRef{ip: ip, line: r.line(it), field: field})
		}
		out = append(out, ips...)
		return true
	})
	if !ok {
		return nil
	}
	return out
}

func (r *clusterReader) roles(v *yaml.Node, p string) []string {
	var out []string
	ok := r.eachString(v, p, func(s string, it *yaml.Node, field string) bool {
		s = strings.TrimSpace(s)
		if !isName(s) {
			r.errorf(ErrInvalid, r.line(it), field, "%q is not a role name", s)
		} else if !slices.Contains(out, s) {
			out = append(out, s)
		}
		return true
	})
	if !ok {
		return nil
	}
	return out
}

func (r *clusterReader) labels(v *yaml.Node, p string) map[string]string {
	pairs, ok := r.mapping(v, p)
	if !ok || len(pairs) == 0 {
		return nil
	}
	out := map[string]string{}
	for _, kv := range pairs {
		val, ok := r.str(kv.val, join(p, kv.key))
		if !ok {
			return nil
		}
		if msg := checkLabel(kv.key, val); msg != "" {
			r.errorf(ErrInvalid, r.line(kv.knode), join(p, kv.key), "%s", msg)
			continue
		}
		out[kv.key] = val
	}
	return out
}

func (r *clusterReader) taints(v *yaml.Node, p string) []string {
	var out []string
	ok := r.eachString(v, p, func(s string, it *yaml.Node, field string) bool {
		if _, err := ParseTaint(s); err != nil {
			r.errorf(ErrInvalid, r.line(it), field, "%s", err.(*Error).Msg)
		} else {
			out = append(out, strings.TrimSpace(s))
		}
		return true
	})
	if !ok {
		return nil
	}
	return out
}

// ssh reads an ssh section into dst, keeping dst's values for fields not
// given. An empty or null user is not given: the default (on a host, the
// cluster's) stays, as it would when Marshal's output, which omits it, is
// read back.
func (r *clusterReader) ssh(v *yaml.Node, p string, dst *SSH) {
	r.fields(v, p, map[string]handler{
		"user": func(v *yaml.Node, p string) {
			if s, ok := r.str(v, p); ok && s != "" {
				dst.User = s
			}
		},
		"passwd":   r.setStr(&dst.Passwd),
		"pk":       r.setStr(&dst.Pk),
		"pkPasswd": r.setStr(&dst.PkPasswd),
		"port": func(v *yaml.Node, p string) {
			if n, ok := r.integer(v, p, 1, 65535); ok && n != 0 {
				dst.Port = n
			}
		},
		"encrypted": func(v *yaml.Node, p string) {
			if b, ok := r.boolean(v, p); ok {
				dst.Encrypted = b
			}
		},
	})
}

func (r *clusterReader) hostAliases(v *yaml.Node, p string) {
	items, ok := r.list(v, p)
	if !ok {
		return
	}
	for i, it := range items {
		ap := index(p, i)
		var a HostAlias
		var ipGiven, namesGiven, namesOK bool
		_, ok := r.fields(it, ap, map[string]handler{
			"ip": func(v *yaml.Node, p string) {
				ipGiven = true
				s, ok := r.str(v, p)
				if !ok {
					return
				}
				ip, msg := parseIP(strings.TrimSpace(s))
				if msg != "" {
					r.errorf(ErrInvalid, r.line(v), p, "%s", msg)
					return
				}
				a.IP = ip.String()
			},
			"hostnames": func(v *yaml.Node, p string) {
				namesGiven = true
				namesOK = r.eachString(v, p, func(n string, it *yaml.Node, field string) bool {
					if !isHostname(n) {
						r.errorf(ErrInvalid, r.line(it), field, "%q is not a host name", n)
						return false
					}
					a.Hostnames = append(a.Hostnames, n)
					return true
				})
			},
		})
		if !ok {
			return
		}
		line := r.line(r.resolve(it))
		if !ipGiven {
			r.errorf(ErrInvalid, line, join(ap, "ip"), "missing")
		}
		if !namesGiven || (namesOK && len(a.Hostnames) == 0) {
			r.errorf(ErrInvalid, line, join(ap, "hostnames"), "missing: give at least one host name")
		}
		r.c.HostAliases = append(r.c.HostAliases, a)
	}
}

// registry reads spec.registry (v may be nil) and applies sealer's
// defaults.
func (r *clusterReader) registry(v *yaml.Node, p string) {
	reg := &r.c.Registry
	if v != nil {
		r.fields(v, p, map[string]handler{
			"localRegistry": func(v *yaml.Node, p string) {
				l := &LocalRegistry{HA: true}
				reg.Local = l
				r.fields(v, p, map[string]handler{
					"domain":   r.domain(&l.Domain),
					"port":     r.port(&l.Port),
					"username": r.setStr(&l.Username),
					"password": r.setStr(&l.Password),
					"ha": func(v *yaml.Node, p string) {
						if b, ok := r.boolean(v, p); ok && !isNull(v) {
							l.HA = b
						}
					},
					"insecure": func(v *yaml.Node, p string) { l.Insecure, _ = r.boolean(v, p) },
					"cert": func(v *yaml.Node, p string) {
						r.fields(v, p, map[string]handler{"subjectAltName": func(v *yaml.Node, p string) {
							r.fields(v, p, map[string]handler{
								"dnsNames": r.setList(&l.DNSNames),
								"ips":      func(v *yaml.Node, p string) { l.IPs = r.ipList(v, p) },
							})
						}})
					},
				})
			},
			"externalRegistry": func(v *yaml.Node, p string) {
				e := &ExternalRegistry{}
				reg.External = e
				r.fields(v, p, map[string]handler{
					"domain":   r.domain(&e.Domain),
					"port":     r.port(&e.Port),
					"username": r.setStr(&e.Username),
					"password": r.setStr(&e.Password),
				})
				if e.Domain == "" {
					r.errorf(ErrInvalid, r.line(r.resolve(v)), join(p, "domain"), "missing: an external registry needs a domain")
				}
			},
		})
	}
	if reg.Local == nil && reg.External == nil {
		reg.Local = &LocalRegistry{HA: true}
	}
	if reg.Local != nil {
		if reg.Local.Domain == "" {
			reg.Local.Domain = DefaultRegistryDomain
		}
		if reg.Local.Port == 0 {
			reg.Local.Port = DefaultRegistryPort
		}
	}
}

func (r *clusterReader) domain(dst *string) handler {
	return func(v *yaml.Node, p string) {
		s, ok := r.str(v, p)
		if !ok {
			return
		}
		s = strings.TrimSpace(s)
		if s != "" && !isHostname(s) {
			r.errorf(ErrInvalid, r.line(v), p, "%q is not a domain name or address (no scheme, port or path)", s)
			return
		}
		*dst = s
	}
}

func (r *clusterReader) port(dst *int) handler {
	return func(v *yaml.Node, p string) {
		if n, ok := r.integer(v, p, 1, 65535); ok {
			*dst = n
		}
	}
}

// ipList reads a list of single addresses.
func (r *clusterReader) ipList(v *yaml.Node, p string) []string {
	var out []string
	ok := r.eachString(v, p, func(s string, it *yaml.Node, field string) bool {
		if ip, msg := parseIP(strings.TrimSpace(s)); msg != "" {
			r.errorf(ErrInvalid, r.line(it), field, "%s", msg)
		} else {
			out = append(out, ip.String())
		}
		return true
	})
	if !ok {
		return nil
	}
	return out
}
