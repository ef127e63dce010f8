package clusterfile

import (
	"slices"
)

// Flag names used in messages about command-line values.
const (
	flagMasters = "--masters"
	flagNodes   = "--nodes"
	flagEnv     = "--env"
	flagPort    = "--port"
)

// FromFlags builds the Cluster that `drove run IMAGE -m ... -n ...` asks
// for: one host entry with role master, one with role node, the cluster
// SSH settings (user root and port 22 unless given) and env. Each of
// masters and nodes is a flag value: an address, a range or a comma list
// (see ParseHostList). Errors are *Error values naming the flag, wrapping
// ErrInvalid.
func FromFlags(image string, masters, nodes []string, ssh SSH, env []string) (*Cluster, error) {
	d := &diags{}
	c := &Cluster{
		Name:     defaultClusterName,
		Image:    image,
		SSH:      SSH{User: DefaultSSHUser, Port: DefaultSSHPort},
		Registry: Registry{Local: &LocalRegistry{Domain: DefaultRegistryDomain, Port: DefaultRegistryPort, HA: true}},
	}
	c.SSH = c.SSHFor(Host{SSH: ssh})
	checkSSHFlags(d, ssh)
	c.Env = envFlags(d, env)
	var refs []ipRef
	if ips := hostFlags(d, flagMasters, masters, &refs); len(ips) > 0 {
		c.Hosts = append(c.Hosts, Host{IPs: ips, Roles: []string{RoleMaster}})
	}
	if ips := hostFlags(d, flagNodes, nodes, &refs); len(ips) > 0 {
		c.Hosts = append(c.Hosts, Host{IPs: ips, Roles: []string{RoleNode}})
	}
	checkHosts(d, refs)
	if len(d.errs) == 0 && len(c.Masters()) == 0 {
		d.errorf(ErrInvalid, 0, flagMasters, "missing: give the master addresses, e.g. -m 10.0.0.1,10.0.0.2")
	}
	if err := d.err(); err != nil {
		return nil, err
	}
	return c, nil
}

// Overrides are `drove run -f` / `drove apply -f` flags laid over a
// Clusterfile's Cluster: the command line wins.
type Overrides struct {
	// Image, when set, replaces spec.image.
	Image string
	// Masters, when given, replaces the hosts with role master (the role
	// is taken off every host; a host left without roles is dropped);
	// Nodes does the same for role node. Values are host lists as in
	// ParseHostList.
	Masters, Nodes []string
	// SSH fields that are set replace the cluster's.
	SSH SSH
	// Env entries (KEY=VALUE) are appended; a key they set loses its
	// values from the file, in the cluster's env and every host's.
	Env []string
	// Cmds replaces spec.cmd when SetCmds; Apps replaces spec.appNames when
	// SetApps (an empty Apps then means: launch no app).
	Cmds    []string
	SetCmds bool
	Apps    []string
	SetApps bool
}

// Override lays o over c. On error c is unchanged; errors are *Error values
// naming the flag, wrapping ErrInvalid.
func (c *Cluster) Override(o Overrides) error {
	d := &diags{}
	next := *c
	if o.Image != "" {
		next.Image = o.Image
	}
	checkSSHFlags(d, o.SSH)
	next.SSH = c.SSHFor(Host{SSH: o.SSH})

	if env := envFlags(d, o.Env); len(env) > 0 {
		keys := EnvMap(env)
		drop := func(list []string) []string {
			return slices.DeleteFunc(slices.Clone(list), func(e string) bool {
				_, set := keys[envKey(e)]
				return set
			})
		}
		next.Env = append(drop(c.Env), env...)
		next.Hosts = slices.Clone(c.Hosts)
		for i := range next.Hosts {
			next.Hosts[i].Env = drop(next.Hosts[i].Env)
		}
	}

	if len(o.Masters) > 0 || len(o.Nodes) > 0 {
		var replaced []string
		if len(o.Masters) > 0 {
			replaced = append(replaced, RoleMaster)
		}
		if len(o.Nodes) > 0 {
			replaced = append(replaced, RoleNode)
		}
		// Hosts that keep a role stay, after the new masters (the first
		// master initialises the cluster) and before the new nodes.
		var refs []ipRef
		var kept []Host
		for i, h := range next.Hosts {
			roles := slices.DeleteFunc(slices.Clone(h.Roles), func(r string) bool { return slices.Contains(replaced, r) })
			if len(roles) == 0 {
				continue
			}
			h.Roles = roles
			for _, ip := range h.IPs {
				refs = append(refs, ipRef{ip: ip, line: h.Line, field: index("spec.hosts", i)})
			}
			kept = append(kept, h)
		}
		var hosts []Host
		if ips := hostFlags(d, flagMasters, o.Masters, &refs); len(ips) > 0 {
			hosts = append(hosts, Host{IPs: ips, Roles: []string{RoleMaster}})
		}
		hosts = append(hosts, kept...)
		if ips := hostFlags(d, flagNodes, o.Nodes, &refs); len(ips) > 0 {
			hosts = append(hosts, Host{IPs: ips, Roles: []string{RoleNode}})
		}
		checkHosts(d, refs)
		next.Hosts = hosts
		if len(d.errs) == 0 && len(next.Masters()) == 0 {
			d.errorf(ErrInvalid, 0, flagMasters, "missing: no host is left with role master")
		}
	}
	if o.SetCmds {
		next.Cmds = slices.Clone(o.Cmds)
	}
	if o.SetApps {
		next.AppNames = slices.Clone(o.Apps)
	}
	if err := d.err(); err != nil {
		return err
	}
	*c = next
	return nil
}

// hostFlags parses the values of one host-list flag, recording each address
// in refs.
func hostFlags(d *diags, flag string, values []string, refs *[]ipRef) []string {
	var out []string
	for _, v := range values {
		ips, msg := parseHostList(v, MaxHosts-len(*refs))
		if msg != "" {
			d.errorf(ErrInvalid, 0, flag, "%s", msg)
			return nil
		}
		for _, ip := range ips {
			*refs = append(*refs, ipRef{ip: ip, field: flag})
		}
		out = append(out, ips...)
	}
	return out
}

// envFlags checks KEY=VALUE flag values.
func envFlags(d *diags, env []string) []string {
	var out []string
	for _, e := range env {
		if msg := checkEnv(e); msg != "" {
			d.errorf(ErrInvalid, 0, flagEnv, "%s", msg)
			continue
		}
		out = append(out, e)
	}
	return out
}

func checkSSHFlags(d *diags, s SSH) {
	if s.Port < 0 || s.Port > 65535 {
		d.errorf(ErrInvalid, 0, flagPort, "%d is not a port number", s.Port)
	}
}
