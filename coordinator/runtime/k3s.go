package runtime

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/drove-project/drove/protocol"
)

// k3s is the "k3s" runtime: k3s from the image's bin/k3s, an embedded
// etcd cluster started on master0 (--cluster-init), the other masters
// joining as servers one at a time, workers as agents.
type k3s struct{}

const (
	k3sConfigFile = "/etc/rancher/k3s/config.yaml"
	k3sTokenFile  = "/var/lib/rancher/k3s/server/node-token"
	stepK3sToken  = "k3s-token"
)

var k3sAPI = &kubeAPI{kubectl: "k3s kubectl", kubeconfig: "/etc/rancher/k3s/k3s.yaml"}

func (k3s) name() string                   { return "k3s" }
func (k3s) needsMaster() bool              { return true }
func (k3s) containerd() (string, bool)     { return "/run/k3s/containerd/containerd.sock", true }
func (k3s) defaultCRI() string             { return "" } // embedded containerd
func (k3s) api() *kubeAPI                  { return k3sAPI }
func (k3s) isNode(c *cluster, h Host) bool { return true }

// prepare installs the binary, its kubectl/crictl/ctr links, and the
// air-gap images the image carries.
func (k3s) prepare(c *cluster, hosts []Host) []protocol.StepSpec {
	cmd := script("set -e",
		`if [ ! -f bin/k3s ]; then echo "the image has no bin/k3s" >&2; exit 1; fi`,
		"install -m 0755 bin/k3s /usr/local/bin/k3s",
		`for l in kubectl crictl ctr; do if ! command -v "$l" >/dev/null 2>&1; then ln -sf /usr/local/bin/k3s "/usr/local/bin/$l"; fi; done`,
		"if ls images/k3s-airgap-images* >/dev/null 2>&1; then",
		"	mkdir -p /var/lib/rancher/k3s/agent/images",
		"	cp -f images/k3s-airgap-images* /var/lib/rancher/k3s/agent/images/",
		"fi")
	return []protocol.StepSpec{idem(c.rootfsStep("k3s-binary", cmd, hosts), timeoutScripts)}
}

func (k k3s) create(b *builder, c *cluster) error {
	m0 := []Host{c.master0}
	b.phase("k3s-init", 0,
		writeFile("k3s-config", k3sConfigFile, c.k3sConfig("server", true), 0o600, m0),
		once(c.rootfsStep("k3s-server-init", k3sStartCommand("server"), m0), timeoutInit),
		c.k3sTokenStep())
	k.joins(b, c, c.masters[1:], c.workers)
	return nil
}

func (k k3s) join(b *builder, c *cluster, masters, workers []Host) error {
	b.phase(stepK3sToken, 0, c.k3sTokenStep())
	k.joins(b, c, masters, workers)
	return nil
}

func (k3s) joins(b *builder, c *cluster, masters, workers []Host) {
	b.phase("join-servers", 1,
		writeFile("k3s-server-config", k3sConfigFile, c.k3sConfig("server", false), 0o600, masters),
		once(c.rootfsStep("join-servers", k3sStartCommand("server"), masters), timeoutInit))
	b.phase("join-agents", workerParallel,
		writeFile("k3s-agent-config", k3sConfigFile, c.k3sConfig("agent", false), 0o600, workers),
		once(c.rootfsStep("join-agents", k3sStartCommand("agent"), workers), timeoutInit))
}

// k3sConfig is /etc/rancher/k3s/config.yaml: init (master0) starts the
// etcd cluster; the others join master0 with the token.
func (c *cluster) k3sConfig(mode string, init bool) string {
	var b strings.Builder
	str := func(s string) string { j, _ := json.Marshal(s); return literal(string(j)) }
	if init {
		b.WriteString("cluster-init: true\n")
	} else {
		fmt.Fprintf(&b, "server: %s\n", str("https://"+hostPort(c.master0.IP, apiServerPort)))
		fmt.Fprintf(&b, "token: '%s'\n", output(stepK3sToken, outToken))
	}
	if mode == "server" {
		b.WriteString("tls-san:\n")
		for _, s := range append(append([]string{apiServerDomain}, c.masterIPs()...), c.d.CertSANs...) {
			fmt.Fprintf(&b, "  - %s\n", str(s))
		}
		if v := c.d.Env["PodCIDR"]; v != "" {
			fmt.Fprintf(&b, "cluster-cidr: %s\n", str(v))
		}
		if v := c.d.Env["SvcCIDR"]; v != "" {
			fmt.Fprintf(&b, "service-cidr: %s\n", str(v))
		}
		b.WriteString("write-kubeconfig-mode: \"0600\"\n")
	}
	if c.cri("") == "docker" {
		b.WriteString("docker: true\n")
	}
	return b.String()
}

// k3sStartCommand writes k3s's systemd unit (the node's address from
// HostIP) and starts it; a server waits for its API.
func k3sStartCommand(mode string) string {
	unit, typ := "k3s", "notify"
	if mode == "agent" {
		unit, typ = "k3s-agent", "exec"
	}
	lines := []string{"set -e",
		`printf 'DROVE_NODE_IP=%s\n' "$HostIP" > /etc/default/` + unit,
		"cat > /etc/systemd/system/" + unit + ".service <<'EOF'",
		"[Unit]",
		"Description=Lightweight Kubernetes (installed by drove)",
		"Wants=network-online.target",
		"After=network-online.target",
		"[Service]",
		"Type=" + typ,
		"EnvironmentFile=-/etc/default/" + unit,
		"ExecStartPre=-/sbin/modprobe br_netfilter",
		"ExecStartPre=-/sbin/modprobe overlay",
		"ExecStart=/usr/local/bin/k3s " + mode + " --node-ip ${DROVE_NODE_IP}",
		"KillMode=process",
		"Delegate=yes",
		"LimitNOFILE=1048576",
		"LimitNPROC=infinity",
		"LimitCORE=infinity",
		"TasksMax=infinity",
		"TimeoutStartSec=0",
		"Restart=always",
		"RestartSec=5s",
		"[Install]",
		"WantedBy=multi-user.target",
		"EOF",
		"systemctl daemon-reload",
		"systemctl enable --now " + unit,
	}
	if mode == "server" {
		lines = append(lines, waitFor("k3s kubectl get --raw=/readyz", "the k3s API server"))
	}
	return script(lines...)
}

