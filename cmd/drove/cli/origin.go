package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/nats-io/nats.go"
	"github.com/spf13/pflag"

	"github.com/drove-project/drove/agent"
	"github.com/drove-project/drove/protocol"
)

// The CLI as origin: when no node holds the image yet, the machine that
// runs `drove distribute` (or run/apply) serves it from its own store to
// the swarm, like a seed node would: a data endpoint of its own (the
// nodes connect to it; bulk bytes never cross the coordinators' NATS) and
// an agent.Swarm that announces to the tracker over the CLI's connection
// to the coordinators. The origin is no gossip member; the tracker hands
// it out like any peer (it is listed in Distribution.Seeds). It leaves as
// soon as one node holds a full copy: from then on the nodes serve each
// other.

// ErrOriginAddr: --origin-addr is not HOST or HOST:PORT.
var ErrOriginAddr = errors.New("bad --origin-addr")

// originOptions say how the CLI serves as origin.
type originOptions struct {
	// Addr is HOST[:PORT] the nodes reach this machine at (--origin-addr).
	// Empty: the local address of the connection to the coordinators, and
	// a free port.
	Addr string
	// Token is the cluster token: the data endpoint's credentials
	// (clientFlags.token finds it like connect does).
	Token string
}

// addFlags registers --origin-addr on a command that may serve as origin.
func (o *originOptions) addFlags(f *pflag.FlagSet) {
	f.StringVar(&o.Addr, "origin-addr", "", "HOST[:PORT] the nodes reach this machine at to fetch the image from it "+
		"(default: this machine's address on its connection to the coordinators, a free port)")
}

// originStopTimeout bounds how long stop waits for the origin to tell the
// tracker it leaves and to close its endpoint.
const originStopTimeout = 10 * time.Second

// startOrigin serves dist from the local store (g.DataDir) to the swarm
// and returns the origin's peer ID, which it has appended to dist.Seeds:
// submit the plan carrying dist after startOrigin returns. The origin runs
// in the background until one full copy is out in the swarm (or the
// distribution is done), then leaves; stop makes it leave now and waits
// until it has (stop may be called more than once). ctx bounds the start
// and the serving.
func startOrigin(ctx context.Context, g *Globals, nc *nats.Conn, dist *protocol.Distribution, o originOptions) (seedID string, stop func(), err error) {
	if dist == nil || len(dist.Blobs) == 0 {
		return "", nil, errors.New("start origin: no distribution to serve")
	}
	id := originID()
	adv, port, err := originAddr(o.Addr, nc)
	if err != nil {
		return "", nil, fmt.Errorf("start origin: %w", err)
	}
	st, err := g.Store()
	if err != nil {
		return "", nil, fmt.Errorf("start origin: %w", err)
	}
	for _, bp := range dist.Blobs {
		if h, err := v1.NewHash(bp.Digest); err != nil || !st.HasBlob(h) {
			return "", nil, fmt.Errorf("start origin: the local store (%s) lacks blob %s of %s: %w",
				g.DataDir, bp.Digest, dist.Image, agent.ErrNotSeed)
		}
	}
	log := originLog(g).With("origin", id)
	ds, err := agent.StartDataServer(ctx, agent.DataConfig{Name: id, Host: listenHost(adv), Port: port, Token: o.Token}, log)
	if err != nil {
		return "", nil, fmt.Errorf("start origin on %s: %w (pass --origin-addr HOST[:PORT] with an address and free port of this machine the nodes can reach)",
			net.JoinHostPort(adv, strconv.Itoa(port)), err)
	}
	dir, err := originDir(g.DataDir, id, dist.ImageDigest)
	if err != nil {
		ds.Shutdown()
		return "", nil, fmt.Errorf("start origin: %w", err)
	}
	sw, err := agent.NewSwarm(agent.SwarmConfig{
		NodeID:   id,
		DataAddr: net.JoinHostPort(adv, strconv.Itoa(ds.Port())),
		DataURL:  ds.ClientURL(),
		DataDir:  dir,
		Store:    st,
		Control:  nc,
		Token:    o.Token,
		Log:      log,
	})
	if err != nil {
		ds.Shutdown()
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("start origin: %w", err)
	}
	dist.Seeds = append(dist.Seeds, id)
	// The swarm's own copy (the caller may change dist), without the
	// name: a seed names the image in its store, and the CLI's store
	// already names it as the user does.
	seeding := *dist
	seeding.Image, seeding.Seeds = "", slices.Clone(dist.Seeds)
	sctx, cancel := context.WithCancel(ctx)
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		stats, err := sw.Seed(sctx, &seeding)
		switch {
		case err == nil:
			log.Info("a full copy is out; the origin leaves", "uploaded", stats.Uploaded)
		case sctx.Err() != nil:
			log.Debug("origin stopped", "uploaded", stats.Uploaded, "err", err)
		default:
			log.Error("origin failed; the nodes can only fetch what the others hold", "err", err)
		}
		sw.Close() // tells the tracker it leaves
		ds.Shutdown()
		if err := os.RemoveAll(dir); err != nil {
			log.Warn("remove origin work directory", "dir", dir, "err", err)
		}
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-ended:
			case <-time.After(originStopTimeout):
				log.Warn("origin did not stop in time", "timeout", originStopTimeout)
			}
		})
	}
	return id, stop, nil
}

