package render

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// ErrBadEnv is returned (wrapped, naming the entry) for an env entry that
// is not KEY=VALUE with a usable key.
var ErrBadEnv = errors.New("env entry is not KEY=VALUE")

// Keys of sealer's env with a meaning of their own.
const (
	KeyHostIP           = "HostIP"
	KeyHostIPFamily     = "HostIPFamily"
	KeyContainerRuntime = "ContainerRuntime"
	KeyIPv6DualStack    = "IPv6DualStack"
	KeyCertSANs         = "CertSANs"
	KeyIPvsVIPv4        = "IPvsVIPv4"
	KeyIPvsVIPv6        = "IPvsVIPv6"
	KeySvcCIDR          = "SvcCIDR"
	KeyPodCIDR          = "PodCIDR"
	KeyDNSSvcIP         = "DNSSvcIP"
	KeyKubeSvcIP        = "KubeSvcIP"
	KeyUseIPasNodeName  = "UseIPasNodeName"
)

// Defaults Derive fills in, as sealer's images and runtime use them.
const (
	DefaultPodCIDR   = "100.64.0.0/10"
	DefaultSvcCIDR   = "10.96.0.0/22"
	DefaultIPvsVIPv4 = "10.103.97.2"
	DefaultIPvsVIPv6 = "1248:4003:10bb:6a01:83b9:6360:c66d:0002"
)

// Env is sealer's env: each key holds one value or, when a key is repeated
// (CertSANs=a, CertSANs=b) or a value lists several with ";", a list of
// them in order. A key with one value holds a one-element slice. The zero
// value is an empty env ready to read; Merge and ParseEnv make new ones.
type Env map[string][]string

// ParseEnv reads KEY=VALUE entries (image ENV, Clusterfile spec.env,
// hosts[].env, CLI -e) into an Env as sealer does: the value is everything
// after the first "=", split at ";" into a list, and a repeated key adds to
// its list. An entry with no "=", an empty key, or a key or value holding
// whitespace in the key or a NUL byte is an error naming the entry.
func ParseEnv(entries []string) (Env, error) {
	env := make(Env, len(entries))
	for i, e := range entries {
		k, v, ok := strings.Cut(e, "=")
		if !ok || k == "" || strings.ContainsAny(k, " \t\r\n\x00") || strings.ContainsRune(v, 0) {
			return nil, fmt.Errorf("env entry %d %q: %w", i+1, e, ErrBadEnv)
		}
		env[k] = append(env[k], strings.Split(v, ";")...)
	}
	return env, nil
}

// Merge combines env layers; a key in a later layer replaces the whole
// value (list or not) of an earlier one. Pass layers from lowest to highest
// precedence: image ENV, cluster env, host env, CLI env. The layers are not
// changed.
func Merge(layers ...Env) Env {
	out := make(Env)
	for _, l := range layers {
		for k, v := range l {
			out[k] = slices.Clone(v)
		}
	}
	return out
}

// Get returns the value of key: its only value, or its list joined with
// spaces as Shell does; "" when unset.
func (e Env) Get(key string) string {
	return strings.Join(e[key], " ")
}

// Shell is the env as variables for a command. A list is joined with
// single spaces: sealer exported it as a bash array, export K=(a b), whose
// "$K" word-splits the same way, so scripts looping over $CertSANs work.
func (e Env) Shell() map[string]string {
	out := make(map[string]string, len(e))
	for k, v := range e {
		out[k] = strings.Join(v, " ")
	}
	return out
}

// TemplateData is the env as template data: a key with one value maps to
// that string, a key with a list to a []string (sealer's render data).
func (e Env) TemplateData() map[string]any {
	out := make(map[string]any, len(e))
	for k, v := range e {
		switch len(v) {
		case 0:
			out[k] = ""
		case 1:
			out[k] = v[0]
		default:
			out[k] = slices.Clone(v)
		}
	}
	return out
}

// Entries is the env as sorted KEY=VALUE entries that ParseEnv reads back
// to the same Env (lists joined with ";").
func (e Env) Entries() []string {
	keys := slices.Sorted(maps.Keys(e))
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, k+"="+strings.Join(e[k], ";"))
	}
	return out
}
