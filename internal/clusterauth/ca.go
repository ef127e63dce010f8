package clusterauth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/netip"
	"strings"
	"time"
)

// The cluster CA. Every coordinator derives the same certificate authority
// from the token: the same P-256 key (its scalar from HKDF), the same
// subject, serial and validity, and a deterministic (RFC 6979) signature,
// so the CA certificate is byte-for-byte identical on every machine that
// holds the token. An operator pins it once (`drove token ca`), and any
// coordinator's serving certificate — signed by that key for the
// coordinator's own addresses — verifies against it.
const (
	infoCAKey    = "drove/v1 cluster ca p-256 key"
	infoCASerial = "drove/v1 cluster ca serial"
)

// The CA's fixed validity. Never change either: the certificate, and so
// its fingerprint, would change under every pinned copy.
var (
	caNotBefore = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	caNotAfter  = time.Date(2124, 1, 1, 0, 0, 0, 0, time.UTC)
)

// ServingCertLifetime is how long a ServingCert is valid from its issue.
// Servers that run longer issue a new one before it ends.
const ServingCertLifetime = 30 * 24 * time.Hour

// servingBackdate covers clocks that run a little behind the issuer's.
const servingBackdate = time.Hour

// ErrNoHosts: a serving certificate must name at least one host.
var ErrNoHosts = errors.New("a serving certificate needs at least one host name or address")

// ErrBadHost: a name given for a serving certificate is neither an IP
// address nor a DNS name.
var ErrBadHost = errors.New("not an IP address or DNS name")

// clusterCA is the derived CA: its certificate and signing key.
type clusterCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// deriveCA builds the cluster's CA from token.
func deriveCA(token string) (*clusterCA, error) {
	if err := ValidateToken(token); err != nil {
		return nil, fmt.Errorf("derive the cluster CA: %w", err)
	}
	key, err := caKey(token)
	if err != nil {
		return nil, fmt.Errorf("derive the cluster CA: %w", err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("derive the cluster CA: encode its public key: %w", err)
	}
	id := sha256.Sum256(pub)
	// A positive serial of at most 127 bits that differs between clusters.
	serial := new(big.Int).SetBytes(derive(token, infoCASerial, 16))
	serial.SetBit(serial, 127, 0)
	serial.SetBit(serial, 0, 1)
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			Organization: []string{"drove"},
			CommonName:   "drove cluster CA " + hex.EncodeToString(id[:4]),
		},
		NotBefore:             caNotBefore,
		NotAfter:              caNotAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		SubjectKeyId:          id[:20],
	}
	// A nil random source makes ECDSA sign deterministically (RFC 6979),
	// and the template leaves nothing else to chance.
	der, err := x509.CreateCertificate(nil, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("derive the cluster CA: sign its certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("derive the cluster CA: parse its certificate: %w", err)
	}
	return &clusterCA{cert: cert, key: key}, nil
}

// caKey derives the CA's P-256 private key: the first HKDF output that is
// a valid scalar (all but about 2^-32 of them are; the rest are skipped
// deterministically).
func caKey(token string) (*ecdsa.PrivateKey, error) {
	for i := range 8 {
		d := derive(token, fmt.Sprintf("%s %d", infoCAKey, i), 32)
		if k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), d); err == nil {
			return k, nil
		}
	}
	return nil, errors.New("no valid P-256 scalar in 8 derivations")
}

// CACert returns the cluster CA's certificate.
func CACert(token string) (*x509.Certificate, error) {
	ca, err := deriveCA(token)
	if err != nil {
		return nil, err
	}
	return ca.cert, nil
}

// CACertPEM returns the cluster CA's certificate in PEM: what curl
// --cacert and the install script pin.
func CACertPEM(token string) ([]byte, error) {
	c, err := CACert(token)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}), nil
}

// CAPool returns a pool holding only the cluster CA, for clients that
// talk to coordinators' HTTPS endpoints.
func CAPool(token string) (*x509.CertPool, error) {
	c, err := CACert(token)
	if err != nil {
		return nil, err
	}
	p := x509.NewCertPool()
	p.AddCert(c)
	return p, nil
}

// Fingerprint is the SHA-256 of a DER certificate as upper-case hex pairs
// joined by colons, the form `openssl x509 -noout -fingerprint -sha256`
// prints, so an operator can compare the two by eye.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	h := strings.ToUpper(hex.EncodeToString(sum[:]))
	var b strings.Builder
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(h[i : i+2])
	}
	return b.String()
}

// CAFingerprint is the Fingerprint of the cluster CA's certificate.
func CAFingerprint(token string) (string, error) {
	c, err := CACert(token)
	if err != nil {
		return "", err
	}
	return Fingerprint(c.Raw), nil
}

// ServingCert issues a TLS server certificate signed by the cluster CA
// for hosts (IP addresses, optionally in brackets, and DNS names), with a
// fresh P-256 key. It is valid for ServingCertLifetime (backdated an hour
// for clock skew); the chain carries the CA certificate after the leaf.
func ServingCert(token string, hosts []string) (tls.Certificate, error) {
	return servingCertAt(token, hosts, time.Now())
}

func servingCertAt(token string, hosts []string, now time.Time) (tls.Certificate, error) {
	var ips []string
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{Organization: []string{"drove"}, CommonName: "drove coordinator"},
		NotBefore:   now.Add(-servingBackdate),
		NotAfter:    now.Add(ServingCertLifetime),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		h = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(h), "["), "]")
		if h == "" {
			continue
		}
		if a, err := netip.ParseAddr(h); err == nil && a.Zone() == "" {
			tmpl.IPAddresses = append(tmpl.IPAddresses, a.AsSlice())
			ips = append(ips, a.String())
			continue
		}
		if !ValidDNSName(h) {
			return tls.Certificate{}, fmt.Errorf("issue a serving certificate: host %q: %w", h, ErrBadHost)
		}
		tmpl.DNSNames = append(tmpl.DNSNames, h)
	}
	if len(tmpl.IPAddresses)+len(tmpl.DNSNames) == 0 {
		return tls.Certificate{}, fmt.Errorf("issue a serving certificate: %w", ErrNoHosts)
	}
	ca, err := deriveCA(token)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("issue a serving certificate: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("issue a serving certificate: draw a serial: %w", err)
	}
	tmpl.SerialNumber = serial.Add(serial, big.NewInt(1))
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("issue a serving certificate: generate its key: %w", err)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("issue a serving certificate for %s: %w",
			strings.Join(append(ips, tmpl.DNSNames...), ", "), err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("issue a serving certificate: parse it: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der, ca.cert.Raw}, PrivateKey: key, Leaf: leaf}, nil
}

// ValidDNSName reports whether s is a DNS host name a certificate can
// carry: dot-separated labels of letters, digits and inner hyphens, at
// most 253 characters. Wildcards are not accepted.
func ValidDNSName(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}
