package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/drove-project/drove/internal/atomicfile"
	"github.com/drove-project/drove/protocol"
)

// The apilb action: its kind, its env and its defaults.
const (
	ActionAPILB = "apilb"
	// EnvAPILBBackends lists the API servers, host:port, joined with ",";
	// empty stops the balancer.
	EnvAPILBBackends = "DROVE_APILB_BACKENDS"
	// EnvAPILBListen is where the balancer listens (host:port); default
	// DefaultAPILBListen.
	EnvAPILBListen     = "DROVE_APILB_LISTEN"
	DefaultAPILBListen = "127.0.0.1:6443"
	// APILBFile is the setting's file in the agent's data directory.
	APILBFile = "apilb.json"
)

// ErrAPILBClosed is returned by an APILBAction step that arrives after
// Close (the agent is stopping).
var ErrAPILBClosed = errors.New("the agent is stopping: apiserver load balancer closed")

// APILBSetting is what an apilb step asks for, as kept in APILBFile.
type APILBSetting struct {
	Listen   string   `json:"listen"`
	Backends []string `json:"backends"`
}

// APILBAction runs "apilb" steps: it starts, updates or stops the agent's
// node-local apiserver load balancer (APILB). Env EnvAPILBBackends gives
// the backends and EnvAPILBListen the listen address. The setting is
// written to <DataDir>/apilb.json (atomically; removed when the balancer
// is stopped), and Resume starts the balancer again from it when the agent
// restarts. A step that changes nothing leaves the balancer as it is, so
// the step is idempotent.
//
// The balancer outlives the step that started it: it runs until a step
// stops it or Close. Steps are handled one at a time.
type APILBAction struct {
	dataDir string
	log     *slog.Logger
	// configure is called on each new balancer before it runs (tests
	// shorten its health checks).
	configure func(*APILB)

	mu     sync.Mutex
	base   context.Context
	cancel context.CancelFunc
	closed bool
	cur    *runningLB // nil when stopped
}

// runningLB is a balancer and how to stop it.
type runningLB struct {
	lb      *APILB
	setting APILBSetting
	cancel  context.CancelFunc
	done    chan error // Run's result
}

// NewAPILBAction returns the action for an agent whose data directory is
// dataDir. logger may be nil. Nothing runs until a step or Resume.
func NewAPILBAction(dataDir string, logger *slog.Logger) *APILBAction {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	base, cancel := context.WithCancel(context.Background())
	return &APILBAction{dataDir: dataDir, log: logger, base: base, cancel: cancel}
}

// Run implements Action. Outputs: listen (the address the balancer is
// bound to, empty when stopped) and backends (as set).
func (m *APILBAction) Run(ctx context.Context, a protocol.Action, out io.Writer) (int, map[string]string, error) {
	want, err := APILBSettingFromEnv(a.Env)
	if err != nil {
		return 1, nil, fmt.Errorf("apilb: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return 1, nil, fmt.Errorf("apilb: %w", ErrAPILBClosed)
	}
	if len(want.Backends) == 0 {
		stopped := m.cur != nil
		m.stopLocked()
		if err := m.forget(); err != nil {
			return 1, nil, fmt.Errorf("apilb: %w", err)
		}
		if stopped {
			fmt.Fprintln(out, "apiserver load balancer stopped")
		} else {
			fmt.Fprintln(out, "apiserver load balancer was not running")
		}
		return 0, map[string]string{"listen": "", "backends": ""}, nil
	}
	if err := m.applyLocked(ctx, want); err != nil {
		return 1, nil, fmt.Errorf("apilb: %w", err)
	}
	if err := m.save(want); err != nil {
		return 1, nil, fmt.Errorf("apilb: %w", err)
	}
	addr := m.cur.lb.Addr().String()
	fmt.Fprintf(out, "apiserver load balancer on %s -> %s\n", addr, strings.Join(want.Backends, ", "))
	return 0, map[string]string{"listen": addr, "backends": strings.Join(want.Backends, ",")}, nil
}

// Resume starts the balancer from <DataDir>/apilb.json, when a step left
// one running before the agent stopped. No file: nothing to do.
func (m *APILBAction) Resume(ctx context.Context) error {
	b, err := os.ReadFile(m.path())
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("resume apiserver load balancer: %w", err)
	}
	s, err := ParseAPILBSetting(b)
	if err != nil {
		return fmt.Errorf("resume apiserver load balancer from %s: %w (an apilb step rewrites it)", m.path(), err)
	}
	if len(s.Backends) == 0 {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrAPILBClosed
	}
	if err := m.applyLocked(ctx, s); err != nil {
		return fmt.Errorf("resume apiserver load balancer: %w", err)
	}
	m.log.Info("apiserver load balancer resumed", "listen", m.cur.lb.Addr().String(), "backends", s.Backends)
	return nil
}

// Addr is where the balancer listens, nil when it is not running.
func (m *APILBAction) Addr() net.Addr {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cur == nil {
		return nil
	}
	return m.cur.lb.Addr()
}

