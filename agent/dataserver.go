package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/drove-project/drove/internal/clusterauth"
	"github.com/drove-project/drove/protocol"
)

// DataMaxPayload bounds a message on a data endpoint: one transfer unit
// plus headers, with room to spare.
const DataMaxPayload = 2 << 20

// dataPingInterval is how often the data endpoint pings its clients; a
// peer that stops answering is dropped after about two intervals.
const dataPingInterval = 2 * time.Second

// ErrDataNotReady: the data endpoint did not accept connections before the
// context ended.
var ErrDataNotReady = errors.New("data endpoint not ready")

// DataConfig configures an agent's data endpoint.
type DataConfig struct {
	Name  string // server name: the node ID
	Host  string // listen address; default 0.0.0.0
	Port  int    // 0 picks a free port (Port tells which)
	Token string // cluster token: yields the one user (clusterauth.NATSData)
}

// DataServer is an agent's data endpoint: a small embedded NATS server,
// not clustered with anything, on which the agent serves the image pieces
// it holds and other agents request them (DESIGN.md invariant 5). One
// user, derived from the cluster token, may publish and subscribe only on
// the swarm subjects and inboxes.
type DataServer struct {
	s    *server.Server
	host string
	port int
}

// StartDataServer starts the data endpoint and waits until it accepts
// connections or ctx ends. ctx bounds only the start: the server runs
// until Shutdown.
func StartDataServer(ctx context.Context, cfg DataConfig, log *slog.Logger) (*DataServer, error) {
	if err := clusterauth.ValidateToken(cfg.Token); err != nil {
		return nil, fmt.Errorf("start data endpoint: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	host := cfg.Host
	if host == "" {
		host = "0.0.0.0"
	}
	port := cfg.Port
	if port == 0 {
		port = server.RANDOM_PORT
	}
	user, pass := clusterauth.NATSData(cfg.Token)
	swarm := protocol.Prefix + "swarm.>"
	opts := &server.Options{
		ServerName:      cfg.Name,
		Host:            host,
		Port:            port,
		NoSigs:          true,
		NoSystemAccount: true,
		MaxPayload:      DataMaxPayload,
		PingInterval:    dataPingInterval,
		MaxPingsOut:     2,
		Users: []*server.User{{
			Username: user, Password: pass,
			Permissions: &server.Permissions{
				Publish:   &server.SubjectPermission{Allow: []string{swarm, "_INBOX.>"}},
				Subscribe: &server.SubjectPermission{Allow: []string{swarm, "_INBOX.>"}},
			},
		}},
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("start data endpoint: %w", err)
	}
	log = log.With("component", "data")
	s.SetLoggerV2(&dataLog{log: log}, false, false, false)
	s.Start()
	for !s.ReadyForConnections(50 * time.Millisecond) {
		if err := ctx.Err(); err != nil {
			s.Shutdown()
			s.WaitForShutdown()
			return nil, fmt.Errorf("start data endpoint on %s: %w: %w", net.JoinHostPort(host, strconv.Itoa(cfg.Port)), ErrDataNotReady, err)
		}
	}
	a, ok := s.Addr().(*net.TCPAddr)
	if !ok {
		s.Shutdown()
		s.WaitForShutdown()
		return nil, fmt.Errorf("start data endpoint: no listener address")
	}
	d := &DataServer{s: s, host: host, port: a.Port}
	log.Info("data endpoint started", "addr", net.JoinHostPort(host, strconv.Itoa(d.port)))
	return d, nil
}

// Port is the port the endpoint listens on.
func (d *DataServer) Port() int { return d.port }

// ClientURL is the URL this machine's own clients connect to: the listen
// address, or loopback when the endpoint listens on every address.
func (d *DataServer) ClientURL() string {
	host := d.host
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
		if ip.To4() == nil {
			host = "::1"
		}
	}
	return "nats://" + net.JoinHostPort(host, strconv.Itoa(d.port))
}

// OutBytes is how many bytes the endpoint has sent to its clients in all:
// mostly pieces served to other peers.
func (d *DataServer) OutBytes() int64 {
	v, err := d.s.Varz(nil)
	if err != nil {
		return 0
	}
	return v.OutBytes
}

// Shutdown stops the endpoint and waits until it has stopped.
func (d *DataServer) Shutdown() {
	d.s.Shutdown()
	d.s.WaitForShutdown()
}

// dataLog bridges nats-server's logger to slog: notices and debug lines
// are debug (a data endpoint has little to say), warnings and errors keep
// their level.
type dataLog struct{ log *slog.Logger }

func (l *dataLog) Noticef(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l *dataLog) Warnf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	if strings.HasPrefix(msg, "Plaintext passwords detected") {
		return // derived from the token, held only in memory
	}
	l.log.Warn(msg)
}
func (l *dataLog) Fatalf(format string, v ...any) { l.log.Error(fmt.Sprintf(format, v...)) }
func (l *dataLog) Errorf(format string, v ...any) { l.log.Error(fmt.Sprintf(format, v...)) }
func (l *dataLog) Debugf(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l *dataLog) Tracef(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }

var _ server.Logger = (*dataLog)(nil)
