package runtime

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/drove-project/drove/protocol"
)

// point is a place in an operation where hooks run. Gen-2 phases and
// Gen-1 plugin phases map onto the same points.
type point string

const (
	ptOriginally    point = "originally"     // Gen-1 Originally: first, outside the rootfs
	ptPreInstall    point = "pre-install"    // before host init
	ptPreInitHost   point = "pre-init-host"  // before host init scripts (install, scale-up)
	ptPostInitHost  point = "post-init-host" // after the runtime is up
	ptPostInstall   point = "post-install"   //
	ptPreGuest      point = "pre-guest"      // Gen-1 PreGuest: before CMDS
	ptPreScaleUp    point = "pre-scaleup"    //
	ptPreJoin       point = "pre-join"       // Gen-1 PreJoin: scale-up, before joining
	ptPostScaleUp   point = "post-scaleup"   //
	ptPostJoin      point = "post-join"      // Gen-1 PostJoin: scale-up, last
	ptPreUninstall  point = "pre-uninstall"  //
	ptPreCleanHost  point = "pre-clean-host" // delete, scale-down: before reset
	ptPostCleanHost point = "post-clean-host"
	ptPostUninstall point = "post-uninstall"
	ptUpgradeHost   point = "upgrade-host"
	ptUpgrade       point = "upgrade"
	ptRollback      point = "rollback" // Upgrade with Desired.Rollback, instead of the upgrade points
)

// phaseInfo is what a phase name in a Plugin document means.
type phaseInfo struct {
	pt      point
	gen1    bool // hosts from On (default all), not Gen-2 scoping
	cluster bool // Gen-2 cluster phase: master0 only
}

// phases maps lower-cased phase names, Gen-2 and Gen-1, to points.
var phases = map[string]phaseInfo{
	"pre-install":     {pt: ptPreInstall, cluster: true},
	"post-install":    {pt: ptPostInstall, cluster: true},
	"pre-uninstall":   {pt: ptPreUninstall, cluster: true},
	"post-uninstall":  {pt: ptPostUninstall, cluster: true},
	"pre-scaleup":     {pt: ptPreScaleUp, cluster: true},
	"post-scaleup":    {pt: ptPostScaleUp, cluster: true},
	"upgrade":         {pt: ptUpgrade, cluster: true},
	"rollback":        {pt: ptRollback, cluster: true},
	"pre-init-host":   {pt: ptPreInitHost},
	"post-init-host":  {pt: ptPostInitHost},
	"pre-clean-host":  {pt: ptPreCleanHost},
	"post-clean-host": {pt: ptPostCleanHost},
	"upgrade-host":    {pt: ptUpgradeHost},
	"originally":      {pt: ptOriginally, gen1: true},
	"preinit":         {pt: ptPreInitHost, gen1: true},
	"preinstall":      {pt: ptPreInstall, gen1: true},
	"postinstall":     {pt: ptPostInstall, gen1: true},
	"preguest":        {pt: ptPreGuest, gen1: true},
	"prejoin":         {pt: ptPreJoin, gen1: true},
	"postjoin":        {pt: ptPostJoin, gen1: true},
	"preclean":        {pt: ptPreCleanHost, gen1: true},
	"postclean":       {pt: ptPostCleanHost, gen1: true},
}

// kubePoints are the points where the runtime's Kubernetes API is up, so
// LABEL, TAINT and CLUSTERCHECK plugins can run.
var kubePoints = []point{ptPostInitHost, ptPostInstall, ptPreGuest, ptPreScaleUp, ptPreJoin,
	ptPostScaleUp, ptPostJoin, ptPreUninstall, ptPreCleanHost, ptUpgradeHost, ptUpgrade, ptRollback}

// Hook types.
const (
	hookShell        = "SHELL"
	hookHostname     = "HOSTNAME"
	hookLabel        = "LABEL"
	hookTaint        = "TAINT"
	hookClusterCheck = "CLUSTERCHECK"
	hookEtcd         = "ETCD"
)

