package coordinator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftwal "github.com/hashicorp/raft-wal"

	"github.com/drove-project/drove/internal/clusterauth"
)

// Raft's log and stable store is raft-wal (segment files plus a small
// bbolt file for its metadata): an append costs one fsync, where
// raft-boltdb costs two. Every step is two raft commits on its path
// (dispatched, then its result), and with a lab's agents syncing on the
// same disk raft-wal halved the leader's dispatch commit (p50 2.2 ms to
// 1.1 ms in `drove bench steps`). Consul ships it as its newer log store.

// raftTimeouts are raft's timers: LAN defaults, or short ones for a lab on
// one machine where failover should take about a second.
func raftConfig(id string, fast bool, log *slog.Logger) *raft.Config {
	c := raft.DefaultConfig()
	c.LocalID = raft.ServerID(id)
	c.Logger = hclogAdapter(log.With("part", "raft"))
	c.SnapshotThreshold = 8192
	c.TrailingLogs = 10240
	if fast {
		c.HeartbeatTimeout = 300 * time.Millisecond
		c.ElectionTimeout = 300 * time.Millisecond
		c.LeaderLeaseTimeout = 150 * time.Millisecond
		c.CommitTimeout = 5 * time.Millisecond
	}
	return c
}

// openRaft starts raft on bind with stores under dir and fsm.
func openRaft(cfg Config, fsm raft.FSM) (*raft.Raft, *raft.NetworkTransport, error) {
	dir := filepath.Join(cfg.DataDir, "raft")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("create raft directory: %w", err)
	}
	store, err := openLogStore(filepath.Join(dir, "wal"), cfg.Log)
	if err != nil {
		return nil, nil, err
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, hclogAdapter(cfg.Log.With("part", "raft-snapshots")))
	if err != nil {
		store.Close()
		return nil, nil, fmt.Errorf("open raft snapshots: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.RaftBind)
	if err != nil {
		store.Close()
		return nil, nil, fmt.Errorf("listen for raft on %s: %w", cfg.RaftBind, err)
	}
	adv := ln.Addr()
	if cfg.RaftAdvertise != "" {
		a, err := net.ResolveTCPAddr("tcp", cfg.RaftAdvertise)
		if err != nil {
			ln.Close()
			store.Close()
			return nil, nil, fmt.Errorf("raft advertise address %s: %w", cfg.RaftAdvertise, err)
		}
		adv = a
	}
	layer := newAuthStream(ln, adv, cfg.Token, cfg.Log)
	trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  layer,
		MaxPool: 3,
		Timeout: 5 * time.Second,
		Logger:  hclogAdapter(cfg.Log.With("part", "raft-net")),
	})
	r, err := newRaft(raftConfig(cfg.NodeID, cfg.Fast, cfg.Log), fsm, store, store, snaps, trans)
	if err != nil {
		trans.Close()
		store.Close()
		return nil, nil, fmt.Errorf("start raft (log in %s): %w", dir, err)
	}
	return r, trans, nil
}

// newRaft is raft.NewRaft, except that a log entry it cannot read is an
// error, not a panic: NewRaft panics there, before it starts anything,
// and the agent died with a goroutine dump instead of naming its raft
// directory (raft-wal v0.4.0's "sealed segment has no index block").
// Only a store's error is turned: a runtime error (a bug, say in the
// FSM's Restore, which runs first) or any other panic keeps its trace.
func newRaft(conf *raft.Config, fsm raft.FSM, logs raft.LogStore, stable raft.StableStore, snaps raft.SnapshotStore, trans raft.Transport) (r *raft.Raft, err error) {
	defer func() {
		if p := recover(); p != nil {
			e, ok := p.(error)
			var rt runtime.Error
			if !ok || errors.As(e, &rt) {
				panic(p)
			}
			r, err = nil, fmt.Errorf("read the raft log: %w", e)
		}
	}()
	return raft.NewRaft(conf, fsm, logs, stable, snaps, trans)
}

// openLogStore opens raft's log and stable store in dir (a write-ahead
// log), creating dir if needed.
func openLogStore(dir string, log *slog.Logger) (*raftwal.WAL, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create raft log directory: %w", err)
	}
	store, err := raftwal.Open(dir, raftwal.WithLogger(hclogAdapter(log.With("part", "raft-wal"))))
	if err != nil {
		return nil, fmt.Errorf("open raft store: %w", err)
	}
	return store, nil
}

// authStream is raft's TCP stream layer behind a token handshake: a peer
// that does not know the cluster token never reaches raft.
type authStream struct {
	ln    net.Listener
	adv   net.Addr
	token string
	log   *slog.Logger
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

const handshakeTimeout = 5 * time.Second

func newAuthStream(ln net.Listener, adv net.Addr, token string, log *slog.Logger) *authStream {
	s := &authStream{ln: ln, adv: adv, token: token, log: log, conns: make(chan net.Conn), done: make(chan struct{})}
	go s.acceptLoop()
	return s
}

// acceptLoop authenticates each incoming connection in its own goroutine,
// so a slow or hostile peer cannot hold up the others.
func (s *authStream) acceptLoop() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			select {
			case <-s.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
			defer cancel()
			if err := clusterauth.Handshake(ctx, c, s.token, false); err != nil {
				s.log.Warn("refused raft connection: wrong or missing cluster token", "peer", c.RemoteAddr().String(), "err", err)
				c.Close()
				return
			}
			select {
			case s.conns <- c:
			case <-s.done:
				c.Close()
			}
		}()
	}
}

func (s *authStream) Accept() (net.Conn, error) {
	select {
	case c := <-s.conns:
		return c, nil
	case <-s.done:
		return nil, net.ErrClosed
	}
}

func (s *authStream) Close() error {
	s.once.Do(func() { close(s.done) })
	return s.ln.Close()
}

func (s *authStream) Addr() net.Addr { return s.adv }

func (s *authStream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", string(addr), timeout)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
	defer cancel()
	if err := clusterauth.Handshake(ctx, c, s.token, true); err != nil {
		c.Close()
		return nil, fmt.Errorf("raft handshake with %s: %w", addr, err)
	}
	return c, nil
}

// hclogAdapter sends raft's hclog output to slog, one record per line.
func hclogAdapter(log *slog.Logger) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:        "",
		Level:       hclog.Info,
		Output:      slogWriter{log},
		DisableTime: true,
	})
}

type slogWriter struct{ log *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		switch {
		case strings.Contains(line, "[ERROR]"):
			w.log.Error(strings.TrimSpace(strings.SplitN(line, "]", 2)[1]))
		case strings.Contains(line, "[WARN]"):
			w.log.Warn(strings.TrimSpace(strings.SplitN(line, "]", 2)[1]))
		default:
			w.log.Debug(strings.TrimSpace(line))
		}
	}
	return len(p), nil
}

var _ io.Writer = slogWriter{}
