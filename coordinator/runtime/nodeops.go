package runtime

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Taint effects Kubernetes knows.
var taintEffects = []string{"NoSchedule", "PreferNoSchedule", "NoExecute"}

// taint is one parsed "key[=value]:Effect" (Remove: a trailing "-").
type taint struct {
	Key, Value, Effect string
	Remove             bool
}

// arg is the taint as a kubectl taint argument.
func (t taint) arg() string {
	s := t.Key
	if t.Value != "" {
		s += "=" + t.Value
	}
	if t.Effect != "" {
		s += ":" + t.Effect
	}
	if t.Remove {
		s += "-"
	}
	return s
}

// parseTaint reads sealer's taint syntax: "key=value:Effect" adds,
// "key[=value]:Effect-" or "key-" removes.
func parseTaint(s string) (taint, error) {
	var t taint
	rest, remove := strings.CutSuffix(s, "-")
	t.Remove = remove
	keyval, effect, hasEffect := strings.Cut(rest, ":")
	if hasEffect {
		if !slices.Contains(taintEffects, effect) {
			return t, fmt.Errorf("taint %q: effect %q: want one of %s", s, effect, strings.Join(taintEffects, ", "))
		}
		t.Effect = effect
	} else if !remove {
		return t, fmt.Errorf("taint %q: want key[=value]:Effect", s)
	}
	t.Key, t.Value, _ = strings.Cut(keyval, "=")
	if t.Key == "" || strings.ContainsAny(keyval, " \t\n:") {
		return t, fmt.Errorf("taint %q: bad key %q", s, t.Key)
	}
	return t, nil
}

// nodeChange is what one node gets from a Gen-1 plugin or the
// Clusterfile: labels ("k=v"), taints, a host name.
type nodeChange struct {
	IP       string
	Labels   []string
	Taints   []taint
	Hostname string
}

// nodeScript applies changes with the runtime's kubectl on a node that
// can reach the API. Labels overwrite; an added taint overwrites; a taint
// removal that finds nothing to remove is not an error.
func nodeScript(kubectl string, changes []nodeChange) string {
	lines := []string{"set -e", kubectlFns(kubectl)}
	for _, ch := range changes {
		if len(ch.Labels) == 0 && len(ch.Taints) == 0 {
			continue
		}
		lines = append(lines, "n=$(drove_node "+quote(ch.IP)+")")
		if len(ch.Labels) > 0 {
			args := make([]string, len(ch.Labels))
			for i, l := range ch.Labels {
				args[i] = quote(literal(l))
			}
			lines = append(lines, `drove_kubectl label node "$n" --overwrite `+strings.Join(args, " "))
		}
		for _, t := range ch.Taints {
			cmd := `drove_kubectl taint node "$n" `
			if t.Remove {
				lines = append(lines, cmd+quote(literal(t.arg()))+" || true")
			} else {
				lines = append(lines, cmd+"--overwrite "+quote(literal(t.arg())))
			}
		}
	}
	return script(lines...)
}

// hostChanges are the role labels, labels and taints the Clusterfile
// gives hosts.
func hostChanges(hosts []Host) []nodeChange {
	out := make([]nodeChange, 0, len(hosts))
	for _, h := range hosts {
		ch := nodeChange{IP: h.IP}
		for _, r := range h.Roles {
			ch.Labels = append(ch.Labels, "node-role.kubernetes.io/"+r+"=")
		}
		for _, k := range slices.Sorted(maps.Keys(h.Labels)) {
			ch.Labels = append(ch.Labels, k+"="+h.Labels[k])
		}
		for _, s := range h.Taints {
			t, _ := parseTaint(s) // checked by checkHost
			ch.Taints = append(ch.Taints, t)
		}
		out = append(out, ch)
	}
	return out
}

// drainFlags are kubectl drain's flags for a Kubernetes version (the
// emptyDir flag was renamed in 1.20).
func drainFlags(kv kubeVersion) string {
	empty := "--delete-emptydir-data"
	if kv.known() && kv.less(kubeVersion{major: 1, minor: 20}) {
		empty = "--delete-local-data"
	}
	return "--ignore-daemonsets --force " + empty
}
