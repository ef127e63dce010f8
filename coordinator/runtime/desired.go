package runtime

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/drove-project/drove/protocol"
)

// Errors, matched with errors.Is.
var (
	// ErrInvalid: the desired state cannot be turned into a plan (a bad
	// host, hook, taint or version). The message names the field.
	ErrInvalid = errors.New("invalid desired state")
	// ErrUnknownRuntime: Lookup was given a name no runtime has.
	ErrUnknownRuntime = errors.New("unknown runtime")
)

// Host roles with a meaning of their own; any other role is a label only.
const (
	RoleMaster = "master"
	RoleNode   = "node"
)

// Desired is a cluster as the user wants it: what the CLI reads from the
// Clusterfile, the command line and the cluster image.
type Desired struct {
	Image       string // reference as the user gave it
	ImageDigest string // the image's digest: shell steps run in its rootfs
	// Distribution is the distribute step's payload (nil only in tests).
	Distribution *protocol.Distribution
	Runtime      string // kubernetes, k3s, k0s or plain
	KubeVersion  string // e.g. v1.27.3; for kubeadm, the config version and upgrades
	// ContainerRuntime is docker, containerd or a custom CRI with
	// scripts/<name>.sh in the image; empty picks the runtime's default.
	ContainerRuntime string
	Hosts            []Host
	// Env is the cluster env, already merged (image < cluster < CLI).
	Env     map[string]string
	Configs []protocol.ConfigFile
	// Cmds are the CMDS/LAUNCH commands, run in order on master0.
	Cmds  []string
	Hooks []Hook
	// KubeadmDefault is the image's etc/kubeadm*.yaml (may be empty);
	// KubeadmDocs the Clusterfile's kubeadm documents merged over it.
	KubeadmDefault []byte
	KubeadmDocs    [][]byte
	HostAliases    []HostAlias
	// ContainerImages is how many container images the cluster image
	// caches (its sealer.image.container.images annotation); with none
	// there is no container-images phase.
	ContainerImages int
	// ImportImages also imports them into containerd (drove run --import;
	// the CLI defaults it on where the kubelet pulls through containerd).
	ImportImages bool
	// RegistryAliases are registry names served by the node mirror besides
	// the images' own (default DefaultRegistryAlias; the Clusterfile's
	// local registry domain:port).
	RegistryAliases []string
	CertSANs        []string // extra apiserver certificate names
	// UpgradeBatch is how many workers Upgrade drains at a time; 0 means
	// a tenth of the workers (at least one).
	UpgradeBatch int
	// Rollback makes Upgrade go back to the image the cluster ran before
	// its last upgrade (drove rollback): the Kubernetes version may go
	// back one minor release, and the rollback hooks run instead of the
	// upgrade ones.
	Rollback bool
}

// Host is one machine of the cluster.
type Host struct {
	IP     string
	Name   string // optional; node names are looked up by IP
	Roles  []string
	Env    map[string]string // overrides the cluster env on this host
	Labels map[string]string // Kubernetes node labels
	Taints []string          // "key[=value]:Effect"; a trailing "-" removes
	// Source is where the host was declared ("Clusterfile:12"), for errors.
	Source string
}

// Hook is one plugin document (sealer's kind: Plugin): a Gen-2 hook or a
// Gen-1 plugin.
type Hook struct {
	Name string
	// Type is SHELL, or one of the Gen-1 types HOSTNAME, LABEL, TAINT,
	// CLUSTERCHECK.
	Type string
	// Phase is a Gen-2 phase (pre-install, pre-init-host, ...) or a Gen-1
	// one (Originally, PreInit, ...); several may be joined with "|".
	Phase string
	// On picks hosts: roles joined with "|", IPs ("a,b", "a-b"), or a
	// label selector ("k=v"); empty is every host. Gen-2 cluster phases
	// always run on master0.
	On     string
	Data   string
	Source string // where the document is ("Clusterfile:40"), for errors
}

// HostAlias is an /etc/hosts entry written on every host.
type HostAlias struct {
	IP        string
	Hostnames []string
}

// HasRole reports whether h has role r.
func (h Host) HasRole(r string) bool { return slices.Contains(h.Roles, r) }

// where prefixes a message with a host's source.
func (h Host) where() string {
	if h.Source != "" {
		return h.Source + ": host " + h.IP
	}
	return "host " + h.IP
}

// cluster is a validated Desired with its hosts sorted into roles.
type cluster struct {
	d       *Desired
	all     []Host // in the order given
	masters []Host
	workers []Host // hosts without the master role
	master0 Host
	byIP    map[string]Host
}

