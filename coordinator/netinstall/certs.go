package netinstall

import (
	"crypto/tls"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/drove-project/drove/internal/clusterauth"
)

// maxSNINames bounds the certificates issued for names clients ask for
// by SNI; past it, such clients get the certificate for the configured
// hosts (and curl names the mismatch).
const maxSNINames = 32

// certSource hands the TLS server its certificate: one issued by the
// cluster CA for the configured hosts, or for a DNS name a client asks for
// that they do not cover. Certificates are issued again once two thirds
// of their lifetime has passed.
type certSource struct {
	token string
	hosts []string
	now   func() time.Time

	mu     sync.Mutex
	base   *tls.Certificate
	byName map[string]*tls.Certificate
}

// newCertSource issues the certificate for hosts at once, so a bad host or
// token fails at start rather than at the first handshake.
func newCertSource(token string, hosts []string, now func() time.Time) (*certSource, error) {
	c := &certSource{token: token, hosts: slices.Clone(hosts), now: now, byName: map[string]*tls.Certificate{}}
	if _, err := c.baseCert(); err != nil {
		return nil, err
	}
	return c, nil
}

// get is tls.Config.GetCertificate.
func (c *certSource) get(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	base, err := c.baseCert()
	if err != nil {
		return nil, err
	}
	name := strings.ToLower(strings.TrimSuffix(hello.ServerName, "."))
	if name == "" || base.Leaf.VerifyHostname(name) == nil || !clusterauth.ValidDNSName(name) {
		return base, nil
	}
	if cert, ok := c.byName[name]; ok && c.fresh(cert) {
		return cert, nil
	}
	if _, ok := c.byName[name]; !ok && len(c.byName) >= maxSNINames {
		return base, nil
	}
	cert, err := clusterauth.ServingCert(c.token, append(slices.Clone(c.hosts), name))
	if err != nil {
		return nil, fmt.Errorf("install API: certificate for %s: %w", name, err)
	}
	c.byName[name] = &cert
	return &cert, nil
}

// baseCert returns the certificate for the configured hosts, issuing it
// when there is none or it is getting old. c.mu is held, or c is new.
func (c *certSource) baseCert() (*tls.Certificate, error) {
	if c.base != nil && c.fresh(c.base) {
		return c.base, nil
	}
	cert, err := clusterauth.ServingCert(c.token, c.hosts)
	if err != nil {
		return nil, fmt.Errorf("install API: certificate for %s: %w", strings.Join(c.hosts, ", "), err)
	}
	c.base = &cert
	return c.base, nil
}

// fresh: less than two thirds of cert's lifetime has passed.
func (c *certSource) fresh(cert *tls.Certificate) bool {
	l := cert.Leaf
	renew := l.NotBefore.Add(l.NotAfter.Sub(l.NotBefore) * 2 / 3)
	return c.now().Before(renew)
}
