package runtime

import (
	"fmt"

	"github.com/drove-project/drove/protocol"
)

// workerParallel bounds how many workers join at once.
const workerParallel = 50

// Outputs of the join-info step.
const (
	stepJoinInfo      = "join-info"
	outToken          = "token"
	outCACertHash     = "ca-cert-hash"
	outCertificateKey = "certificate-key"
)

// kubeadm is the "kubernetes" runtime: kubeadm init on master0, kubeadm
// join for the rest; workers reach the API servers through the agent's
// node-local load balancer on 127.0.0.1.
type kubeadm struct{}

var kubeadmAPI = &kubeAPI{kubectl: "kubectl", kubeconfig: kubeadmConfigDir + "/admin.conf"}

func (kubeadm) name() string                   { return "kubernetes" }
func (kubeadm) needsMaster() bool              { return true }
func (kubeadm) containerd() (string, bool)     { return "", false }
func (kubeadm) defaultCRI() string             { return "docker" }
func (kubeadm) api() *kubeAPI                  { return kubeadmAPI }
func (kubeadm) isNode(c *cluster, h Host) bool { return true }

// prepare runs the image's scripts/init-kube.sh (kubelet, kubeadm, sysctl).
func (kubeadm) prepare(c *cluster, hosts []Host) []protocol.StepSpec {
	return []protocol.StepSpec{idem(c.rootfsStep("init-kube", script(pathPrelude, ifScript("init-kube.sh")), hosts), timeoutScripts)}
}

func (k kubeadm) create(b *builder, c *cluster) error {
	setup, err := buildKubeadmConfig(c, c.cri(k.defaultCRI()))
	if err != nil {
		return err
	}
	m0 := []Host{c.master0}
	b.phase("kube-init", 0,
		writeFile("kubeadm-config", kubeadmInitFile, literal(string(setup.config)), 0o600, m0),
		once(c.rootfsStep("kubeadm-init", c.kubeadmInitCommand(), m0), timeoutInit),
		c.joinInfoStep(),
	)
	k.joins(b, c, c.masters[1:], c.workers, nil, setup)
	return nil
}

func (k kubeadm) join(b *builder, c *cluster, masters, workers []Host) error {
	setup, err := buildKubeadmConfig(c, c.cri(k.defaultCRI()))
	if err != nil {
		return err
	}
	b.phase(stepJoinInfo, 0, c.joinInfoStep())
	k.joins(b, c, masters, workers, without(c.workers, workers), setup)
	return nil
}

// joins: masters one at a time (etcd grows by one member at a time), the
// running workers' load balancers told of new masters, then the new
// workers in parallel.
func (kubeadm) joins(b *builder, c *cluster, masters, workers, runningWorkers []Host, setup kubeadmSetup) {
	b.phase("join-masters", 1, once(c.rootfsStep("join-masters", c.joinCommand(true, setup), masters), timeoutInit))
	if len(masters) > 0 {
		b.phase("apilb-update", 0, apilbStep("apilb-update", runningWorkers, c.masterIPs()))
	}
	b.phase("join-workers", workerParallel,
		apilbStep("apilb", workers, c.masterIPs()),
		once(c.rootfsStep("join-workers", c.joinCommand(false, setup), workers), timeoutInit))
}

func (c *cluster) kubeadmInitCommand() string {
	return script("set -e", pathPrelude, hostsFn,
		"drove_hosts "+hostsTagAPIServer+" "+hostsLine(c.master0.IP, apiServerDomain),
		// Up already (a rerun): the API answers and init got as far as
		// publishing cluster-info, which joins discover.
		"if [ -f "+kubeadmAPI.kubeconfig+" ] && kubectl --kubeconfig "+kubeadmAPI.kubeconfig+" -n kube-public get configmap cluster-info >/dev/null 2>&1; then",
		`	echo "kubeadm init: the control plane is up already"`,
		"else",
		"	kubeadm init --config "+kubeadmInitFile+" --upload-certs --ignore-preflight-errors=SystemVerification",
		"fi",
		"mkdir -p /root/.kube",
		"cp -f "+kubeadmAPI.kubeconfig+" /root/.kube/config")
}