// hookAt is one hook at one point, checked and with its hosts resolved.
type hookAt struct {
	Hook
	typ     string
	info    phaseInfo
	targets []Host       // resolved On (all hosts for cluster phases; unused by LABEL/TAINT)
	changes []nodeChange // LABEL, TAINT, HOSTNAME: per-IP changes
}

// hookErr formats an error about a Plugin document's field.
func hookErr(h Hook, field, format string, args ...any) error {
	where := fmt.Sprintf("plugin %q", h.Name)
	if h.Source != "" {
		where = h.Source + ": " + where
	}
	return fmt.Errorf("%w: %s: %s: %s", ErrInvalid, where, field, fmt.Sprintf(format, args...))
}

// hookSet is every hook of a cluster by point, each list sorted by name.
type hookSet map[point][]hookAt

// resolveHooks checks every hook of c (whatever operation is being
// built, so a mistake shows at install) and groups them by point.
// kube: the runtime has a Kubernetes API.
func (c *cluster) resolveHooks(kube bool) (hookSet, error) {
	set := hookSet{}
	for _, h := range c.d.Hooks {
		if h.Name == "" {
			return nil, hookErr(h, "metadata.name", "is empty")
		}
		typ := strings.ToUpper(strings.TrimSpace(h.Type))
		switch typ {
		case hookShell, hookHostname, hookLabel, hookTaint, hookClusterCheck, hookEtcd:
		case "":
			return nil, hookErr(h, "spec.type", "is empty: want SHELL")
		default:
			return nil, hookErr(h, "spec.type", "unknown type %q: want SHELL, HOSTNAME, LABEL, TAINT, CLUSTERCHECK or ETCD", h.Type)
		}
		if typ != hookShell && typ != hookHostname && !kube {
			return nil, hookErr(h, "spec.type", "%s needs a Kubernetes runtime", typ)
		}
		names := strings.Split(h.Phase, "|")
		if strings.TrimSpace(h.Phase) == "" {
			return nil, hookErr(h, "spec.action", "is empty")
		}
		for _, name := range names {
			name = strings.TrimSpace(name)
			if name == "" {
				continue
			}
			info, ok := phases[strings.ToLower(name)]
			if !ok {
				return nil, hookErr(h, "spec.action", "unknown phase %q", name)
			}
			at, err := c.resolveHook(h, typ, info)
			if err != nil {
				return nil, err
			}
			if typ != hookShell && typ != hookHostname && !slices.Contains(kubePoints, info.pt) {
				return nil, hookErr(h, "spec.action", "%s plugins need a running cluster; phase %s runs before it is up", typ, name)
			}
			set[info.pt] = append(set[info.pt], at)
		}
	}
	for pt := range set {
		slices.SortStableFunc(set[pt], func(a, b hookAt) int { return cmp.Compare(a.Name, b.Name) })
	}
	return set, nil
}

func (c *cluster) resolveHook(h Hook, typ string, info phaseInfo) (hookAt, error) {
	at := hookAt{Hook: h, typ: typ, info: info}
	var err error
	switch typ {
	case hookShell:
		if strings.TrimSpace(h.Data) == "" {
			return at, hookErr(h, "spec.data", "is empty: a SHELL hook needs a script")
		}
		if info.cluster {
			at.targets = []Host{c.master0}
		} else if at.targets, err = c.resolveOn(h.On); err != nil {
			return at, hookErr(h, onField(info), "%v", err)
		}
	case hookClusterCheck:
		at.targets = []Host{c.master0}
	case hookEtcd:
		// sealer's "on" of an ETCD plugin is where the snapshot goes: a
		// file on master0 (sealer wrote it on the machine it ran on).
		if p := strings.TrimSpace(h.On); p == "" || !strings.HasPrefix(p, "/") {
			return at, hookErr(h, "spec.on", "%q: want the absolute path of the snapshot file on the first master", h.On)
		}
		at.targets = []Host{c.master0}
	case hookHostname:
		at.changes, err = parseHostnameData(h.Data)
	case hookLabel:
		at.changes, err = parseLabelData(h.Data)
	case hookTaint:
		at.changes, err = parseTaintData(h.Data)
	}
	if err != nil {
		return at, hookErr(h, "spec.data", "%v", err)
	}
	for _, ch := range at.changes {
		if _, ok := c.byIP[ch.IP]; !ok {
			return at, hookErr(h, "spec.data", "%s is not a host of the cluster", ch.IP)
		}
	}
	return at, nil
}

