package runtime

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/drove-project/drove/protocol"
)

// Action kinds besides protocol.ActionDistribute.
const (
	kindShell     = "shell"
	kindWriteFile = "write-file"
	kindRender    = "render"
	// kindAPILB asks the agent to serve the node-local API server load
	// balancer on 127.0.0.1:6443 towards the backends in
	// Env[EnvAPILBBackends]; empty backends stop it.
	kindAPILB = "apilb"
)

// EnvAPILBBackends is the apilb action's list of backends, "host:port"
// joined with ",".
const EnvAPILBBackends = "DROVE_APILB_BACKENDS"

// kubeAPI is how a runtime reaches its Kubernetes API from a master.
type kubeAPI struct {
	kubectl    string // command prefix, e.g. "k3s kubectl"
	kubeconfig string // admin kubeconfig on masters
}

// nodeEnv is each host's env (over the cluster's), with HostIP.
func nodeEnv(hosts []Host) map[string]map[string]string {
	out := make(map[string]map[string]string, len(hosts))
	for _, h := range hosts {
		env := make(map[string]string, len(h.Env)+1)
		maps.Copy(env, h.Env)
		env["HostIP"] = h.IP
		out[h.IP] = env
	}
	return out
}

// hostStep is a shell step on the host itself (outside any rootfs).
// withEnv passes the cluster and host env, as sealer does for hooks.
func (c *cluster) hostStep(name, command string, hosts []Host, withEnv bool) protocol.StepSpec {
	st := protocol.StepSpec{
		Name:      name,
		Target:    protocol.Selector{Nodes: ips(hosts)},
		Action:    protocol.Action{Kind: kindShell, Command: command},
		TimeoutMs: timeoutMedium,
	}
	if withEnv {
		st.Action.Env = literalEnv(c.d.Env)
		st.NodeEnv = nodeEnv(hosts)
	}
	return st
}

// rootfsStep is a shell step that runs in the image's rootfs with the
// cluster and host env (sealer: cd <rootfs> && export env && command).
func (c *cluster) rootfsStep(name, command string, hosts []Host) protocol.StepSpec {
	st := c.hostStep(name, command, hosts, true)
	st.Action.Rootfs = c.d.ImageDigest
	return st
}

// idem marks a step safe to run again, with retries.
func idem(st protocol.StepSpec, timeoutMs int64) protocol.StepSpec {
	st.Idempotent, st.Retry, st.TimeoutMs = true, retryIdem, timeoutMs
	return st
}

// once marks a step to run once: it is guarded so that a rerun after an
// interruption finds the work done, but a failure is left to a human.
func once(st protocol.StepSpec, timeoutMs int64) protocol.StepSpec {
	st.Idempotent, st.Retry, st.TimeoutMs = true, noRetry, timeoutMs
	return st
}

// addKubeconfig points kubectl at the runtime's admin kubeconfig, unless
// the env already does.
func (c *cluster) addKubeconfig(st *protocol.StepSpec, api *kubeAPI) {
	if _, set := c.d.Env["KUBECONFIG"]; set || api.kubeconfig == "" {
		return
	}
	if st.Action.Env == nil {
		st.Action.Env = map[string]string{}
	}
	st.Action.Env["KUBECONFIG"] = api.kubeconfig
}

// writeFile is a write-file step. content may hold output templates;
// callers pass user text through literal.
func writeFile(name, path, content string, mode uint32, hosts []Host) protocol.StepSpec {
	return idem(protocol.StepSpec{
		Name:   name,
		Target: protocol.Selector{Nodes: ips(hosts)},
		Action: protocol.Action{Kind: kindWriteFile, Path: path, Content: content, Mode: mode},
	}, timeoutShort)
}

// aliasStep writes the Clusterfile's hostAliases to /etc/hosts.
func (c *cluster) aliasStep(hosts []Host) protocol.StepSpec {
	if len(c.d.HostAliases) == 0 {
		return protocol.StepSpec{}
	}
	lines := make([]string, 0, len(c.d.HostAliases))
	for _, a := range c.d.HostAliases {
		lines = append(lines, hostsLine(a.IP, a.Hostnames...))
	}
	cmd := script(hostsFn, "drove_hosts "+hostsTagAlias+" "+literal(strings.Join(lines, " ")))
	return idem(c.hostStep("host-aliases", cmd, hosts, false), timeoutShort)
}

// removeAliasStep takes drove's alias lines out of /etc/hosts.
func (c *cluster) removeAliasStep(hosts []Host) protocol.StepSpec {
	if len(c.d.HostAliases) == 0 {
		return protocol.StepSpec{}
	}
	cmd := script(hostsFn, "drove_hosts "+hostsTagAlias+" || true")
	return idem(c.hostStep("remove-host-aliases", cmd, hosts, false), timeoutShort)
}

