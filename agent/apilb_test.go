package agent

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// lbEcho is a backend: it greets each connection with its name, then
// echoes, passing the client's half-close back.
type lbEcho struct {
	name string
	ln   net.Listener
	mu   sync.Mutex
	open map[net.Conn]struct{}
}

func startLBEcho(t *testing.T, name string) *lbEcho {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveLBEcho(t, name, ln)
}

func serveLBEcho(t *testing.T, name string, ln net.Listener) *lbEcho {
	e := &lbEcho{name: name, ln: ln, open: map[net.Conn]struct{}{}}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			e.mu.Lock()
			e.open[c] = struct{}{}
			e.mu.Unlock()
			go func() {
				defer func() {
					e.mu.Lock()
					delete(e.open, c)
					e.mu.Unlock()
					c.Close()
				}()
				if _, err := io.WriteString(c, e.name+"\n"); err != nil {
					return
				}
				if _, err := io.Copy(c, c); err == nil {
					c.(*net.TCPConn).CloseWrite()
				}
			}()
		}
	}()
	t.Cleanup(e.kill)
	return e
}

func (e *lbEcho) addr() string { return e.ln.Addr().String() }

// kill stops the backend: no more connections, open ones cut.
func (e *lbEcho) kill() {
	e.ln.Close()
	e.mu.Lock()
	defer e.mu.Unlock()
	for c := range e.open {
		c.Close()
	}
}

// lbClient is a connection through the balancer and the backend that
// greeted it.
type lbClient struct {
	net.Conn
	r       *bufio.Reader
	backend string
}

func lbDial(t *testing.T, lb *APILB) *lbClient {
	t.Helper()
	c, err := net.DialTimeout("tcp", lb.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatalf("dial balancer: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	name, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("no greeting through the balancer: %v", err)
	}
	return &lbClient{Conn: c, r: r, backend: strings.TrimSuffix(name, "\n")}
}

// echo checks that the connection still carries data both ways.
func (c *lbClient) echo(t *testing.T) {
	t.Helper()
	if _, err := io.WriteString(c, "ping\n"); err != nil {
		t.Fatalf("write via %s: %v", c.backend, err)
	}
	if line, err := c.r.ReadString('\n'); err != nil || line != "ping\n" {
		t.Fatalf("echo via %s = %q, %v", c.backend, line, err)
	}
}

// startLB runs lb until the test ends.
func startLB(t *testing.T, lb *APILB) context.CancelFunc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- lb.Run(ctx) }()
	select {
	case <-lb.Ready():
	case err := <-done:
		t.Fatalf("Run: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("balancer did not start")
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	return cancel
}

func lbEventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// lbActive is the balancer's count of open connections to addr.
func lbActive(lb *APILB, addr string) int {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	for _, b := range lb.backends {
		if b.addr == addr {
			return b.active
		}
	}
	return -1
}

func countBackends(cs []*lbClient) map[string]int {
	n := map[string]int{}
	for _, c := range cs {
		n[c.backend]++
	}
	return n
}

func TestAPILBSpreadsFailsOverAndClosesWhenAllDown(t *testing.T) {
	b := []*lbEcho{startLBEcho(t, "b0"), startLBEcho(t, "b1"), startLBEcho(t, "b2")}
	lb := NewAPILB("127.0.0.1:0", nil)
	// A dead backend's connections are released soon after it closes them.
	lb.HalfCloseTimeout = 100 * time.Millisecond
	lb.SetBackends([]string{b[0].addr(), b[1].addr(), b[2].addr()})
	startLB(t, lb)

	// Six held connections: least-connections with round robin gives
	// each backend two.
	var held []*lbClient
	for i := 0; i < 6; i++ {
		held = append(held, lbDial(t, lb))
	}
	if got := countBackends(held); !reflect.DeepEqual(got, map[string]int{"b0": 2, "b1": 2, "b2": 2}) {
		t.Fatalf("spread = %v, want 2 each", got)
	}
	for _, c := range held {
		c.echo(t)
	}

	// Free b1: the next two connections both go to it.
	for _, c := range held {
		if c.backend == "b1" {
			c.Close()
		}
	}
	lbEventually(t, "b1 connections released", func() bool { return lbActive(lb, b[1].addr()) == 0 })
	if a, c := lbDial(t, lb), lbDial(t, lb); a.backend != "b1" || c.backend != "b1" {
		t.Fatalf("least connections: new connections went to %s and %s, want b1 twice", a.backend, c.backend)
	}

	// Kill b2: new connections reach only b0 and b1, without a client error.
	b[2].kill()
	lbEventually(t, "b2 connections released", func() bool { return lbActive(lb, b[2].addr()) == 0 })
	var after []*lbClient
	for i := 0; i < 6; i++ {
		c := lbDial(t, lb)
		c.echo(t)
		after = append(after, c)
	}
	if n := countBackends(after); n["b2"] != 0 || n["b0"]+n["b1"] != 6 {
		t.Fatalf("after killing b2: %v", n)
	}
	if got := lb.Healthy(); !reflect.DeepEqual(got, []string{b[0].addr(), b[1].addr()}) {
		t.Fatalf("Healthy = %v, want b0 and b1", got)
	}

	// All down: the client's connection is closed, promptly.
	b[0].kill()
	b[1].kill()
	c, err := net.Dial("tcp", lb.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = c.Read(make([]byte, 1))
	if !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read with all backends down: %v, want the connection closed", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("closing took %v", d)
	}
	if got := lb.Healthy(); len(got) != 0 {
		t.Fatalf("Healthy = %v with every backend down", got)
	}
}

func TestAPILBHalfClose(t *testing.T) {
	// A backend that answers only after the client finished sending.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	gotEOF, release := make(chan string, 1), make(chan struct{})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			req, _ := io.ReadAll(c)
			if len(req) == 0 { // a health check
				c.Close()
				continue
			}
			gotEOF <- string(req)
			<-release
			io.WriteString(c, "answer to "+string(req))
			c.Close()
		}
	}()
	lb := NewAPILB("127.0.0.1:0", nil)
	lb.SetBackends([]string{ln.Addr().String()})
	startLB(t, lb)

	c, err := net.Dial("tcp", lb.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "question")
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	select {
	case req := <-gotEOF:
		if req != "question" {
			t.Fatalf("backend read %q", req)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the client's half-close did not reach the backend")
	}
	close(release)
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "answer to question" {
		t.Fatalf("after half-close read %q, %v", got, err)
	}
	lbEventually(t, "connection released", func() bool { return lbActive(lb, ln.Addr().String()) == 0 })
}

