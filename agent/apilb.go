package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// Defaults of APILB's health checking.
const (
	DefaultAPILBInterval = 2 * time.Second
	DefaultAPILBTimeout  = time.Second
	// DefaultAPILBHalfCloseTimeout: see APILB.HalfCloseTimeout.
	DefaultAPILBHalfCloseTimeout = 30 * time.Second
	// apilbFailures consecutive failed checks mark a backend down; one
	// success marks it up again.
	apilbFailures = 2
)

// APILB is the node-local load balancer in front of the Kubernetes API
// servers, drove's replacement for sealer's lvscare/IPVS rules: it listens
// on a local address (127.0.0.1:6443 or the VIP) and forwards each TCP
// connection to a healthy master.
//
// Backends are checked every Interval (a TCP connect, or an HTTPS GET of
// HealthPath, within Timeout); two failures mark one down, one success
// marks it up, and a failed dial marks it down at once and moves the
// connection to the next healthy backend. A new connection goes to the
// backend with the fewest active connections, ties taken in turn.
type APILB struct {
	// HealthPath, when set, makes the check an HTTPS GET of this path
	// (certificate not verified, as lvscare does) that must answer 200,
	// e.g. "/healthz". Set before Run.
	HealthPath string
	// Interval between two checks of a backend. Default
	// DefaultAPILBInterval. Set before Run.
	Interval time.Duration
	// Timeout bounds a check and a dial. Default DefaultAPILBTimeout. Set
	// before Run.
	Timeout time.Duration
	// HalfCloseTimeout is how long a connection may stay half-closed (one
	// side done sending, the other not) before both sides are closed.
	// Default DefaultAPILBHalfCloseTimeout. Set before Run.
	HalfCloseTimeout time.Duration

	listen string
	log    *slog.Logger

	mu       sync.Mutex
	backends []*lbBackend // in the order given to SetBackends
	next     int          // round-robin cursor into backends
	running  context.Context
	checks   sync.WaitGroup
	addr     net.Addr
	ready    chan struct{}
	conns    map[net.Conn]struct{}
	closed   bool
}

// lbBackend is one API server and what the balancer knows of it.
type lbBackend struct {
	addr   string
	up     bool
	fails  int
	active int
	stop   context.CancelFunc // ends its health checks; nil before Run
}

// NewAPILB returns a balancer that will listen on listen (host:port) when
// Run. logger may be nil.
func NewAPILB(listen string, logger *slog.Logger) *APILB {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &APILB{listen: listen, log: logger, ready: make(chan struct{}), conns: map[net.Conn]struct{}{}}
}

// SetBackends replaces the set of API servers (host:port each). It may be
// called at any time: removed backends get no new connections (those open
// stay), added ones start healthy and are checked at once.
func (lb *APILB) SetBackends(addrs []string) {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	old := map[string]*lbBackend{}
	for _, b := range lb.backends {
		old[b.addr] = b
	}
	var list []*lbBackend
	seen := map[string]bool{}
	for _, a := range addrs {
		if seen[a] {
			continue
		}
		seen[a] = true
		b := old[a]
		if b == nil {
			b = &lbBackend{addr: a, up: true}
			lb.startCheck(b)
		}
		delete(old, a)
		list = append(list, b)
	}
	for _, b := range old {
		if b.stop != nil {
			b.stop()
		}
		lb.log.Info("apiserver backend removed", "backend", b.addr)
	}
	lb.backends = list
	if lb.next >= len(list) {
		lb.next = 0
	}
}

// Healthy lists the backends now considered up, in the configured order.
func (lb *APILB) Healthy() []string {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	var up []string
	for _, b := range lb.backends {
		if b.up {
			up = append(up, b.addr)
		}
	}
	return up
}

// Addr is the address the balancer listens on, nil before Run has bound it.
func (lb *APILB) Addr() net.Addr {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	return lb.addr
}

// Ready is closed once Run listens.
func (lb *APILB) Ready() <-chan struct{} { return lb.ready }

// Run listens, checks the backends and forwards connections until ctx
// ends; then it closes the listener and every connection, and returns
// nil. It returns an error if it cannot listen.
func (lb *APILB) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", lb.listen)
	if err != nil {
		return fmt.Errorf("apiserver load balancer: listen on %s: %w", lb.listen, err)
	}
	lb.mu.Lock()
	if lb.running != nil {
		lb.mu.Unlock()
		ln.Close()
		return errors.New("apiserver load balancer: Run called twice")
	}
	lb.running = ctx
	lb.addr = ln.Addr()
	for _, b := range lb.backends {
		lb.startCheck(b)
	}
	lb.mu.Unlock()
	close(lb.ready)
	lb.log.Info("apiserver load balancer listening", "addr", ln.Addr().String())

	stop := context.AfterFunc(ctx, func() {
		ln.Close()
		lb.closeAll()
	})
	defer stop()
	var handlers sync.WaitGroup
	defer func() {
		lb.closeAll()
		handlers.Wait()
		lb.checks.Wait()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			// Out of file descriptors and the like: wait a little, go on.
			lb.log.Warn("apiserver load balancer: accept", "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		if !lb.track(c) {
			continue
		}
		handlers.Add(1)
		go func() {
			defer handlers.Done()
			lb.serve(ctx, c)
		}()
	}
}