// distributeStep delivers the image to hosts (and its seeds, which serve).
func (c *cluster) distributeStep(hosts []Host) protocol.StepSpec {
	nodes := ips(hosts)
	if c.d.Distribution != nil {
		for _, s := range c.d.Distribution.Seeds {
			if !slices.Contains(nodes, s) {
				nodes = append(nodes, s)
			}
		}
	}
	return idem(protocol.StepSpec{
		Name:   "distribute",
		Target: protocol.Selector{Nodes: nodes},
		Action: protocol.Action{Kind: protocol.ActionDistribute, Distribution: c.d.Distribution},
	}, timeoutDist)
}

// renderStep renders the rootfs's templates with the env and applies the
// Clusterfile's Configs, on each host.
func (c *cluster) renderStep(hosts []Host) protocol.StepSpec {
	return idem(protocol.StepSpec{
		Name:   "render",
		Target: protocol.Selector{Nodes: ips(hosts)},
		Action: protocol.Action{
			Kind:    kindRender,
			Rootfs:  c.d.ImageDigest,
			Env:     literalEnv(c.d.Env),
			Configs: slices.Clone(c.d.Configs),
		},
		NodeEnv: nodeEnv(hosts),
	}, timeoutMedium)
}

// initScriptStep runs scripts/init.sh where the image has one.
func (c *cluster) initScriptStep(hosts []Host) protocol.StepSpec {
	return idem(c.rootfsStep("init-script", script(pathPrelude, ifScript("init.sh")), hosts), timeoutScripts)
}

// criStep installs the container runtime with scripts/<cri>.sh.
func (c *cluster) criStep(hosts []Host, cri string) protocol.StepSpec {
	if cri == "" {
		return protocol.StepSpec{}
	}
	return idem(c.rootfsStep("install-cri", script(pathPrelude, ifScript(cri+".sh")), hosts), timeoutScripts)
}

// uninstallCRIStep removes the container runtime, best effort.
func (c *cluster) uninstallCRIStep(hosts []Host, cri string) protocol.StepSpec {
	if cri == "" {
		return protocol.StepSpec{}
	}
	cmd := script(pathPrelude, "{ "+ifScript("uninstall-"+cri+".sh")+"; } || true")
	return idem(c.rootfsStep("uninstall-cri", cmd, hosts), timeoutScripts)
}

// cleanStep runs the image's scripts/clean.sh, best effort.
func (c *cluster) cleanStep(hosts []Host) protocol.StepSpec {
	cmd := script(pathPrelude, "{ "+ifScript("clean.sh")+"; } || true")
	return idem(c.rootfsStep("clean-script", cmd, hosts), timeoutScripts)
}

// labelStep gives hosts their role labels, labels and taints, from
// master0.
func (c *cluster) labelStep(hosts []Host, api *kubeAPI) protocol.StepSpec {
	if api == nil || len(hosts) == 0 {
		return protocol.StepSpec{}
	}
	return c.kubeStep("node-labels", nodeScript(api.kubectl, hostChanges(hosts)), api, timeoutMedium)
}

// kubeStep runs a script against the runtime's API on master0, in the
// rootfs (so the image's kubectl is found if the host has none), safe to
// repeat.
func (c *cluster) kubeStep(name, command string, api *kubeAPI, timeoutMs int64) protocol.StepSpec {
	st := idem(c.rootfsStep(name, pathPrelude+command, []Host{c.master0}), timeoutMs)
	c.addKubeconfig(&st, api)
	return st
}

// cmdSteps run the CMDS/LAUNCH commands on master0, in order, in the
// rootfs.
func (c *cluster) cmdSteps(api *kubeAPI) []protocol.StepSpec {
	var out []protocol.StepSpec
	for i, cmd := range c.d.Cmds {
		if cmd == "" {
			continue
		}
		st := c.rootfsStep("cmd-"+strconv.Itoa(i+1), pathPrelude+literal(cmd), []Host{c.master0})
		st.TimeoutMs = timeoutUser
		if api != nil {
			c.addKubeconfig(&st, api)
		}
		out = append(out, st)
	}
	return out
}

// apilbStep points the node-local API load balancer of hosts at the
// masters (none: stop it).
func apilbStep(name string, hosts []Host, masters []string) protocol.StepSpec {
	backends := make([]string, len(masters))
	for i, m := range masters {
		backends[i] = hostPort(m, apiServerPort)
	}
	return idem(protocol.StepSpec{
		Name:   name,
		Target: protocol.Selector{Nodes: ips(hosts)},
		Action: protocol.Action{Kind: kindAPILB, Env: map[string]string{EnvAPILBBackends: strings.Join(backends, ",")}},
	}, timeoutShort)
}

// stepf formats a numbered step or phase name.
func stepf(format string, args ...any) string { return fmt.Sprintf(format, args...) }
