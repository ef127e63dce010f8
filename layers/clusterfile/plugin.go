package clusterfile

import (
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Plugin types. Gen-2 hooks are all SHELL; the others are Gen-1 plugins.
const (
	PluginShell        = "SHELL"
	PluginHostname     = "HOSTNAME"     // data: "IP hostname" lines
	PluginLabel        = "LABEL"        // data: "IP k=v,k2=v2" lines
	PluginTaint        = "TAINT"        // data: "IPs key=value:Effect" lines
	PluginClusterCheck = "CLUSTERCHECK" // wait until the cluster is stable
	PluginEtcd         = "ETCD"         // etcd snapshot to Plugin.BackupPath
)

var pluginTypes = []string{PluginShell, PluginHostname, PluginLabel, PluginTaint, PluginClusterCheck, PluginEtcd}

// Gen-1 plugin phases, in pipeline order.
const (
	PhaseOriginally  = "Originally" // on the control host, before anything
	PhasePreInit     = "PreInit"
	PhasePreInstall  = "PreInstall"
	PhasePreGuest    = "PreGuest" // before the image's commands and apps
	PhasePostInstall = "PostInstall"
	PhasePreJoin     = "PreJoin"
	PhasePostJoin    = "PostJoin"
	PhasePreClean    = "PreClean"
	PhasePostClean   = "PostClean"
)

// Gen-2 hook phases. The cluster phases run on the first master; the host
// phases on the hosts whose roles match the scope.
const (
	HookPreInstall    = "pre-install"
	HookPostInstall   = "post-install"
	HookPreUninstall  = "pre-uninstall"
	HookPostUninstall = "post-uninstall"
	HookPreScaleUp    = "pre-scaleup"
	HookPostScaleUp   = "post-scaleup"
	HookUpgrade       = "upgrade"
	HookRollback      = "rollback"
	HookPreInitHost   = "pre-init-host"
	HookPostInitHost  = "post-init-host"
	HookPreCleanHost  = "pre-clean-host"
	HookPostCleanHost = "post-clean-host"
	HookUpgradeHost   = "upgrade-host"
)

var legacyPhases = []string{
	PhaseOriginally, PhasePreInit, PhasePreInstall, PhasePreGuest, PhasePostInstall,
	PhasePreJoin, PhasePostJoin, PhasePreClean, PhasePostClean,
}

var hookPhases = []string{
	HookPreInstall, HookPostInstall, HookPreUninstall, HookPostUninstall,
	HookPreScaleUp, HookPostScaleUp, HookUpgrade, HookRollback,
	HookPreInitHost, HookPostInitHost, HookPreCleanHost, HookPostCleanHost, HookUpgradeHost,
}

// IsLegacyPhase reports whether p is a Gen-1 plugin phase ("PreInit").
func IsLegacyPhase(p string) bool { return slices.Contains(legacyPhases, p) }

// IsHookPhase reports whether p is a Gen-2 hook phase ("pre-init-host").
func IsHookPhase(p string) bool { return slices.Contains(hookPhases, p) }

// Plugin is a Plugin document: a Gen-1 plugin or a Gen-2 hook.
type Plugin struct {
	Name   string
	Type   string   // one of the Plugin* types
	Phases []string // Gen-1 or Gen-2 phase names, as written, each once
	On     Target   // where it runs; empty: every host
	// BackupPath is where an ETCD plugin writes its snapshot (its "on").
	BackupPath string
	Data       string
	Line       int
}

// Target selects hosts: by role, by address or by Kubernetes label. At
// most one of the fields is set; all empty selects every host.
type Target struct {
	Roles    []string // Gen-2 scope ("master|node"), or Gen-1 on: master, node, master0
	IPs      []string // Gen-1 on: an IP list or range
	Selector string   // Gen-1 on: a label selector such as "ssd=true" (needs a running cluster)
}

// Empty reports whether t selects every host.
func (t Target) Empty() bool {
	return len(t.Roles) == 0 && len(t.IPs) == 0 && t.Selector == ""
}

// plugin decodes the spec of a Plugin document.
func (w *walker) plugin(spec *yaml.Node, field string, p *Plugin) bool {
	before := len(w.errs)
	var typeGiven, actionGiven bool
	var onNode, scopeNode, actionNode *yaml.Node
	var on string
	_, ok := w.fields(spec, field, map[string]handler{
		"type": func(v *yaml.Node, path string) {
			typeGiven = true
			s, ok := w.str(v, path)
			if !ok {
				return
			}
			t := strings.ToUpper(strings.TrimSpace(s))
			if !slices.Contains(pluginTypes, t) {
				w.errorf(ErrInvalid, w.line(v), path, "%q is not a plugin type: want SHELL, HOSTNAME, LABEL, TAINT, CLUSTERCHECK or ETCD", s)
				return
			}
			p.Type = t
		},
		"action": func(v *yaml.Node, path string) {
			actionGiven, actionNode = true, v
			s, ok := w.str(v, path)
			if !ok {
				return
			}
			for _, ph := range strings.Split(s, "|") {
				ph = strings.TrimSpace(ph)
				switch {
				case ph == "" || slices.Contains(p.Phases, ph):
				case IsLegacyPhase(ph) || IsHookPhase(ph):
					p.Phases = append(p.Phases, ph)
				default:
					w.errorf(ErrInvalid, w.line(v), path, "%q is not a phase: want one of %s (plugins) or %s (hooks), joined with |",
						ph, strings.Join(legacyPhases, ", "), strings.Join(hookPhases, ", "))
					return
				}
			}
		},
		"on": func(v *yaml.Node, path string) {
			onNode = v
			on, _ = w.str(v, path)
			on = strings.TrimSpace(on)
		},
		"scope": func(v *yaml.Node, path string) {
			scopeNode = v
			s, ok := w.str(v, path)
			if !ok {
				return
			}
			for _, role := range strings.Split(s, "|") {
				role = strings.TrimSpace(role)
				if !isName(role) {
					w.errorf(ErrInvalid, w.line(v), path, "%q is not a role: want role names joined with |, e.g. master|node", role)
					return
				}
				if !slices.Contains(p.On.Roles, role) {
					p.On.Roles = append(p.On.Roles, role)
				}
			}
		},
		"data": w.setStr(&p.Data),
	})
	if !ok {
		return false
	}
	fieldLine := func(n *yaml.Node) int {
		if n != nil {
			return w.line(n)
		}
		return p.Line
	}
	if !typeGiven {
		w.errorf(ErrInvalid, p.Line, join(field, "type"), "missing: want SHELL, HOSTNAME, LABEL, TAINT, CLUSTERCHECK or ETCD")
	}
	if !actionGiven || (len(p.Phases) == 0 && len(w.errs) == before) {
		w.errorf(ErrInvalid, fieldLine(actionNode), join(field, "action"), "missing: the phase(s) to run in, e.g. PreInit or pre-install")
	}
	if onNode != nil && scopeNode != nil {
		w.errorf(ErrInvalid, w.line(scopeNode), join(field, "scope"), "give on (plugins) or scope (hooks), not both")
	}
	if p.Type != "" && p.Type != PluginShell {
		for _, ph := range p.Phases {
			if IsHookPhase(ph) {
				w.errorf(ErrInvalid, fieldLine(actionNode), join(field, "action"), "%s plugins run in the plugin phases (%s); hook phases such as %s take type SHELL",
					p.Type, strings.Join(legacyPhases, ", "), ph)
				break
			}
		}
	}
	if onNode != nil && on != "" {
		if p.Type == PluginEtcd {
			p.BackupPath = on
		} else {
			w.target(on, onNode, join(field, "on"), p)
		}
	}
	return len(w.errs) == before
}

// target reads a Gen-1 "on": a role, an IP list or range, or a label
// selector.
func (w *walker) target(on string, n *yaml.Node, field string, p *Plugin) {
	switch {
	case strings.Contains(on, "="):
		p.On.Selector = on
		for _, ph := range p.Phases {
			if ph != PhasePostInstall && ph != PhasePostJoin && ph != PhasePreClean {
				w.warnf(w.line(n), field, "a label selector selects nothing in phase %s: it needs a running cluster (PostInstall, PostJoin or PreClean)", ph)
				break
			}
		}
	case on == RoleMaster || on == RoleNode || on == "master0":
		p.On.Roles = []string{on}
	default:
		ips, msg := parseHostList(on, MaxHosts)
		if msg != "" {
			w.errorf(ErrInvalid, w.line(n), field, "%q is not a role (master, node, master0), an IP list or range, or a label selector (%s)", on, msg)
			return
		}
		p.On.IPs = ips
	}
}