// joinInfoStep prints, on master0, what kubeadm join needs: a fresh
// token, the CA hash, and a certificate key for control-plane joins.
func (c *cluster) joinInfoStep() protocol.StepSpec {
	field := func(flag string) string {
		return `printf '%s\n' "$join" | awk '{ for (i = 1; i < NF; i++) if ($i == "` + flag + `") print $(i + 1) }'`
	}
	cmd := script("set -e", pathPrelude,
		"export KUBECONFIG="+kubeadmAPI.kubeconfig,
		"join=$(kubeadm token create --print-join-command)",
		"token=$("+field("--token")+")",
		"hash=$("+field("--discovery-token-ca-cert-hash")+")",
		"cfg=",
		"if [ -f "+kubeadmInitFile+" ]; then cfg=\"--config "+kubeadmInitFile+"\"; fi",
		"key=$(kubeadm init phase upload-certs --upload-certs $cfg | tail -n 1)",
		`if [ -z "$token" ] || [ -z "$hash" ] || [ -z "$key" ]; then`,
		`	echo "could not read the join token, CA hash or certificate key" >&2`,
		"	exit 1",
		"fi",
		printOutput(outToken, `"$token"`),
		printOutput(outCACertHash, `"$hash"`),
		printOutput(outCertificateKey, `"$key"`))
	return idem(c.rootfsStep(stepJoinInfo, cmd, []Host{c.master0}), timeoutMedium)
}

// joinCommand joins a host as a master (API server entry on master0
// during the join, on itself after) or a worker (entry on the node-local
// load balancer).
func (c *cluster) joinCommand(master bool, setup kubeadmSetup) string {
	join := "kubeadm join " + hostPort(apiServerDomain, apiServerPort) +
		" --token " + quote(output(stepJoinInfo, outToken)) +
		" --discovery-token-ca-cert-hash " + quote(output(stepJoinInfo, outCACertHash))
	if master {
		join += " --control-plane --certificate-key " + quote(output(stepJoinInfo, outCertificateKey)) +
			` --apiserver-advertise-address "$HostIP"`
	}
	if setup.criSocket != "" {
		join += " --cri-socket " + quote(literal(setup.criSocket))
	}
	join += " --ignore-preflight-errors=SystemVerification"
	entry := hostsLine("127.0.0.1", apiServerDomain)
	if master {
		entry = hostsLine(c.master0.IP, apiServerDomain)
	}
	// A node has joined when kubeadm wrote kubelet.conf (a worker's last
	// phase) and, for a master, the etcd member's manifest (its last).
	joined := "[ -f " + kubeadmConfigDir + "/kubelet.conf ]"
	if master {
		joined += " && [ -f " + kubeadmConfigDir + "/manifests/etcd.yaml ]"
	}
	lines := []string{"set -e", pathPrelude, hostsFn,
		"if " + joined + "; then",
		`	echo "kubeadm join: this node has joined already"`,
		"else",
		"	drove_hosts " + hostsTagAPIServer + " " + entry,
		"	" + join,
		"fi",
	}
	if master {
		lines = append(lines,
			"drove_hosts "+hostsTagAPIServer+` "$HostIP `+apiServerDomain+`"`,
			"mkdir -p /root/.kube",
			"cp -f "+kubeadmAPI.kubeconfig+" /root/.kube/config")
	}
	return script(lines...)
}

func (k kubeadm) leave(b *builder, c *cluster, removed []Host, rest *cluster) error {
	kv, _ := parseKubeVersion(c.d.KubeVersion)
	b.phase("drain", 0, rest.drainStep("drain-nodes", removed, kubeadmAPI, kv, true))
	if len(only(c.masters, removed)) > 0 {
		// The remaining workers stop sending API traffic to the masters
		// that go, before they go.
		b.phase("apilb-update", 0, apilbStep("apilb-update", rest.workers, rest.masterIPs()))
	}
	b.phase("reset", 0, k.reset(c, removed)...)
	b.phase("delete-nodes", 0, rest.deleteNodesStep(removed, kubeadmAPI))
	return nil
}

