package clusterauth

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCADeterministic(t *testing.T) {
	a, err := CACertPEM(tokenA)
	if err != nil {
		t.Fatal(err)
	}
	b, err := CACertPEM(tokenA)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatalf("two derivations from one token differ:\n%s\n%s", a, b)
	}
	other, err := CACertPEM(tokenB)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a, other) {
		t.Fatal("two tokens derive the same CA certificate")
	}
	ca, _ := CACert(tokenA)
	cb, _ := CACert(tokenB)
	if ca.PublicKey.(*ecdsa.PublicKey).Equal(cb.PublicKey) {
		t.Error("two tokens derive the same CA key")
	}
	if ca.SerialNumber.Cmp(cb.SerialNumber) == 0 {
		t.Error("two tokens derive the same CA serial")
	}
	if !ca.IsCA || ca.NotBefore != caNotBefore || ca.NotAfter != caNotAfter {
		t.Errorf("CA: IsCA=%v validity %v..%v", ca.IsCA, ca.NotBefore, ca.NotAfter)
	}
	if err := ca.CheckSignatureFrom(ca); err != nil {
		t.Errorf("the CA is not self-signed: %v", err)
	}
}

// TestCAPinned pins the CA's fingerprint: a change here breaks every
// operator's pinned ca.pem, so it must be deliberate.
func TestCAPinned(t *testing.T) {
	fp, err := CAFingerprint(pinnedToken)
	if err != nil {
		t.Fatal(err)
	}
	const want = "9F:E4:11:1C:FC:AA:08:C2:70:D8:FD:B3:3D:5B:FA:1B:E3:2C:20:7D:C7:20:CB:D1:A5:8F:24:F9:20:B2:2F:69"
	if fp != want {
		t.Errorf("CAFingerprint(pinned) = %s, want %s", fp, want)
	}
	// Checked with: printf '%s%s' 'drove/v1 install proof:' TOKEN | sha256sum
	if got, want := InstallProof(pinnedToken), "130a883d365ea652a68e18b63efddcf82d150568a1946cf3b58f3c1be89a0286"; got != want {
		t.Errorf("InstallProof(pinned) = %s, want %s", got, want)
	}
}

func TestCARefusesShortToken(t *testing.T) {
	if _, err := CACertPEM("short"); !errors.Is(err, ErrTokenTooShort) {
		t.Errorf("CACertPEM(short token) = %v, want ErrTokenTooShort", err)
	}
	if _, err := ServingCert("short", []string{"127.0.0.1"}); !errors.Is(err, ErrTokenTooShort) {
		t.Errorf("ServingCert(short token) = %v, want ErrTokenTooShort", err)
	}
}

func TestServingCertVerifies(t *testing.T) {
	c, err := ServingCert(tokenA, []string{"10.0.0.1", "[fd00::7]", "master-1.example.com", " "})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Certificate) != 2 {
		t.Fatalf("chain has %d certificates, want leaf and CA", len(c.Certificate))
	}
	poolA, _ := CAPool(tokenA)
	poolB, _ := CAPool(tokenB)
	for _, name := range []string{"10.0.0.1", "fd00::7", "master-1.example.com"} {
		if _, err := c.Leaf.Verify(x509.VerifyOptions{Roots: poolA, DNSName: name}); err != nil {
			t.Errorf("serving cert for %s does not verify against the cluster CA: %v", name, err)
		}
		if _, err := c.Leaf.Verify(x509.VerifyOptions{Roots: poolB, DNSName: name}); err == nil {
			t.Errorf("serving cert for %s verifies against another cluster's CA", name)
		}
	}
	if _, err := c.Leaf.Verify(x509.VerifyOptions{Roots: poolA, DNSName: "10.0.0.2"}); err == nil {
		t.Error("serving cert verifies for an address it was not issued for")
	}
	if d := time.Until(c.Leaf.NotAfter); d < ServingCertLifetime-time.Minute || d > ServingCertLifetime {
		t.Errorf("serving cert ends in %v, want about %v", d, ServingCertLifetime)
	}
	if !net.IP(c.Leaf.IPAddresses[0]).Equal(net.ParseIP("10.0.0.1")) {
		t.Errorf("IP SANs %v", c.Leaf.IPAddresses)
	}
}

func TestServingCertRefusesBadHosts(t *testing.T) {
	if _, err := ServingCert(tokenA, nil); !errors.Is(err, ErrNoHosts) {
		t.Errorf("no hosts: %v, want ErrNoHosts", err)
	}
	for _, h := range []string{"a b", "-x.example", "x..y", "*.example.com", "10.0.0.1:7951", "fe80::1%eth0"} {
		_, err := ServingCert(tokenA, []string{h})
		if !errors.Is(err, ErrBadHost) || !strings.Contains(err.Error(), h) {
			t.Errorf("host %q: %v, want ErrBadHost naming it", h, err)
		}
	}
}

// TestCAWithOpenSSL checks the certificates with an independent TLS
// implementation: openssl's fingerprint of the PEM equals Fingerprint,
// and openssl verifies a serving certificate against the pinned CA.
func TestCAWithOpenSSL(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skipf("needs openssl: %v", err)
	}
	dir := t.TempDir()
	caPEM, err := CACertPEM(tokenA)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, caPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(openssl, "x509", "-noout", "-fingerprint", "-sha256", "-in", caFile).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl x509: %v\n%s", err, out)
	}
	fp, _ := CAFingerprint(tokenA)
	if got := strings.TrimSpace(string(out)); !strings.HasSuffix(got, "="+fp) {
		t.Errorf("openssl says %q, Fingerprint says %s", got, fp)
	}
	c, err := ServingCert(tokenA, []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	leafFile := filepath.Join(dir, "leaf.pem")
	if err := os.WriteFile(leafFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]}), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(openssl, "verify", "-CAfile", caFile, "-verify_ip", "127.0.0.1", leafFile).CombinedOutput(); err != nil {
		t.Errorf("openssl verify against the cluster CA: %v\n%s", err, out)
	}
	otherPEM, _ := CACertPEM(tokenB)
	otherFile := filepath.Join(dir, "other.pem")
	if err := os.WriteFile(otherFile, otherPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(openssl, "verify", "-CAfile", otherFile, leafFile).CombinedOutput(); err == nil {
		t.Errorf("openssl verifies the serving certificate against another cluster's CA:\n%s", out)
	}
}

func TestInstallProof(t *testing.T) {
	p := InstallProof(tokenA)
	if strings.Contains(p, tokenA) || len(p) != 64 {
		t.Errorf("InstallProof = %q: want 64 hex digits, never the token", p)
	}
	if !CheckInstallProof(tokenA, p) {
		t.Error("a token's own proof is refused")
	}
	for _, bad := range []string{"", tokenA, InstallProof(tokenB), strings.ToUpper(p), p + "0"} {
		if CheckInstallProof(tokenA, bad) {
			t.Errorf("proof %q accepted", bad)
		}
	}
	// What the install script computes in sh: printf '%s%s' LABEL TOKEN | sha256sum.
	if _, err := exec.LookPath("sha256sum"); err == nil {
		out, err := exec.Command("sh", "-c", `printf '%s%s' "$1" "$2" | sha256sum`, "sh", InstallProofLabel, tokenA).Output()
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Fields(string(out))[0]; got != p {
			t.Errorf("sha256sum in sh gives %s, InstallProof %s", got, p)
		}
	}
}