// newCluster validates d and sorts its hosts. needMaster: the runtime
// needs at least one master (every Kubernetes runtime does).
func newCluster(d *Desired, needMaster bool) (*cluster, error) {
	if len(d.Hosts) == 0 {
		return nil, fmt.Errorf("%w: no hosts", ErrInvalid)
	}
	if d.ImageDigest == "" {
		return nil, fmt.Errorf("%w: ImageDigest is empty: steps need the image's rootfs", ErrInvalid)
	}
	c := &cluster{d: d, byIP: make(map[string]Host, len(d.Hosts))}
	for _, h := range d.Hosts {
		if err := checkHost(h); err != nil {
			return nil, err
		}
		if prev, dup := c.byIP[h.IP]; dup {
			return nil, fmt.Errorf("%w: %s: declared twice (also %s)", ErrInvalid, h.where(), prev.where())
		}
		c.byIP[h.IP] = h
		c.all = append(c.all, h)
		if h.HasRole(RoleMaster) {
			c.masters = append(c.masters, h)
		} else {
			c.workers = append(c.workers, h)
		}
	}
	switch {
	case len(c.masters) > 0:
		c.master0 = c.masters[0]
	case needMaster:
		return nil, fmt.Errorf("%w: no host has role %q: runtime %s needs at least one", ErrInvalid, RoleMaster, d.Runtime)
	default:
		c.master0 = c.all[0]
	}
	if cri := d.ContainerRuntime; cri != "" && !validRole(cri) {
		return nil, fmt.Errorf("%w: containerRuntime %q: want a name (scripts/<name>.sh)", ErrInvalid, cri)
	}
	for i, a := range d.HostAliases {
		if _, err := netip.ParseAddr(a.IP); err != nil {
			return nil, fmt.Errorf("%w: hostAliases[%d].ip %q is not an IP address", ErrInvalid, i, a.IP)
		}
		if len(a.Hostnames) == 0 {
			return nil, fmt.Errorf("%w: hostAliases[%d].hostnames is empty", ErrInvalid, i)
		}
		for j, n := range a.Hostnames {
			if n == "" || strings.ContainsAny(n, " \t\n#") {
				return nil, fmt.Errorf("%w: hostAliases[%d].hostnames[%d] %q is not a host name", ErrInvalid, i, j, n)
			}
		}
	}
	return c, nil
}

func checkHost(h Host) error {
	a, err := netip.ParseAddr(h.IP)
	if err != nil || a.Zone() != "" {
		return fmt.Errorf("%w: %s: ip is not an IP address", ErrInvalid, h.where())
	}
	if a.String() != h.IP {
		return fmt.Errorf("%w: %s: write the ip as %s", ErrInvalid, h.where(), a)
	}
	if len(h.Roles) == 0 {
		return fmt.Errorf("%w: %s: roles is empty", ErrInvalid, h.where())
	}
	for i, r := range h.Roles {
		if !validRole(r) {
			return fmt.Errorf("%w: %s: roles[%d] %q: want letters, digits, '-', '_' or '.'", ErrInvalid, h.where(), i, r)
		}
	}
	for k := range h.Labels {
		if k == "" || strings.ContainsAny(k, " \t\n=") {
			return fmt.Errorf("%w: %s: labels: bad key %q", ErrInvalid, h.where(), k)
		}
	}
	for i, t := range h.Taints {
		if _, err := parseTaint(t); err != nil {
			return fmt.Errorf("%w: %s: taints[%d]: %w", ErrInvalid, h.where(), i, err)
		}
	}
	return nil
}

func validRole(r string) bool {
	if r == "" {
		return false
	}
	for _, c := range r {
		if !isNameChar(c) {
			return false
		}
	}
	return true
}

func isNameChar(c rune) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
}

// ips lists the addresses of hosts, in order.
func ips(hosts []Host) []string {
	out := make([]string, len(hosts))
	for i, h := range hosts {
		out[i] = h.IP
	}
	return out
}

// only keeps the hosts of hs whose IP is in set, in hs's order.
func only(hs []Host, set []Host) []Host {
	var out []Host
	for _, h := range hs {
		if slices.ContainsFunc(set, func(s Host) bool { return s.IP == h.IP }) {
			out = append(out, h)
		}
	}
	return out
}

// without drops the hosts of hs whose IP is in set.
func without(hs []Host, set []Host) []Host {
	var out []Host
	for _, h := range hs {
		if !slices.ContainsFunc(set, func(s Host) bool { return s.IP == h.IP }) {
			out = append(out, h)
		}
	}
	return out
}

// masterIPs are the masters' addresses.
func (c *cluster) masterIPs() []string { return ips(c.masters) }

// cri is the container runtime to install, given the runtime's default.
func (c *cluster) cri(def string) string {
	if c.d.ContainerRuntime != "" {
		return c.d.ContainerRuntime
	}
	return def
}