// onField names the field On came from.
func onField(info phaseInfo) string {
	if info.gen1 {
		return "spec.on"
	}
	return "spec.scope"
}

// resolveOn picks the hosts a Plugin's on/scope names: "" is all; "k=v"
// (comma-separated, all must hold) a label selector, matched against the
// hosts' labels and role labels; IPs ("a,b" or a range "a-b") those
// hosts; otherwise roles joined with "|" (or ",").
func (c *cluster) resolveOn(on string) ([]Host, error) {
	on = strings.TrimSpace(on)
	switch {
	case on == "":
		return c.all, nil
	case strings.Contains(on, "="):
		return c.selectLabels(on)
	case looksLikeIP(on):
		addrs, err := parseIPList(on)
		if err != nil {
			return nil, err
		}
		var out []Host
		for _, a := range addrs {
			h, ok := c.byIP[a]
			if !ok {
				return nil, fmt.Errorf("%s is not a host of the cluster", a)
			}
			if !slices.ContainsFunc(out, func(o Host) bool { return o.IP == a }) {
				out = append(out, h)
			}
		}
		return out, nil
	}
	roles := strings.FieldsFunc(on, func(r rune) bool { return r == '|' || r == ',' })
	var out []Host
	for _, h := range c.all {
		if slices.ContainsFunc(roles, func(r string) bool { return h.HasRole(strings.TrimSpace(r)) }) {
			out = append(out, h)
		}
	}
	return out, nil
}

func (c *cluster) selectLabels(sel string) ([]Host, error) {
	type req struct{ k, v string }
	var reqs []req
	for _, part := range strings.Split(sel, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("label selector %q: want key=value[,key=value]", sel)
		}
		reqs = append(reqs, req{k, v})
	}
	var out []Host
	for _, h := range c.all {
		if !slices.ContainsFunc(reqs, func(r req) bool { return !hostHasLabel(h, r.k, r.v) }) {
			out = append(out, h)
		}
	}
	return out, nil
}

// hostHasLabel: the host's own labels, plus node-role.kubernetes.io/<role>
// for its roles (control-plane standing in for master).
func hostHasLabel(h Host, k, v string) bool {
	if got, ok := h.Labels[k]; ok {
		return got == v
	}
	role, ok := strings.CutPrefix(k, "node-role.kubernetes.io/")
	if !ok || v != "" {
		return false
	}
	return h.HasRole(role) || role == "control-plane" && h.HasRole(RoleMaster)
}

func looksLikeIP(s string) bool {
	first, _, _ := strings.Cut(s, ",")
	first, _, _ = strings.Cut(strings.TrimSpace(first), "-")
	_, err := netip.ParseAddr(strings.TrimSpace(first))
	return err == nil
}

// maxRange bounds an IP range, so a typo cannot expand to millions.
const maxRange = 4096

// parseIPList reads "a,b,c" where each item is an IP or a range "a-b".
func parseIPList(s string) ([]string, error) {
	var out []string
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		from, to, isRange := strings.Cut(item, "-")
		a, err := netip.ParseAddr(strings.TrimSpace(from))
		if err != nil || a.Zone() != "" {
			return nil, fmt.Errorf("%q is not an IP address", from)
		}
		if !isRange {
			out = append(out, a.String())
			continue
		}
		b, err := netip.ParseAddr(strings.TrimSpace(to))
		if err != nil || b.Zone() != "" || a.Is4() != b.Is4() || b.Less(a) {
			return nil, fmt.Errorf("range %q: want FIRST-LAST, both of one family, FIRST <= LAST", item)
		}
		for n := 0; ; n++ {
			if n >= maxRange {
				return nil, fmt.Errorf("range %q: more than %d addresses", item, maxRange)
			}
			out = append(out, a.String())
			if a == b {
				break
			}
			a = a.Next()
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no IP address in %q", s)
	}
	return out, nil
}