// serve forwards one client connection to a healthy backend, trying the
// next one when a dial fails.
func (lb *APILB) serve(ctx context.Context, client net.Conn) {
	defer lb.untrack(client)
	tried := map[*lbBackend]bool{}
	for {
		b := lb.pick(tried)
		if b == nil {
			lb.log.Debug("no healthy apiserver; closing connection", "client", client.RemoteAddr().String(), "tried", len(tried))
			return
		}
		tried[b] = true
		d := net.Dialer{Timeout: lb.timeout()}
		server, err := d.DialContext(ctx, "tcp", b.addr)
		if err != nil {
			lb.release(b)
			if ctx.Err() != nil {
				return
			}
			lb.markDown(b, err)
			continue
		}
		if !lb.track(server) {
			lb.release(b)
			return
		}
		proxy(client, server, lb.halfCloseTimeout())
		lb.untrack(server)
		lb.release(b)
		return
	}
}

// proxy copies both ways. The end of one direction is passed on as a
// half-close, and the other direction gets linger to finish; an error in
// either direction, or the end of both, closes both connections.
func proxy(a, b net.Conn, linger time.Duration) {
	errc := make(chan error, 2)
	go func() { errc <- copyHalf(b, a) }()
	go func() { errc <- copyHalf(a, b) }()
	if err := <-errc; err == nil {
		t := time.NewTimer(linger)
		select {
		case <-errc:
			t.Stop()
			a.Close()
			b.Close()
			return
		case <-t.C:
		}
	}
	a.Close()
	b.Close()
	<-errc
}

// copyHalf copies src to dst; at src's end it closes dst for writing.
func copyHalf(dst, src net.Conn) error {
	_, err := io.Copy(dst, src)
	if err != nil {
		return err
	}
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return dst.Close()
}

// pick reserves the healthy backend with the fewest active connections
// that is not in tried, or returns nil.
func (lb *APILB) pick(tried map[*lbBackend]bool) *lbBackend {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	i := choose(lb.backends, lb.next, tried)
	if i < 0 {
		return nil
	}
	b := lb.backends[i]
	b.active++
	lb.next = (i + 1) % len(lb.backends)
	return b
}

// choose returns the index of the up backend, not in tried, with the
// fewest active connections; among equals the first at or after start
// (round robin). -1 when there is none.
func choose(backends []*lbBackend, start int, tried map[*lbBackend]bool) int {
	best := -1
	for k := range backends {
		i := (start + k) % len(backends)
		b := backends[i]
		if !b.up || tried[b] {
			continue
		}
		if best < 0 || b.active < backends[best].active {
			best = i
		}
	}
	return best
}

func (lb *APILB) release(b *lbBackend) {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	b.active--
}

// markDown takes a backend out at once after a failed dial.
func (lb *APILB) markDown(b *lbBackend, err error) {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	b.fails = apilbFailures
	if b.up {
		b.up = false
		lb.log.Warn("apiserver backend down", "backend", b.addr, "err", err)
	}
}

// report records the result of a health check.
func (lb *APILB) report(b *lbBackend, err error) {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	if err == nil {
		b.fails = 0
		if !b.up {
			b.up = true
			lb.log.Info("apiserver backend up", "backend", b.addr)
		}
		return
	}
	b.fails++
	if b.up && b.fails >= apilbFailures {
		b.up = false
		lb.log.Warn("apiserver backend down", "backend", b.addr, "err", err)
	}
}

// startCheck starts b's health checks if Run is running. lb.mu is held.
func (lb *APILB) startCheck(b *lbBackend) {
	if lb.running == nil || lb.closed || b.stop != nil {
		return
	}
	ctx, cancel := context.WithCancel(lb.running)
	b.stop = cancel
	lb.checks.Add(1)
	go func() {
		defer lb.checks.Done()
		lb.checkLoop(ctx, b)
	}()
}

// checkLoop checks b now and every Interval until ctx ends.
func (lb *APILB) checkLoop(ctx context.Context, b *lbBackend) {
	interval := lb.Interval
	if interval <= 0 {
		interval = DefaultAPILBInterval
	}
	var client *http.Client
	if lb.HealthPath != "" {
		client = &http.Client{Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true},
			DisableKeepAlives: true,
		}}
		defer client.CloseIdleConnections()
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		err := lb.probe(ctx, client, b.addr)
		if ctx.Err() != nil {
			return
		}
		lb.report(b, err)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// probe is one health check: TCP connect, or HTTPS GET of HealthPath.
func (lb *APILB) probe(ctx context.Context, client *http.Client, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, lb.timeout())
	defer cancel()
	if client == nil {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+lb.HealthPath, nil)
	if err != nil {
		return fmt.Errorf("health check request: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", lb.HealthPath, resp.Status)
	}
	return nil
}

func (lb *APILB) halfCloseTimeout() time.Duration {
	if lb.HalfCloseTimeout <= 0 {
		return DefaultAPILBHalfCloseTimeout
	}
	return lb.HalfCloseTimeout
}

func (lb *APILB) timeout() time.Duration {
	if lb.Timeout <= 0 {
		return DefaultAPILBTimeout
	}
	return lb.Timeout
}

// track registers an open connection so that shutdown can close it; it
// closes c and returns false when shutdown has begun.
func (lb *APILB) track(c net.Conn) bool {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	if lb.closed {
		c.Close()
		return false
	}
	lb.conns[c] = struct{}{}
	return true
}

func (lb *APILB) untrack(c net.Conn) {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	delete(lb.conns, c)
	c.Close()
}

// closeAll closes every tracked connection and refuses new connections
// and new health checks.
func (lb *APILB) closeAll() {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	lb.closed = true
	for c := range lb.conns {
		c.Close()
	}
}
