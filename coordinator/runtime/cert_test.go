package runtime

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestAPIServerCertsPlan(t *testing.T) {
	d := cluster3x3("kubernetes")
	d.CertSANs = []string{"k8s.example.com", "x.example.com"}
	p, err := APIServerCerts(d)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"certs-master-1", "certs-master-2", "certs-master-3", "upload-config"}
	if got := phaseNames(p); !slices.Equal(got, want) {
		t.Fatalf("phases %v, want %v", got, want)
	}
	for i, m := range masterIPs {
		ph := p.Phases[i]
		var names []string
		for _, st := range ph.Steps {
			names = append(names, st.Name)
			if !slices.Equal(st.Target.Nodes, []string{m}) {
				t.Errorf("%s: step %s runs on %v, want only %s", ph.Name, st.Name, st.Target.Nodes, m)
			}
		}
		n := string(rune('1' + i))
		if !slices.Equal(names, []string{"certs-config-" + n, "apiserver-cert-" + n, "restart-apiserver-" + n}) {
			t.Errorf("%s: steps %v", ph.Name, names)
		}
		cfg := renderTemplate(t, ph.Steps[0].Action.Content, nil)
		if ph.Steps[0].Action.Path != kubeadmCertsFile || !strings.Contains(cfg, "advertiseAddress: "+m) {
			t.Errorf("%s: config at %s does not advertise %s:\n%s", ph.Name, ph.Steps[0].Action.Path, m, cfg)
		}
		// Everything the install put in the certificate stays in it.
		for _, san := range append([]string{apiServerDomain, defaultVIP, "x.example.com", "k8s.example.com"}, masterIPs...) {
			if !strings.Contains(cfg, "- "+san+"\n") {
				t.Errorf("%s: config lacks SAN %s:\n%s", ph.Name, san, cfg)
			}
		}
		if ph.Steps[1].Action.Rootfs != digest {
			t.Errorf("%s: the cert step runs outside the image's rootfs (its kubeadm)", ph.Name)
		}
	}
	if up := p.Phases[3].Steps[0]; !slices.Equal(up.Target.Nodes, []string{m0}) || !strings.Contains(up.Action.Command, "kubeadm init phase upload-config kubeadm --config "+kubeadmCertsFile) {
		t.Errorf("upload-config on %v:\n%s", up.Target.Nodes, up.Action.Command)
	}

	d.Runtime = "k3s"
	if _, err := APIServerCerts(d); !errors.Is(err, ErrUnsupported) {
		t.Errorf("k3s: %v, want ErrUnsupported", err)
	}
}

// The certificate and restart scripts, run for real with stand-ins.
func TestAPIServerCertScripts(t *testing.T) {
	s := newSandbox(t)
	pki, manifests := filepath.Join(s.etcKube, "pki"), filepath.Join(s.etcKube, "manifests")
	for _, dir := range []string{pki, manifests} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p, content string) {
		t.Helper()
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	crt, key, manifest := filepath.Join(pki, "apiserver.crt"), filepath.Join(pki, "apiserver.key"), filepath.Join(manifests, "kube-apiserver.yaml")
	write(crt, "old crt")
	write(key, "old key")
	write(manifest, "static pod")
	// kubeadm issues a pair unless told to fail; it refuses to when a pair
	// is there (as the real one keeps it).
	s.tool(t, "kubeadm", `if [ -f `+quote(crt)+` ]; then echo "kept the existing certificate" >&2; exit 1; fi
[ -n "$FAIL" ] && exit 1
echo "new crt" > `+quote(crt)+`; echo "new key" > `+quote(key))
	// The API server runs while its manifest is in place; kubectl says
	// where the manifest is when it is asked for readiness.
	s.tool(t, "pgrep", `[ -f `+quote(manifest)+` ]`)
	s.tool(t, "kubectl", `if [ -f `+quote(manifest)+` ]; then echo "manifest in" >> `+quote(s.log)+`; else echo "manifest out" >> `+quote(s.log)+`; fi`)

	if _, err := s.run(t, apiServerCertScript(), nil, map[string]string{"FAIL": "1"}); err == nil {
		t.Fatal("the cert step succeeded with a failing kubeadm")
	}
	if got := s.read(t, crt); got != "old crt" {
		t.Fatalf("after a failed kubeadm the certificate is %q, want the old one back", got)
	}
	if _, err := s.run(t, apiServerCertScript(), nil, nil); err != nil {
		t.Fatal(err)
	}
	if got, old := s.read(t, crt), s.read(t, crt+apiServerOldSuffix); got != "new crt\n" || old != "old crt" {
		t.Fatalf("certificate %q, kept %q", got, old)
	}

	os.Remove(s.log)
	if _, err := s.run(t, restartAPIServerScript(), nil, map[string]string{"HostIP": m1}); err != nil {
		t.Fatal(err)
	}
	if got := s.read(t, manifest); got != "static pod" {
		t.Fatalf("manifest after the restart: %q", got)
	}
	calls := strings.Split(strings.TrimSpace(s.read(t, s.log)), "\n")
	if len(calls) < 3 || calls[0] != "pgrep -x kube-apiserver" || !strings.Contains(calls[1], "--server https://"+m1+":6443 get --raw=/readyz") || calls[2] != "manifest in" {
		t.Errorf("restart calls %q: want the API server gone, then readiness asked with the manifest back", calls)
	}
	os.Remove(manifest)
	if _, err := s.run(t, restartAPIServerScript(), nil, map[string]string{"HostIP": m1}); err == nil {
		t.Error("the restart succeeded on a host without the API server's manifest")
	}
}