// dataLines are the non-blank, non-comment lines of a plugin's data,
// with their line numbers (from 1).
func dataLines(data string) (lines []string, nums []int) {
	for i, l := range strings.Split(data, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		lines = append(lines, l)
		nums = append(nums, i+1)
	}
	return lines, nums
}

// parseHostnameData reads HOSTNAME data: "IP hostname" lines.
func parseHostnameData(data string) ([]nodeChange, error) {
	lines, nums := dataLines(data)
	var out []nodeChange
	for i, l := range lines {
		f := strings.Fields(l)
		if len(f) != 2 {
			return nil, fmt.Errorf("line %d: want \"IP hostname\"", nums[i])
		}
		a, err := netip.ParseAddr(f[0])
		if err != nil || a.Zone() != "" {
			return nil, fmt.Errorf("line %d: %q is not an IP address", nums[i], f[0])
		}
		if !validHostname(f[1]) {
			return nil, fmt.Errorf("line %d: %q is not a host name", nums[i], f[1])
		}
		out = append(out, nodeChange{IP: a.String(), Hostname: f[1]})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no \"IP hostname\" line")
	}
	return out, nil
}

func validHostname(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// parseLabelData reads LABEL data: "IP k=v,k2=v2" lines.
func parseLabelData(data string) ([]nodeChange, error) {
	lines, nums := dataLines(data)
	var out []nodeChange
	for i, l := range lines {
		f := strings.Fields(l)
		if len(f) != 2 {
			return nil, fmt.Errorf("line %d: want \"IP key=value[,key=value]\"", nums[i])
		}
		a, err := netip.ParseAddr(f[0])
		if err != nil || a.Zone() != "" {
			return nil, fmt.Errorf("line %d: %q is not an IP address", nums[i], f[0])
		}
		ch := nodeChange{IP: a.String()}
		for _, kv := range strings.Split(f[1], ",") {
			if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
				return nil, fmt.Errorf("line %d: label %q: want key=value", nums[i], kv)
			}
			ch.Labels = append(ch.Labels, kv)
		}
		out = append(out, ch)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no \"IP key=value\" line")
	}
	return out, nil
}

// parseTaintData reads TAINT data: "IPs taint" lines, IPs a list or a
// range.
func parseTaintData(data string) ([]nodeChange, error) {
	lines, nums := dataLines(data)
	var out []nodeChange
	for i, l := range lines {
		f := strings.Fields(l)
		if len(f) != 2 {
			return nil, fmt.Errorf("line %d: want \"IPs key=value:Effect\"", nums[i])
		}
		addrs, err := parseIPList(f[0])
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", nums[i], err)
		}
		t, err := parseTaint(f[1])
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", nums[i], err)
		}
		for _, a := range addrs {
			out = append(out, nodeChange{IP: a, Taints: []taint{t}})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no \"IPs taint\" line")
	}
	return out, nil
}