// originID is the origin's peer ID, "origin-<hostname>-<pid>", made a valid
// subject token (protocol.ValidID).
func originID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "cli"
	}
	host = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '-'
	}, host)
	if len(host) > 64 {
		host = host[:64]
	}
	return "origin-" + host + "-" + strconv.Itoa(os.Getpid())
}

// originAddr returns the host the nodes reach the origin at and the port
// to listen on (0: a free one): from --origin-addr HOST[:PORT], else the
// local address of nc's connection to the coordinators.
func originAddr(flag string, nc *nats.Conn) (host string, port int, err error) {
	if flag == "" {
		local := ""
		if nc != nil {
			local = nc.LocalAddr()
		}
		h, _, err := net.SplitHostPort(local)
		if err != nil || h == "" {
			return "", 0, fmt.Errorf("no local address on the connection to the coordinators (%q): pass --origin-addr HOST[:PORT]", local)
		}
		return h, 0, nil
	}
	return parseOriginAddr(flag)
}

// parseOriginAddr reads HOST, HOST:PORT, [IPv6] or [IPv6]:PORT.
func parseOriginAddr(s string) (host string, port int, err error) {
	h, p, serr := net.SplitHostPort(s)
	switch {
	case serr == nil:
		if port, err = strconv.Atoi(p); err != nil || port < 0 || port > 65535 {
			return "", 0, fmt.Errorf("%w %q: port %q is not 0..65535", ErrOriginAddr, s, p)
		}
	case strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]"):
		h = s[1 : len(s)-1]
	case strings.Count(s, ":") > 1 && net.ParseIP(s) != nil:
		h = s // a bare IPv6 address
	case !strings.Contains(s, ":"):
		h = s
	default:
		return "", 0, fmt.Errorf("%w %q: want HOST or HOST:PORT", ErrOriginAddr, s)
	}
	if h == "" || strings.ContainsAny(h, " /[]") {
		return "", 0, fmt.Errorf("%w %q: want HOST or HOST:PORT", ErrOriginAddr, s)
	}
	return h, port, nil
}

// listenHost is where the origin's endpoint listens: the advertised
// address when it is one of this machine's, else every address (the
// nodes may reach this machine through NAT or by name).
func listenHost(adv string) string {
	ip := net.ParseIP(adv)
	if ip == nil {
		return "0.0.0.0"
	}
	if ip.IsLoopback() {
		return adv
	}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
				return adv
			}
		}
	}
	if ip.To4() == nil {
		return "::"
	}
	return "0.0.0.0"
}

// originDir makes the origin's work directory under dataDir. The swarm
// keeps partial blobs and unpacks images under its data directory; the
// origin has every blob and must not unpack the image on this machine
// (slow, and files owned by root cannot be made by a user), so the
// image's rootfs directory is made empty up front: agent.Swarm then takes
// it as unpacked (swarm.Unpack leaves an existing directory alone).
func originDir(dataDir, id, imageDigest string) (string, error) {
	dir := filepath.Join(dataDir, "origin", id)
	rootfs := filepath.Join(dir, "rootfs", strings.TrimPrefix(imageDigest, "sha256:"))
	if err := os.MkdirAll(rootfs, 0o700); err != nil {
		return "", fmt.Errorf("make origin work directory: %w", err)
	}
	return dir, nil
}

// originLog is the origin's logger: the swarm's info lines would cut
// through the progress display, so only warnings and errors show unless
// --debug.
func originLog(g *Globals) *slog.Logger {
	if g.Debug && g.Log != nil {
		return g.Log
	}
	w := g.Err
	if w == nil {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// token finds the cluster token like connect does: --token-file, else
// DROVE_TOKEN, else the context file.
func (c *clientFlags) token(g *Globals) (string, error) {
	if c.TokenFile != "" {
		b, err := os.ReadFile(c.TokenFile)
		if err != nil {
			return "", fmt.Errorf("read token file: %w", err)
		}
		if t := strings.TrimSpace(string(b)); t != "" {
			return t, nil
		}
	}
	if t := os.Getenv("DROVE_TOKEN"); t != "" {
		return t, nil
	}
	if ctx, err := readContext(g); err == nil && ctx.Token != "" {
		return ctx.Token, nil
	}
	return "", usageErrorf("no cluster token: pass --token-file or set DROVE_TOKEN")
}