// waitFor polls a command every 2 s for up to 10 minutes.
func waitFor(cmd, what string) string {
	return "i=0\nuntil " + cmd + " >/dev/null 2>&1; do\n" +
		"	i=$((i + 1))\n" +
		"	if [ \"$i\" -ge 300 ]; then echo \"timed out waiting for " + what + "\" >&2; exit 1; fi\n" +
		"	sleep 2\ndone"
}

// k3sTokenStep prints master0's join token.
func (c *cluster) k3sTokenStep() protocol.StepSpec {
	cmd := script("set -e",
		waitFor("test -s "+k3sTokenFile, "the k3s token"),
		printOutput(outToken, `"$(cat `+k3sTokenFile+`)"`))
	return idem(c.hostStep(stepK3sToken, cmd, []Host{c.master0}, false), timeoutMedium)
}

func (k k3s) leave(b *builder, c *cluster, removed []Host, rest *cluster) error {
	kv, _ := parseKubeVersion(c.d.KubeVersion)
	b.phase("drain", 0, rest.drainStep("drain-nodes", removed, k3sAPI, kv, true))
	b.phase("reset", 0, k.reset(c, removed)...)
	// Deleting a server's node also takes it out of the etcd cluster.
	b.phase("delete-nodes", 0, rest.deleteNodesStep(removed, k3sAPI))
	return nil
}

// reset uses k3s's own uninstall script when there is one; otherwise it
// kills the units (pods included), unmounts and removes k3s's files.
func (k3s) reset(c *cluster, hosts []Host) []protocol.StepSpec {
	cmd := script(
		"if [ -x /usr/local/bin/k3s-uninstall.sh ]; then /usr/local/bin/k3s-uninstall.sh || true",
		"elif [ -x /usr/local/bin/k3s-agent-uninstall.sh ]; then /usr/local/bin/k3s-agent-uninstall.sh || true",
		"else",
		"	systemctl disable k3s k3s-agent 2>/dev/null || true",
		"	systemctl kill --signal=KILL k3s k3s-agent 2>/dev/null || true",
		"	systemctl stop k3s k3s-agent 2>/dev/null || true",
		`	awk '$2 ~ "^(/run/k3s|/var/lib/kubelet/pods|/var/lib/rancher/k3s)" { print $2 }' /proc/self/mounts | sort -r |`,
		`		while read -r m; do umount -l "$m" 2>/dev/null || true; done`,
		"	rm -rf /etc/rancher/k3s /var/lib/rancher/k3s /var/lib/kubelet /run/k3s /etc/systemd/system/k3s.service /etc/systemd/system/k3s-agent.service /etc/default/k3s /etc/default/k3s-agent || true",
		`	for l in kubectl crictl ctr; do if [ "$(readlink "/usr/local/bin/$l")" = /usr/local/bin/k3s ]; then rm -f "/usr/local/bin/$l"; fi; done`,
		"	rm -f /usr/local/bin/k3s",
		"	systemctl daemon-reload 2>/dev/null || true",
		"fi")
	return []protocol.StepSpec{idem(c.hostStep("k3s-reset", cmd, hosts, false), timeoutInit)}
}

func (k k3s) upgrade(b *builder, old, new *cluster) error {
	to, err := upgradeVersions(old, new)
	if err != nil {
		return err
	}
	rolling(b, new, k, to, func(name string, hosts []Host, first bool) protocol.StepSpec {
		cmd := script("set -e",
			`if [ ! -f bin/k3s ]; then echo "the image has no bin/k3s" >&2; exit 1; fi`,
			"install -m 0755 bin/k3s /usr/local/bin/k3s",
			"if systemctl is-enabled k3s >/dev/null 2>&1; then",
			"	systemctl restart k3s",
			"	"+waitFor("k3s kubectl get --raw=/readyz", "the k3s API server"),
			"else",
			"	systemctl restart k3s-agent",
			"fi")
		return idem(new.rootfsStep(name, cmd, hosts), timeoutInit)
	})
	return nil
}

// upgradeVersions checks a version change both ends of which are known
// and returns the new version (unknown if not given).
func upgradeVersions(old, new *cluster) (kubeVersion, error) {
	if new.d.KubeVersion == "" {
		return kubeVersion{}, nil
	}
	to, err := parseKubeVersion(new.d.KubeVersion)
	if err != nil {
		return to, fmt.Errorf("%w: upgrade: KubeVersion: %w", ErrInvalid, err)
	}
	if from, err := parseKubeVersion(old.d.KubeVersion); err == nil {
		if new.d.Rollback && to.less(from) {
			return to, fmt.Errorf("%w: rollback from %s to %s: %s cannot go back a Kubernetes version", ErrInvalid, from, to, new.d.Runtime)
		}
		if err := checkUpgrade(from, to); err != nil {
			return to, err
		}
	}
	return to, nil
}
