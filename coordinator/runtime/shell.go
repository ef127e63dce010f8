package runtime

import (
	"net"
	"strings"
	"time"

	"github.com/drove-project/drove/protocol"
)

// Step limits. Steps that are safe to run again get retries; the others
// (kubeadm init, joins, user commands) run once and fail for a human.
var (
	retryIdem = protocol.RetryPolicy{Attempts: 3, BackoffMs: 2000}
	noRetry   = protocol.RetryPolicy{}
)

const (
	timeoutShort   = int64(2 * time.Minute / time.Millisecond)
	timeoutMedium  = int64(5 * time.Minute / time.Millisecond)
	timeoutInit    = int64(10 * time.Minute / time.Millisecond)
	timeoutScripts = int64(15 * time.Minute / time.Millisecond)
	timeoutUser    = int64(30 * time.Minute / time.Millisecond)
	timeoutDist    = int64(60 * time.Minute / time.Millisecond)
)

// Names the kubeadm runtime and /etc/hosts share.
const (
	apiServerDomain = "apiserver.cluster.local"
	apiServerPort   = "6443"
	defaultVIP      = "10.103.97.2"
)

// quote makes s one single-quoted shell word.
func quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// literal protects text that is not a template (a user's command, a
// config file) in a field the coordinator renders as one: every "{{"
// becomes {{"{{"}}, which renders back to "{{".
func literal(s string) string {
	return strings.ReplaceAll(s, "{{", `{{"{{"}}`)
}

// literalEnv applies literal to every value of env.
func literalEnv(env map[string]string) map[string]string {
	if len(env) == 0 {
		return nil
	}
	out := make(map[string]string, len(env))
	for k, v := range env {
		out[k] = literal(v)
	}
	return out
}

// outputPrefix starts a line by which a shell step sets a named output
// (the agent's OutputPrefix: "::drove-output NAME=VALUE").
const outputPrefix = "::drove-output "

// output is the template that reads a named output of an earlier step.
func output(step, name string) string {
	return `{{output "` + step + `" "` + name + `"}}`
}

// printOutput is the shell that sets output name to the value of the
// shell expression expr (a "$var" or "$(cmd)").
func printOutput(name, expr string) string {
	return `printf '` + outputPrefix + name + `=%s\n' ` + expr
}

// hostPort joins an address and port (brackets for IPv6).
func hostPort(ip, port string) string { return net.JoinHostPort(ip, port) }

// pathPrelude puts the image's binaries first on shell steps' PATH: the
// cluster image fixes the versions (its kubectl matches its kubeadm), and
// a different kubectl the host happens to have must not answer for it.
const pathPrelude = `export PATH="$ROOTFS/bin:$PATH"` + "\n"

// hostsFn defines drove_hosts TAG [LINE...]: it replaces the /etc/hosts
// lines drove wrote under TAG with LINEs. It rewrites the file in place
// (cat, not rename), as /etc/hosts is often a bind mount.
const hostsFn = `drove_hosts() {
	tag="# drove:$1"; shift
	tmp=$(mktemp) || return 1
	grep -v -F -e "$tag" /etc/hosts > "$tmp" || true
	for line in "$@"; do printf '%s %s\n' "$line" "$tag" >> "$tmp"; done
	cat "$tmp" > /etc/hosts; rc=$?
	rm -f "$tmp"
	return $rc
}
`

// Tags of the /etc/hosts lines drove manages.
const (
	hostsTagAlias     = "alias"
	hostsTagAPIServer = "apiserver"
)

// hostsLine is one /etc/hosts entry as a drove_hosts argument.
func hostsLine(ip string, names ...string) string {
	return quote(ip + " " + strings.Join(names, " "))
}

// kubectlFns defines drove_kubectl (the runtime's kubectl) and
// drove_node IP, which prints the name of the Kubernetes node with that
// InternalIP, or fails.
func kubectlFns(kubectl string) string {
	return `drove_kubectl() { ` + kubectl + ` "$@"; }
drove_node() {
	n=$(drove_kubectl get nodes -o jsonpath='{range .items[*]}{.metadata.name}{"\t"}{.status.addresses[?(@.type=="InternalIP")].address}{"\n"}{end}' |
		awk -F '\t' -v ip="$1" '{ n = split($2, a, " "); for (i = 1; i <= n; i++) if (a[i] == ip) { print $1; exit } }')
	if [ -z "$n" ]; then echo "no Kubernetes node has address $1" >&2; return 1; fi
	printf '%s\n' "$n"
}
`
}

// script joins shell lines, one per line.
func script(lines ...string) string {
	var b strings.Builder
	for _, l := range lines {
		if l == "" {
			continue
		}
		b.WriteString(l)
		if !strings.HasSuffix(l, "\n") {
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// ifScript runs scripts/<name> from the rootfs when the image has it.
func ifScript(name string) string {
	p := "scripts/" + name
	return `if [ -f ` + p + ` ]; then bash ` + p + `; else echo "no ` + p + ` in the image: skipped"; fi`
}