func TestAPILBSetBackendsRemoves(t *testing.T) {
	b := []*lbEcho{startLBEcho(t, "b0"), startLBEcho(t, "b1"), startLBEcho(t, "b2")}
	lb := NewAPILB("127.0.0.1:0", nil)
	lb.SetBackends([]string{b[0].addr(), b[1].addr(), b[2].addr()})
	startLB(t, lb)
	var first []*lbClient
	for i := 0; i < 3; i++ {
		first = append(first, lbDial(t, lb))
	}
	if n := countBackends(first); n["b2"] != 1 {
		t.Fatalf("spread = %v", n)
	}

	lb.SetBackends([]string{b[0].addr(), b[1].addr()})
	if got := lb.Healthy(); !reflect.DeepEqual(got, []string{b[0].addr(), b[1].addr()}) {
		t.Fatalf("Healthy = %v after removing b2", got)
	}
	var later []*lbClient
	for i := 0; i < 6; i++ {
		later = append(later, lbDial(t, lb))
	}
	if n := countBackends(later); n["b2"] != 0 || n["b0"] != 3 || n["b1"] != 3 {
		t.Fatalf("after removing b2: %v, want b0 and b1 three each", n)
	}
	// The connection already open to b2 carries on.
	for _, c := range first {
		c.echo(t)
	}

	// Adding it back makes it eligible again at once.
	lb.SetBackends([]string{b[0].addr(), b[1].addr(), b[2].addr()})
	if c := lbDial(t, lb); c.backend != "b2" {
		t.Fatalf("after adding b2 back the least-loaded pick went to %s", c.backend)
	}
}

func TestAPILBHealthChecks(t *testing.T) {
	b0, b1 := startLBEcho(t, "b0"), startLBEcho(t, "b1")
	lb := NewAPILB("127.0.0.1:0", nil)
	lb.Interval, lb.Timeout = 20*time.Millisecond, 500*time.Millisecond
	lb.SetBackends([]string{b0.addr(), b1.addr()})
	startLB(t, lb)

	addr := b1.addr()
	b1.kill()
	lbEventually(t, "b1 checked down", func() bool { return reflect.DeepEqual(lb.Healthy(), []string{b0.addr()}) })
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s again: %v", addr, err)
	}
	serveLBEcho(t, "b1 again", ln)
	lbEventually(t, "b1 checked up", func() bool { return len(lb.Healthy()) == 2 })
}

