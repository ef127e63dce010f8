package netinstall

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/drove-project/drove/internal/clusterauth"
	"github.com/drove-project/drove/protocol"
)

// DefaultPort is the install API's port (drove agent --api-port).
const DefaultPort = 7951

// defaultGossipPort is a member's gossip port when gossip does not say.
const defaultGossipPort = 7946

// shutdownGrace is how long Run lets downloads under way finish when its
// context ends before it closes their connections.
const shutdownGrace = 5 * time.Second

// Config describes one coordinator's install API.
type Config struct {
	// Token is the cluster token: the CA, the serving certificate and
	// the download proof all come from it.
	Token string
	// Listen is the address to serve on (host:port; port 0 picks one).
	Listen string
	// Hosts are the names and addresses the serving certificate is for:
	// every address clients may use to reach this coordinator.
	Hosts []string
	// Members returns the cluster's members as gossip sees them: the
	// script joins the live coordinators and downloads from them.
	Members func() []protocol.Member
	// APIPort is the other coordinators' install API port where gossip
	// does not carry one (default: this server's port).
	APIPort int
	// BinaryDir holds drove-<os>-<arch> binaries for platforms other than
	// this one (<data-dir>/dl); empty: none.
	BinaryDir string
	// Executable is the binary served for this coordinator's own
	// platform (default: the running executable).
	Executable string
	// Log receives a line per request served or refused.
	Log *slog.Logger

	// now is the clock of the certificate source (tests move it).
	now func() time.Time
}

// Server is a listening install API. Run serves it.
type Server struct {
	cfg   Config
	ln    net.Listener
	http  *http.Server
	certs *certSource
	caPEM string
}

// New checks cfg, issues the serving certificate and listens on
// cfg.Listen. The caller must call Run, which serves and, when its
// context ends, closes the listener.
func New(cfg Config) (*Server, error) {
	if err := clusterauth.ValidateToken(cfg.Token); err != nil {
		return nil, fmt.Errorf("install API: %w", err)
	}
	if cfg.Members == nil {
		return nil, errors.New("install API: no member list (Config.Members)")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.now == nil {
		cfg.now = time.Now
	}
	if cfg.Executable == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("install API: find the drove executable to serve: %w", err)
		}
		cfg.Executable = exe
	}
	caPEM, err := clusterauth.CACertPEM(cfg.Token)
	if err != nil {
		return nil, fmt.Errorf("install API: %w", err)
	}
	certs, err := newCertSource(cfg.Token, cfg.Hosts, cfg.now)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("install API: listen on %s (drove agent --api-port): %w", cfg.Listen, err)
	}
	if cfg.APIPort == 0 {
		cfg.APIPort = ln.Addr().(*net.TCPAddr).Port
	}
	s := &Server{cfg: cfg, ln: ln, certs: certs, caPEM: string(caPEM)}
	s.http = &http.Server{
		Handler: s.routes(),
		TLSConfig: &tls.Config{
			MinVersion:     tls.VersionTLS12,
			GetCertificate: certs.get,
		},
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		// TLS handshake failures (a client that does not trust the
		// cluster CA yet) are routine: debug level.
		ErrorLog: slog.NewLogLogger(cfg.Log.Handler(), slog.LevelDebug),
	}
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Run serves until ctx ends, then lets requests under way finish for a
// few seconds and closes the server. It returns nil after a clean stop,
// or the error that stopped the server.
func (s *Server) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.http.ServeTLS(s.ln, "", "") }()
	s.cfg.Log.Info("install API listening", "addr", s.ln.Addr().String())
	select {
	case err := <-errc:
		return fmt.Errorf("install API on %s: %w", s.ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := s.http.Shutdown(sctx); err != nil {
		_ = s.http.Close()
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("install API on %s: %w", s.ln.Addr(), err)
	}
	return nil
}

// coordinators are the live coordinators' gossip addresses (to join) and
// install API addresses (to download from), in member order.
func (s *Server) coordinators() (join, api []string) {
	for _, m := range s.cfg.Members() {
		if !m.Coord || m.State != "alive" || m.Address == "" {
			continue
		}
		gp, ap := m.GossipPort, m.APIPort
		if gp == 0 {
			gp = defaultGossipPort
		}
		if ap == 0 {
			ap = s.cfg.APIPort
		}
		join = append(join, net.JoinHostPort(m.Address, strconv.Itoa(gp)))
		api = append(api, net.JoinHostPort(m.Address, strconv.Itoa(ap)))
	}
	return join, api
}
