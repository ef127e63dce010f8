package runtime

import (
	"errors"
	"fmt"

	"github.com/drove-project/drove/protocol"
)

// ErrUnsupported: the runtime has no such operation.
var ErrUnsupported = errors.New("not supported by the runtime")

// Paths the API server certificate renewal uses on a master.
const (
	kubeadmCertsFile   = kubeadmConfigDir + "/kubeadm-certs.yaml"
	kubeadmPKIDir      = kubeadmConfigDir + "/pki"
	apiServerManifest  = kubeadmConfigDir + "/manifests/kube-apiserver.yaml"
	apiServerHeld      = kubeadmConfigDir + "/kube-apiserver.yaml.drove-restart"
	apiServerOldSuffix = ".drove-old"
)

// APIServerCerts renews the API server certificate of every master of
// the running kubeadm cluster d so that it names d.CertSANs besides what
// drove always puts in it (the API server domain, the VIP, the masters).
// One master at a time: its old apiserver.crt and .key are moved aside,
// `kubeadm init phase certs apiserver` issues new ones from the cluster's
// kubeadm configuration (that master as the advertised address), and the
// API server restarts by moving its static pod manifest out and back; the
// next master starts once this one's API server is ready again. Last, the
// configuration is uploaded (kubeadm-config) so that masters joined later
// and certificate renewals keep the names.
func APIServerCerts(d Desired) (protocol.PlanSpec, error) {
	if d.Runtime != "kubernetes" {
		return protocol.PlanSpec{}, fmt.Errorf("%w: the API server certificate is kubeadm's (runtime kubernetes), not %s's", ErrUnsupported, d.Runtime)
	}
	k := kubeadm{}
	c, err := newCluster(&d, k.needsMaster())
	if err != nil {
		return protocol.PlanSpec{}, err
	}
	b := newBuilder("certs " + d.Image)
	for i, m := range c.masters {
		// The configuration as kubeadm init got it, with this master as
		// the advertised address.
		at := *c
		at.master0 = m
		setup, err := buildKubeadmConfig(&at, c.cri(k.defaultCRI()))
		if err != nil {
			return protocol.PlanSpec{}, err
		}
		n := i + 1
		hosts := []Host{m}
		b.phase(stepf("certs-master-%d", n), 0,
			writeFile(stepf("certs-config-%d", n), kubeadmCertsFile, literal(string(setup.config)), 0o600, hosts),
			idem(c.rootfsStep(stepf("apiserver-cert-%d", n), apiServerCertScript(), hosts), timeoutMedium),
			idem(c.rootfsStep(stepf("restart-apiserver-%d", n), restartAPIServerScript(), hosts), timeoutInit),
		)
	}
	upload := script("set -e", pathPrelude, "kubeadm init phase upload-config kubeadm --config "+kubeadmCertsFile)
	b.phase("upload-config", 0, idem(c.rootfsStep("upload-config", upload, []Host{c.master0}), timeoutMedium))
	return b.done()
}

// apiServerCertScript issues a new API server certificate; the old pair is
// kept beside it (.drove-old) and put back when kubeadm fails.
func apiServerCertScript() string {
	crt, key := kubeadmPKIDir+"/apiserver.crt", kubeadmPKIDir+"/apiserver.key"
	return script("set -e", pathPrelude,
		// kubeadm keeps a certificate that exists: move it aside.
		"if [ -f "+crt+" ]; then",
		"	mv -f "+crt+" "+crt+apiServerOldSuffix,
		"	mv -f "+key+" "+key+apiServerOldSuffix,
		"fi",
		"if ! kubeadm init phase certs apiserver --config "+kubeadmCertsFile+"; then",
		"	if [ ! -f "+crt+" ] && [ -f "+crt+apiServerOldSuffix+" ]; then",
		"		mv -f "+crt+apiServerOldSuffix+" "+crt,
		"		mv -f "+key+apiServerOldSuffix+" "+key,
		"	fi",
		`	echo "kubeadm could not issue the API server certificate: the old one is back in place" >&2`,
		"	exit 1",
		"fi")
}

// restartAPIServerScript restarts the static pod API server so that it
// serves the new certificate: the manifest is moved out until the kubelet
// has stopped it, then back, and the script waits until it is ready.
func restartAPIServerScript() string {
	return script("set -e", pathPrelude,
		"if [ -f "+apiServerManifest+" ]; then",
		"	mv -f "+apiServerManifest+" "+apiServerHeld,
		"elif [ ! -f "+apiServerHeld+" ]; then",
		`	echo "no `+apiServerManifest+` on this host: is it a kubeadm control-plane node?" >&2`,
		"	exit 1",
		"fi",
		"if command -v pgrep >/dev/null 2>&1; then",
		"	i=0",
		"	while pgrep -x kube-apiserver >/dev/null 2>&1; do",
		"		i=$((i + 1))",
		`		if [ "$i" -ge 120 ]; then`,
		"			mv -f "+apiServerHeld+" "+apiServerManifest,
		`			echo "the kubelet did not stop the API server within 2 minutes: it still serves the old certificate" >&2`,
		"			exit 1",
		"		fi",
		"		sleep 1",
		"	done",
		"else",
		"	sleep 30 # the kubelet looks at its manifests every 20 seconds",
		"fi",
		"mv -f "+apiServerHeld+" "+apiServerManifest,
		`case "$HostIP" in *:*) api="https://[$HostIP]:`+apiServerPort+`" ;; *) api="https://$HostIP:`+apiServerPort+`" ;; esac`,
		waitFor(`kubectl --kubeconfig `+kubeadmAPI.kubeconfig+` --server "$api" get --raw=/readyz`,
			"the API server at $api to be ready"))
}