// reset is sealer's remote clean: kubeadm reset, Kubernetes files, the
// API server hosts entry; every command may fail. The binaries the
// image's init scripts installed are its scripts/clean.sh's to remove:
// drove does not delete /usr/bin/kubectl from a host that had its own.
func (k kubeadm) reset(c *cluster, hosts []Host) []protocol.StepSpec {
	cri := c.cri(k.defaultCRI())
	sock := ""
	if setup, err := buildKubeadmConfig(c, cri); err == nil {
		sock = setup.criSocket
	}
	reset := "kubeadm reset -f"
	if sock != "" {
		reset += " --cri-socket " + quote(literal(sock))
	}
	cmd := script(hostsFn,
		"if command -v kubeadm >/dev/null 2>&1; then "+reset+" || true; fi",
		"systemctl stop kubelet 2>/dev/null || true",
		"systemctl disable kubelet 2>/dev/null || true",
		"rm -rf "+kubeadmConfigDir+" /etc/cni/net.d /var/lib/etcd /root/.kube /etc/systemd/system/kubelet.service /etc/systemd/system/kubelet.service.d || true",
		"systemctl daemon-reload 2>/dev/null || true",
		"drove_hosts "+hostsTagAPIServer+" || true")
	return []protocol.StepSpec{
		apilbStep("apilb-stop", only(c.workers, hosts), nil),
		idem(c.hostStep("kube-reset", cmd, hosts, false), timeoutInit),
	}
}

func (k kubeadm) upgrade(b *builder, old, new *cluster) error {
	if new.d.KubeVersion == "" {
		return fmt.Errorf("%w: upgrade: the new image has no Kubernetes version (KUBEVERSION)", ErrInvalid)
	}
	to, err := parseKubeVersion(new.d.KubeVersion)
	if err != nil {
		return fmt.Errorf("%w: upgrade: KubeVersion: %w", ErrInvalid, err)
	}
	if from, err := parseKubeVersion(old.d.KubeVersion); err == nil {
		check := checkUpgrade
		if new.d.Rollback {
			check = checkRollback
		}
		if err := check(from, to); err != nil {
			return err
		}
	}
	apply := "kubeadm upgrade apply " + quote(to.String()) + " --yes"
	if new.d.Rollback {
		// kubeadm refuses a version at or below the cluster's unless
		// forced; it keeps the newer etcd.
		apply += " --force"
	}
	rolling(b, new, k, to, func(name string, hosts []Host, first bool) protocol.StepSpec {
		up := "kubeadm upgrade node"
		if first {
			up = apply
		}
		cmd := script("set -e", hostBinFn,
			// Where the host has its tools, found before the image's bin
			// comes first on PATH: an upgrade replaces those.
			"kubeadm_bin=$(drove_hostbin kubeadm)",
			"kubelet_bin=$(drove_hostbin kubelet)",
			"kubectl_bin=$(drove_hostbin kubectl)",
			pathPrelude,
			`if [ ! -f bin/kubeadm ]; then echo "the image has no bin/kubeadm" >&2; exit 1; fi`,
			`install -m 0755 bin/kubeadm "$kubeadm_bin"`,
			up,
			`if [ -f bin/kubelet ]; then install -m 0755 bin/kubelet "$kubelet_bin"; fi`,
			`if [ -f bin/kubectl ]; then install -m 0755 bin/kubectl "$kubectl_bin"; fi`,
			"if [ -d /run/systemd/system ]; then",
			"	systemctl daemon-reload",
			"	systemctl restart kubelet",
			"else",
			`	echo "no systemd on this host: restart the kubelet yourself"`,
			"fi")
		st := idem(new.rootfsStep(name, cmd, hosts), timeoutInit)
		st.Retry.Attempts = 2
		return st
	})
	return nil
}

// hostBinFn defines drove_hostbin NAME: the path of the host's own NAME
// (on PATH, outside the image's rootfs), else /usr/bin/NAME.
const hostBinFn = `drove_hostbin() {
	p=$(command -v "$1" 2>/dev/null) || p=
	case "$p" in
	"$ROOTFS"/*) p= ;;
	/*) ;;
	*) p= ;;
	esac
	printf '%s\n' "${p:-/usr/bin/$1}"
}
`
