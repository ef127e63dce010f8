package clusterfile

import (
	"slices"
	"strings"
)

// Runtimes drove can install, the values of spec.runtime.
const (
	RuntimeKubernetes = "kubernetes" // kubeadm
	RuntimeK3s        = "k3s"
	RuntimeK0s        = "k0s"
	RuntimePlain      = "plain" // no Kubernetes: only the image's files, hooks and commands
)

// Built-in host roles. Hosts may carry other roles too.
const (
	RoleMaster = "master"
	RoleNode   = "node"
)

// Defaults applied by Parse and FromFlags.
const (
	DefaultSSHUser        = "root"
	DefaultSSHPort        = 22
	DefaultRegistryDomain = "sea.hub"
	DefaultRegistryPort   = 5000
	defaultClusterName    = "my-cluster"
)

// Cluster is the desired cluster, from a Cluster document of either schema
// (v1 is converted to the v2 form) or from command-line flags.
type Cluster struct {
	Name  string
	Image string // may be empty: the command line can give it
	// Runtime is drove's spec.runtime: one of the Runtime* names, or empty
	// to take it from the image's cluster-runtime label.
	Runtime string
	// Env holds KEY=VALUE entries in order. A key given more than once has
	// a list of values (see EnvMap). A v1 Cluster's network.podCIDR,
	// network.svcCIDR and certSANS become PodCIDR, SvcCIDR and CertSANs here.
	Env      []string
	CmdArgs  []string // spec.cmd_args: values for ${VAR} in the image's CMD
	Cmds     []string // spec.cmd: replace the image's launch commands
	AppNames []string // spec.appNames: replace the image's launched apps
	Hosts    []Host
	// SSH is the cluster-wide SSH access, with defaults applied; Host.SSH
	// overrides it field by field (see SSHFor).
	SSH              SSH
	ContainerRuntime string // containerRuntime.type: docker, containerd or a custom CRI; empty: the image's label
	HostAliases      []HostAlias
	Registry         Registry
	DataRoot         string // empty: the agent's default
	Line             int    // the document's first line; 0 from flags
}

// Host is one entry of spec.hosts: addresses sharing roles and settings.
type Host struct {
	IPs    []string // canonical addresses, ranges expanded
	Roles  []string
	SSH    SSH      // per-host overrides; zero fields take the cluster's
	Env    []string // KEY=VALUE, over the cluster's env
	Labels map[string]string
	Taints []string // as written: "k=v:Effect", "k:Effect-" (see ParseTaint)
	Line   int
}

// SSH is how the control host reaches a machine over SSH (to push the
// agent when none runs there yet).
type SSH struct {
	User      string
	Passwd    string
	Pk        string // private key file
	PkPasswd  string
	Port      int  // 0 in Host.SSH: the cluster's
	Encrypted bool // Passwd is AES-encrypted (sealer's ssh.encrypted)
}

// HostAlias is an /etc/hosts entry written on every node.
type HostAlias struct {
	IP        string
	Hostnames []string
}

// Registry says where nodes pull container images from. Parse sets Local to
// the defaults when neither registry is given.
type Registry struct {
	Local    *LocalRegistry
	External *ExternalRegistry
}

// LocalRegistry is the registry drove runs on the masters, serving the
// images cached in the cluster image.
type LocalRegistry struct {
	Domain   string // default sea.hub
	Port     int    // default 5000
	Username string // basic auth only when both are set
	Password string
	HA       bool // on every master (default) or on the first only
	Insecure bool // plain HTTP instead of a generated TLS certificate
	DNSNames []string
	IPs      []string // extra subject alternative names of the certificate
}

// ExternalRegistry is a registry the user runs; no local one is deployed.
type ExternalRegistry struct {
	Domain   string
	Port     int // 0: the domain alone
	Username string
	Password string
}

// IPsByRole returns the addresses of the hosts that have role, in file
// order, each once.
func (c *Cluster) IPsByRole(role string) []string {
	var out []string
	for _, h := range c.Hosts {
		if slices.Contains(h.Roles, role) {
			for _, ip := range h.IPs {
				if !slices.Contains(out, ip) {
					out = append(out, ip)
				}
			}
		}
	}
	return out
}

// Masters returns the addresses of the hosts with role master; the first
// is the one that initialises the cluster.
func (c *Cluster) Masters() []string { return c.IPsByRole(RoleMaster) }

// Nodes returns the addresses of the hosts with role node.
func (c *Cluster) Nodes() []string { return c.IPsByRole(RoleNode) }

// AllIPs returns every host address in file order.
func (c *Cluster) AllIPs() []string {
	var out []string
	for _, h := range c.Hosts {
		out = append(out, h.IPs...)
	}
	return out
}

// SSHFor returns the SSH settings for h: h's own fields over the cluster's.
func (c *Cluster) SSHFor(h Host) SSH {
	s := c.SSH
	o := h.SSH
	if o.User != "" {
		s.User = o.User
	}
	if o.Passwd != "" {
		s.Passwd = o.Passwd
	}
	if o.Pk != "" {
		s.Pk = o.Pk
	}
	if o.PkPasswd != "" {
		s.PkPasswd = o.PkPasswd
	}
	if o.Port != 0 {
		s.Port = o.Port
	}
	if o.Encrypted {
		s.Encrypted = true
	}
	return s
}

// EnvFor returns the environment of h: its own env over the cluster's; a
// key h sets replaces all of the cluster's values for it.
func (c *Cluster) EnvFor(h Host) map[string][]string {
	env := EnvMap(c.Env)
	for k, v := range EnvMap(h.Env) {
		env[k] = v
	}
	return env
}

// EnvMap turns KEY=VALUE entries into a map; a key given more than once
// keeps all its values in order. Entries without "=" are skipped.
func EnvMap(env []string) map[string][]string {
	m := map[string][]string{}
	for _, e := range env {
		k, v, ok := strings.Cut(e, "=")
		if !ok {
			continue
		}
		m[k] = append(m[k], v)
	}
	return m
}

// envKey returns the key of a KEY=VALUE entry.
func envKey(e string) string {
	k, _, _ := strings.Cut(e, "=")
	return k
}