func TestAPILBHealthPath(t *testing.T) {
	var status atomic.Int32
	status.Store(http.StatusOK)
	var badPath atomic.Bool
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			badPath.Store(true)
		}
		w.WriteHeader(int(status.Load()))
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "https://")

	lb := NewAPILB("127.0.0.1:0", nil)
	lb.HealthPath = "/healthz"
	lb.Interval, lb.Timeout = 20*time.Millisecond, 500*time.Millisecond
	lb.SetBackends([]string{addr})
	startLB(t, lb)

	status.Store(http.StatusInternalServerError)
	lbEventually(t, "backend down on 500", func() bool { return len(lb.Healthy()) == 0 })
	status.Store(http.StatusOK)
	lbEventually(t, "backend up on 200", func() bool { return len(lb.Healthy()) == 1 })
	if badPath.Load() {
		t.Fatal("health check asked for another path than /healthz")
	}
}

func TestAPILBCancelClosesEverything(t *testing.T) {
	e := startLBEcho(t, "b0")
	lb := NewAPILB("127.0.0.1:0", nil)
	lb.SetBackends([]string{e.addr()})
	cancel := startLB(t, lb)
	c := lbDial(t, lb)
	c.echo(t)
	addr := lb.Addr().String()
	cancel()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.r.ReadByte(); !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("held connection after cancel: %v, want closed", err)
	}
	lbEventually(t, "listener closed", func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
}

func TestAPILBListenError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	lb := NewAPILB(ln.Addr().String(), nil)
	if err := lb.Run(context.Background()); err == nil || !strings.Contains(err.Error(), ln.Addr().String()) {
		t.Fatalf("Run on a taken port: %v", err)
	}
}

func TestAPILBChoose(t *testing.T) {
	mk := func(active []int, up []bool) []*lbBackend {
		var bs []*lbBackend
		for i := range active {
			bs = append(bs, &lbBackend{addr: string(rune('a' + i)), active: active[i], up: up[i]})
		}
		return bs
	}
	all := []bool{true, true, true}
	tests := []struct {
		name   string
		active []int
		up     []bool
		start  int
		tried  []int
		want   int
	}{
		{name: "least active", active: []int{3, 1, 2}, up: all, want: 1},
		{name: "tie from cursor", active: []int{1, 1, 1}, up: all, start: 2, want: 2},
		{name: "tie wraps", active: []int{0, 1, 0}, up: all, start: 1, want: 2},
		{name: "down skipped", active: []int{5, 0, 3}, up: []bool{true, false, true}, want: 2},
		{name: "tried skipped", active: []int{0, 1, 2}, up: all, tried: []int{0}, want: 1},
		{name: "none up", active: []int{0, 0, 0}, up: []bool{false, false, false}, want: -1},
		{name: "all tried", active: []int{0, 0, 0}, up: all, tried: []int{0, 1, 2}, want: -1},
		{name: "empty", want: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bs := mk(tt.active, tt.up)
			tried := map[*lbBackend]bool{}
			for _, i := range tt.tried {
				tried[bs[i]] = true
			}
			if got := choose(bs, tt.start, tried); got != tt.want {
				t.Fatalf("choose = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestAPILBReportThreshold(t *testing.T) {
	lb := NewAPILB("127.0.0.1:0", nil)
	b := &lbBackend{addr: "x", up: true}
	fail := errors.New("refused")
	steps := []struct {
		err    error
		wantUp bool
	}{
		{fail, true},  // one failure: still up
		{nil, true},   // success resets the count
		{fail, true},  // one again
		{fail, false}, // two in a row: down
		{fail, false},
		{nil, true}, // one success: up
	}
	for i, s := range steps {
		lb.report(b, s.err)
		if b.up != s.wantUp {
			t.Fatalf("step %d: up = %v, want %v", i, b.up, s.wantUp)
		}
	}
	lb.markDown(b, fail)
	if b.up {
		t.Fatal("markDown left the backend up")
	}
}
