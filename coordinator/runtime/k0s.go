package runtime

import (
	"github.com/drove-project/drove/protocol"
)

// k0s is the "k0s" runtime: controllers on the masters (k0s install
// controller; master0 first, the others one at a time with a controller
// token), workers with a worker token. Controllers run workloads only in
// a cluster without workers.
type k0s struct{}

const (
	k0sConfigFile     = "/etc/k0s/k0s.yaml"
	stepK0sTokens     = "k0s-tokens"
	outWorkerToken    = "worker-token"
	outControllerTok  = "controller-token"
	k0sWorkerTokenF   = "/etc/k0s/worker-token"
	k0sControllerTokF = "/etc/k0s/controller-token"
)

var k0sAPI = &kubeAPI{kubectl: "k0s kubectl", kubeconfig: "/var/lib/k0s/pki/admin.conf"}

func (k0s) name() string               { return "k0s" }
func (k0s) needsMaster() bool          { return true }
func (k0s) containerd() (string, bool) { return "/run/k0s/containerd.sock", true }
func (k0s) defaultCRI() string         { return "" } // embedded containerd
func (k0s) api() *kubeAPI              { return k0sAPI }

// isNode: workers always; controllers when they run workloads too.
func (k0s) isNode(c *cluster, h Host) bool { return !h.HasRole(RoleMaster) || len(c.workers) == 0 }

// prepare installs the binary and the air-gap bundle the image carries.
func (k0s) prepare(c *cluster, hosts []Host) []protocol.StepSpec {
	cmd := script("set -e",
		`if [ ! -f bin/k0s ]; then echo "the image has no bin/k0s" >&2; exit 1; fi`,
		"install -m 0755 bin/k0s /usr/local/bin/k0s",
		"if ls images/k0s-airgap-bundle* >/dev/null 2>&1; then",
		"	mkdir -p /var/lib/k0s/images",
		"	cp -f images/k0s-airgap-bundle* /var/lib/k0s/images/",
		"fi")
	return []protocol.StepSpec{idem(c.rootfsStep("k0s-binary", cmd, hosts), timeoutScripts)}
}

func (k k0s) create(b *builder, c *cluster) error {
	m0 := []Host{c.master0}
	b.phase("k0s-init", 0,
		once(c.rootfsStep("k0s-controller-init", c.k0sControllerCommand(false), m0), timeoutInit),
		c.k0sTokenStep())
	k.joins(b, c, c.masters[1:], c.workers)
	return nil
}

func (k k0s) join(b *builder, c *cluster, masters, workers []Host) error {
	b.phase(stepK0sTokens, 0, c.k0sTokenStep())
	k.joins(b, c, masters, workers)
	return nil
}

func (k0s) joins(b *builder, c *cluster, masters, workers []Host) {
	b.phase("join-controllers", 1,
		writeFile("k0s-controller-token", k0sControllerTokF, output(stepK0sTokens, outControllerTok), 0o600, masters),
		once(c.rootfsStep("join-controllers", c.k0sControllerCommand(true), masters), timeoutInit))
	b.phase("join-workers", workerParallel,
		writeFile("k0s-worker-token", k0sWorkerTokenF, output(stepK0sTokens, outWorkerToken), 0o600, workers),
		once(c.hostStep("join-workers", script("set -e",
			"if [ ! -f /etc/systemd/system/k0sworker.service ]; then k0s install worker --token-file "+k0sWorkerTokenF+"; fi",
			"k0s start || systemctl start k0sworker"), workers, false), timeoutInit))
}

// k0sControllerCommand installs and starts a controller with the image's
// etc/k0s.yaml (or k0s's defaults), joining with the token file if join.
func (c *cluster) k0sControllerCommand(join bool) string {
	install := "k0s install controller -c " + k0sConfigFile
	if len(c.workers) == 0 {
		install += " --enable-worker --no-taints"
	}
	if join {
		install += " --token-file " + k0sControllerTokF
	}
	return script("set -e", pathPrelude,
		"mkdir -p /etc/k0s",
		"if [ -f etc/k0s.yaml ]; then cp -f etc/k0s.yaml "+k0sConfigFile+"; elif [ ! -f "+k0sConfigFile+" ]; then k0s config create > "+k0sConfigFile+"; fi",
		"if [ ! -f /etc/systemd/system/k0scontroller.service ]; then "+install+"; fi",
		"k0s start || systemctl start k0scontroller",
		waitFor("k0s kubectl get --raw=/readyz", "the k0s API server"))
}

// k0sTokenStep prints join tokens for workers and controllers.
func (c *cluster) k0sTokenStep() protocol.StepSpec {
	cmd := script("set -e",
		"wt=$(k0s token create --role=worker --expiry=24h)",
		"ct=$(k0s token create --role=controller --expiry=24h)",
		printOutput(outWorkerToken, `"$wt"`),
		printOutput(outControllerTok, `"$ct"`))
	return idem(c.hostStep(stepK0sTokens, cmd, []Host{c.master0}, false), timeoutMedium)
}

func (k k0s) leave(b *builder, c *cluster, removed []Host, rest *cluster) error {
	kv, _ := parseKubeVersion(c.d.KubeVersion)
	nodes := nodesOf(k, c, removed)
	b.phase("drain", 0, rest.drainStep("drain-nodes", nodes, k0sAPI, kv, true))
	b.phase("etcd-leave", 1, idem(c.hostStep("etcd-leave", "k0s etcd leave || true", only(c.masters, removed), false), timeoutMedium))
	b.phase("reset", 0, k.reset(c, removed)...)
	b.phase("delete-nodes", 0, rest.deleteNodesStep(nodes, k0sAPI))
	return nil
}

func (k0s) reset(c *cluster, hosts []Host) []protocol.StepSpec {
	cmd := script(
		"if command -v k0s >/dev/null 2>&1; then",
		"	k0s stop 2>/dev/null || true",
		"	k0s reset 2>/dev/null || true",
		"fi",
		"rm -rf /etc/k0s || true",
		"rm -f /usr/local/bin/k0s",
		"systemctl daemon-reload 2>/dev/null || true")
	return []protocol.StepSpec{idem(c.hostStep("k0s-reset", cmd, hosts, false), timeoutInit)}
}

func (k k0s) upgrade(b *builder, old, new *cluster) error {
	to, err := upgradeVersions(old, new)
	if err != nil {
		return err
	}
	rolling(b, new, k, to, func(name string, hosts []Host, first bool) protocol.StepSpec {
		cmd := script("set -e",
			`if [ ! -f bin/k0s ]; then echo "the image has no bin/k0s" >&2; exit 1; fi`,
			"k0s stop || true",
			"install -m 0755 bin/k0s /usr/local/bin/k0s",
			"k0s start",
			"if [ -f /etc/systemd/system/k0scontroller.service ]; then",
			"	"+waitFor("k0s kubectl get --raw=/readyz", "the k0s API server"),
			"fi")
		return idem(new.rootfsStep(name, cmd, hosts), timeoutInit)
	})
	return nil
}