// hookSteps are the steps of the hooks at pt, on the hosts of opHosts
// they pick (cluster hooks: on master0 whatever opHosts is). api is the
// runtime's Kubernetes access (nil: none).
func (c *cluster) hookSteps(b *builder, set hookSet, pt point, opHosts []Host, api *kubeAPI) []protocol.StepSpec {
	var steps []protocol.StepSpec
	for _, h := range set[pt] {
		name := b.uniq(string(pt) + "-" + stepToken(h.Name))
		switch h.typ {
		case hookShell:
			targets := h.targets
			if !h.info.cluster {
				targets = only(targets, opHosts)
			}
			if len(targets) == 0 {
				continue
			}
			var st protocol.StepSpec
			if pt == ptOriginally {
				// Gen-1 ran Originally before anything reached the hosts.
				st = c.hostStep(name, literal(h.Data), targets, true)
			} else {
				st = c.rootfsStep(name, pathPrelude+literal(h.Data), targets)
			}
			st.TimeoutMs = timeoutUser
			if api != nil && h.info.cluster {
				c.addKubeconfig(&st, api)
			}
			steps = append(steps, st)
		case hookHostname:
			var targets []Host
			nodeEnv := map[string]map[string]string{}
			for _, ch := range h.changes {
				if hs := only([]Host{c.byIP[ch.IP]}, opHosts); len(hs) > 0 {
					targets = append(targets, hs...)
					nodeEnv[ch.IP] = map[string]string{"DROVE_HOSTNAME": ch.Hostname}
				}
			}
			if len(targets) == 0 {
				continue
			}
			st := c.hostStep(name, script(
				`hostnamectl set-hostname "$DROVE_HOSTNAME" 2>/dev/null ||`,
				`	{ hostname "$DROVE_HOSTNAME" && printf '%s\n' "$DROVE_HOSTNAME" > /etc/hostname; }`), targets, false)
			st.NodeEnv, st.Idempotent, st.Retry = nodeEnv, true, retryIdem
			steps = append(steps, st)
		case hookLabel, hookTaint:
			var changes []nodeChange
			for _, ch := range h.changes {
				if len(only([]Host{c.byIP[ch.IP]}, opHosts)) > 0 {
					changes = append(changes, ch)
				}
			}
			if len(changes) == 0 || api == nil {
				continue
			}
			steps = append(steps, c.kubeStep(name, nodeScript(api.kubectl, changes), api, timeoutMedium))
		case hookClusterCheck:
			if api == nil {
				continue
			}
			st := c.kubeStep(name, script("set -e", kubectlFns(api.kubectl),
				`drove_kubectl wait --for=condition=Ready nodes --all --timeout=600s`,
				`drove_kubectl wait -n kube-system --for=condition=Ready pods --all --field-selector=status.phase!=Succeeded --timeout=600s`),
				api, timeoutScripts)
			st.Retry = noRetry
			steps = append(steps, st)
		case hookEtcd:
			if api == nil {
				continue
			}
			st := c.kubeStep(name, etcdSnapshotScript(api.kubectl), api, timeoutScripts)
			if st.Action.Env == nil {
				st.Action.Env = map[string]string{}
			}
			st.Action.Env["DROVE_ETCD_SNAPSHOT"] = literal(strings.TrimSpace(h.On))
			steps = append(steps, st)
		}
	}
	return steps
}

// etcdSnapshotScript saves an etcd v3 snapshot of a kubeadm cluster to
// $DROVE_ETCD_SNAPSHOT on master0 (sealer's ETCD plugin): with the host's
// etcdctl if it has one, else with the etcdctl inside the etcd static pod,
// writing into its data directory (a host path) and moving the file out.
// The file appears whole or not at all.
func etcdSnapshotScript(kubectl string) string {
	return script("set -e", kubectlFns(kubectl),
		`dest=$DROVE_ETCD_SNAPSHOT`,
		`mkdir -p "$(dirname "$dest")"`,
		`pki=/etc/kubernetes/pki/etcd`,
		`tls="--endpoints=https://127.0.0.1:2379 --cacert=$pki/ca.crt --cert=$pki/healthcheck-client.crt --key=$pki/healthcheck-client.key"`,
		`tmp="$dest.drove-tmp"`,
		`if command -v etcdctl >/dev/null 2>&1; then`,
		`	ETCDCTL_API=3 etcdctl $tls snapshot save "$tmp"`,
		`else`,
		`	pod=$(drove_kubectl -n kube-system get pods -l component=etcd -o jsonpath='{.items[0].metadata.name}')`,
		`	[ -n "$pod" ] || { echo "no etcd pod in kube-system and no etcdctl on this host" >&2; exit 1; }`,
		`	drove_kubectl -n kube-system exec "$pod" -- env ETCDCTL_API=3 etcdctl $tls snapshot save /var/lib/etcd/drove-snapshot.db`,
		`	mv -f /var/lib/etcd/drove-snapshot.db "$tmp"`,
		`fi`,
		`mv -f "$tmp" "$dest"`,
		`echo "etcd snapshot saved to $dest"`)
}

// stepToken makes a name usable inside a step name.
func stepToken(s string) string {
	var b strings.Builder
	for _, r := range s {
		if isNameChar(r) {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	return b.String()
}
