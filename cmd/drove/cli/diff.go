package cli

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/drove-project/drove/layers/clusterfile"
	"github.com/drove-project/drove/protocol"
)

// Errors of the revision diff, matched with errors.Is.
var (
	// errOtherImage: the cluster runs another image; that is an upgrade.
	errOtherImage = errors.New("the cluster runs another image")
	// errRoleChange: a host of the running cluster is given other roles.
	errRoleChange = errors.New("a host changes roles")
)

// Kinds of change between the applied revision and this run.
const (
	changeInstall = "install" // nothing applied yet
	changeNone    = "none"    // identical: nothing to do
	changeUpdate  = "update"  // hosts added or removed, or files re-rendered
)

// change is what a run has to do to bring the applied revision to the
// desired one.
type change struct {
	Kind    string
	Added   []string // host addresses to join (ScaleUp)
	Removed []string // host addresses to take out (ScaleDown)
	// Rerender: env, Configs, hooks or commands changed: the files are
	// rendered again on the hosts that stay.
	Rerender bool
	// Applied is the applied revision's Clusterfile (nil for an install).
	Applied *clusterfile.File
}

// canonical is the Clusterfile text a revision records: f as Marshal writes
// it, without SSH credentials (they are how hosts are reached this time,
// not part of the cluster, and must not be kept in raft).
func canonical(f *clusterfile.File) ([]byte, error) {
	c := *f
	if f.Cluster != nil {
		cl := *f.Cluster
		cl.SSH = clusterfile.SSH{}
		cl.Hosts = slices.Clone(cl.Hosts)
		for i := range cl.Hosts {
			cl.Hosts[i].SSH = clusterfile.SSH{}
		}
		c.Cluster = &cl
	}
	c.Warnings = nil
	return c.Marshal()
}

// diffRevision compares the applied revision with the desired Clusterfile
// (next, already canonical as text) and image digest.
func diffRevision(rev *protocol.ClusterRevision, next []byte, digest string) (change, error) {
	if rev == nil || rev.Clusterfile == "" {
		return change{Kind: changeInstall}, nil
	}
	if rev.ImageDigest != "" && rev.ImageDigest != digest {
		return change{}, fmt.Errorf("%w: it runs %s (%s), this run's image is %s: change images with drove upgrade",
			errOtherImage, rev.Image, rev.ImageDigest, digest)
	}
	if bytes.Equal([]byte(rev.Clusterfile), next) {
		return change{Kind: changeNone}, nil
	}
	applied, err := clusterfile.Parse(fmt.Sprintf("applied revision %d", rev.Serial), []byte(rev.Clusterfile))
	if err != nil {
		return change{}, fmt.Errorf("read the applied revision %d: %w", rev.Serial, err)
	}
	want, err := clusterfile.Parse("desired", next)
	if err != nil {
		return change{}, fmt.Errorf("read the desired Clusterfile back: %w", err)
	}
	if applied.Cluster == nil || want.Cluster == nil {
		return change{}, fmt.Errorf("%w in the applied or the desired Clusterfile", errNoCluster)
	}
	ch := change{Kind: changeUpdate, Applied: applied}
	old, now := hostRoles(applied.Cluster), hostRoles(want.Cluster)
	for _, ip := range applied.Cluster.AllIPs() {
		roles, kept := now[ip]
		switch {
		case !kept:
			ch.Removed = appendNew(ch.Removed, ip)
		case !slices.Equal(roles, old[ip]):
			return change{}, fmt.Errorf("%w: %s has roles %s and would get %s: take it out (drove delete --nodes/--masters %s) and join it again",
				errRoleChange, ip, strings.Join(old[ip], ","), strings.Join(roles, ","), ip)
		}
	}
	for _, ip := range want.Cluster.AllIPs() {
		if _, had := old[ip]; !had {
			ch.Added = appendNew(ch.Added, ip)
		}
	}
	// Whatever else differs is re-rendered on the hosts that stay: compare
	// both sides with the hosts of the desired state.
	same, err := sameBesidesHosts(applied, want)
	if err != nil {
		return change{}, err
	}
	ch.Rerender = !same
	if len(ch.Added) == 0 && len(ch.Removed) == 0 && !ch.Rerender {
		if sameHosts(applied.Cluster, want.Cluster) {
			// The same hosts written another way (grouped or ordered
			// differently): nothing to do.
			return change{Kind: changeNone}, nil
		}
		// A host's env, labels or taints changed.
		ch.Rerender = true
	}
	return ch, nil
}

// hostSettings is one address's settings, as a plan sees them.
type hostSettings struct {
	Roles, Env, Taints []string
	Labels             map[string]string
}

// sameHosts reports whether a and b give every address the same roles
// and settings, and the masters in the same order (the first one
// initialises the cluster), however the hosts[] entries group them.
func sameHosts(a, b *clusterfile.Cluster) bool {
	settings := func(c *clusterfile.Cluster) map[string]hostSettings {
		roles := hostRoles(c)
		out := map[string]hostSettings{}
		for _, h := range c.Hosts {
			env := slices.Clone(h.Env)
			slices.Sort(env)
			taints := slices.Clone(h.Taints)
			slices.Sort(taints)
			for _, ip := range h.IPs {
				out[ip] = hostSettings{Roles: roles[ip], Env: env, Taints: taints, Labels: h.Labels}
			}
		}
		return out
	}
	if !slices.Equal(a.Masters(), b.Masters()) {
		return false
	}
	sa, sb := settings(a), settings(b)
	if len(sa) != len(sb) {
		return false
	}
	for ip, x := range sa {
		y, ok := sb[ip]
		if !ok || !slices.Equal(x.Roles, y.Roles) || !slices.Equal(x.Env, y.Env) || !slices.Equal(x.Taints, y.Taints) || !maps.Equal(x.Labels, y.Labels) {
			return false
		}
	}
	return true
}

// hostRoles maps each address to its roles, sorted.
func hostRoles(c *clusterfile.Cluster) map[string][]string {
	out := map[string][]string{}
	for _, h := range c.Hosts {
		for _, ip := range h.IPs {
			r := append(out[ip], h.Roles...)
			slices.Sort(r)
			out[ip] = slices.Compact(r)
		}
	}
	return out
}

// sameBesidesHosts reports whether a and b are the same cluster once the
// host list is taken out of the comparison: the same env, Configs,
// plugins, commands and everything else.
func sameBesidesHosts(a, b *clusterfile.File) (bool, error) {
	strip := func(f *clusterfile.File) ([]byte, error) {
		c := *f
		cl := *f.Cluster
		cl.Hosts = nil
		c.Cluster = &cl
		return canonical(&c)
	}
	ab, err := strip(a)
	if err != nil {
		return false, err
	}
	bb, err := strip(b)
	if err != nil {
		return false, err
	}
	return bytes.Equal(ab, bb), nil
}

func appendNew(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}