// Close stops the balancer (its setting stays on disk for Resume) and
// refuses later steps.
func (m *APILBAction) Close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	m.stopLocked()
	m.cancel()
}

// applyLocked makes the running balancer match s: new backends for the
// one running on the same address, or a new balancer (the old one stopped
// only once the new one listens). m.mu is held.
func (m *APILBAction) applyLocked(ctx context.Context, s APILBSetting) error {
	if m.cur != nil && m.cur.setting.Listen == s.Listen {
		m.cur.lb.SetBackends(s.Backends)
		m.cur.setting = s
		return nil
	}
	lb := NewAPILB(s.Listen, m.log)
	if m.configure != nil {
		m.configure(lb)
	}
	lb.SetBackends(s.Backends)
	lctx, cancel := context.WithCancel(m.base)
	r := &runningLB{lb: lb, setting: s, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- lb.Run(lctx) }()
	select {
	case <-lb.Ready():
	case err := <-r.done:
		cancel()
		if err == nil {
			return ErrAPILBClosed
		}
		return fmt.Errorf("%w (is something else listening there? stop it, or set %s to another address)", err, EnvAPILBListen)
	case <-ctx.Done():
		cancel()
		<-r.done
		return fmt.Errorf("start apiserver load balancer on %s: %w", s.Listen, context.Cause(ctx))
	}
	m.stopLocked()
	m.cur = r
	return nil
}

// stopLocked stops the running balancer, if any, and waits for it. m.mu
// is held.
func (m *APILBAction) stopLocked() {
	if m.cur == nil {
		return
	}
	m.cur.cancel()
	<-m.cur.done
	m.log.Info("apiserver load balancer stopped", "listen", m.cur.setting.Listen)
	m.cur = nil
}

func (m *APILBAction) path() string { return filepath.Join(m.dataDir, APILBFile) }

// save writes s to the setting file, atomically.
func (m *APILBAction) save(s APILBSetting) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", APILBFile, err)
	}
	if err := atomicfile.WriteFile(m.path(), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("save the load balancer setting: %w", err)
	}
	return nil
}

// forget removes the setting file: the balancer stays stopped across
// restarts.
func (m *APILBAction) forget() error {
	err := os.Remove(m.path())
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove the load balancer setting: %w", err)
	}
	if err == nil {
		if err := atomicfile.SyncDir(m.dataDir); err != nil {
			return fmt.Errorf("remove the load balancer setting: %w", err)
		}
	}
	return nil
}

// APILBSettingFromEnv reads an apilb step's env: EnvAPILBBackends
// (host:port joined with ","; spaces around items and empty items are
// ignored; empty means stop) and EnvAPILBListen (default
// DefaultAPILBListen).
func APILBSettingFromEnv(env map[string]string) (APILBSetting, error) {
	s := APILBSetting{Listen: strings.TrimSpace(env[EnvAPILBListen])}
	if s.Listen == "" {
		s.Listen = DefaultAPILBListen
	}
	for _, item := range strings.Split(env[EnvAPILBBackends], ",") {
		if item = strings.TrimSpace(item); item != "" {
			s.Backends = append(s.Backends, item)
		}
	}
	if err := s.check(); err != nil {
		return APILBSetting{}, err
	}
	return s, nil
}

// ParseAPILBSetting reads an apilb.json file.
func ParseAPILBSetting(b []byte) (APILBSetting, error) {
	var s APILBSetting
	if err := json.Unmarshal(b, &s); err != nil {
		return APILBSetting{}, fmt.Errorf("read %s: %w", APILBFile, err)
	}
	if err := s.check(); err != nil {
		return APILBSetting{}, fmt.Errorf("read %s: %w", APILBFile, err)
	}
	return s, nil
}

// check validates the addresses of s and drops repeated backends.
func (s *APILBSetting) check() error {
	if err := checkHostPort(s.Listen, true); err != nil {
		return fmt.Errorf("listen address (%s): %w", EnvAPILBListen, err)
	}
	var uniq []string
	for _, b := range s.Backends {
		if err := checkHostPort(b, false); err != nil {
			return fmt.Errorf("backend (%s): %w", EnvAPILBBackends, err)
		}
		if !slices.Contains(uniq, b) {
			uniq = append(uniq, b)
		}
	}
	s.Backends = uniq
	return nil
}

// checkHostPort accepts host:port with a numeric port (0 only for a
// listen address) and a host of valid UTF-8 without spaces, control
// characters, "/" or ",".
func checkHostPort(hp string, listen bool) error {
	host, port, err := net.SplitHostPort(hp)
	if err != nil {
		return fmt.Errorf("%q is not host:port: %w", hp, err)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 || (n == 0 && !listen) {
		return fmt.Errorf("%q: port %q is not a number from 1 to 65535", hp, port)
	}
	bad := func(r rune) bool { return r <= ' ' || r == 0x7f || r == '/' || r == ',' || r == utf8.RuneError }
	if (host == "" && !listen) || !utf8.ValidString(host) || strings.IndexFunc(host, bad) >= 0 {
		return fmt.Errorf("%q: bad host %q", hp, host)
	}
	return nil
}
